"""Fault injection at the connector edge: a proxy around an SDK client object.

The proxy forwards every attribute to the real client. For the methods it is told to watch, it
fails a seeded fraction of the calls (or exactly the calls numbered in ``fail_calls``), raising an
exception built by ``error`` (pass the SDK's *real* exception, e.g. ``httpx.ConnectError`` or
qdrant's ``UnexpectedResponse(503)``, so the connector's own ``_map_errors`` is what is tested):

* ``when="before"``: the call never reaches the database (a refused connection);
* ``when="after"``: the call is forwarded, *then* the error is raised (a write that landed but
  whose response was lost: a retry must not duplicate it);
* ``when="mixed"``: each failure picks one of the two at random (seeded).

Usage::

    client = FaultInjector(store._client, ["upsert"], error=lambda: httpx.ConnectError("boom"),
                           rate=0.3, when="mixed", seed=7)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable
from typing import Any


class FaultInjector:
    def __init__(
        self,
        target: Any,
        methods: Iterable[str],
        error: Callable[[], BaseException],
        *,
        rate: float = 1.0,
        when: str = "before",
        seed: int = 0,
        fail_calls: Collection[int] | None = None,
    ) -> None:
        if when not in ("before", "after", "mixed"):
            raise ValueError("when must be 'before', 'after' or 'mixed'")
        # Own state lives in __dict__ under _fi_ names; everything else is forwarded.
        self._fi_target = target
        self._fi_methods = frozenset(methods)
        self._fi_error = error
        self._fi_rate = rate
        self._fi_when = when
        self._fi_rng = random.Random(seed)
        self._fi_fail_calls = None if fail_calls is None else frozenset(fail_calls)
        self.calls = 0  # calls of watched methods, failed or not (1-based numbering)
        self.failed_before = 0
        self.failed_after = 0

    @property
    def failures(self) -> int:
        return self.failed_before + self.failed_after

    def _should_fail(self) -> bool:
        if self._fi_fail_calls is not None:
            return self.calls in self._fi_fail_calls
        return self._fi_rng.random() < self._fi_rate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fi_target, name)
        if name not in self._fi_methods or not callable(attr):
            return attr

        def watched(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if not self._should_fail():
                return attr(*args, **kwargs)
            when = self._fi_when
            if when == "mixed":
                when = self._fi_rng.choice(("before", "after"))
            if when == "before":
                self.failed_before += 1
                raise self._fi_error()
            attr(*args, **kwargs)
            self.failed_after += 1
            raise self._fi_error()

        return watched

    def __repr__(self) -> str:
        return f"FaultInjector({self._fi_target!r}, methods={sorted(self._fi_methods)})"
