"""Fault injection at the connector edge.

``FaultInjector`` is a proxy around an SDK client object (transient errors, lost responses);
``FaultyStore`` wraps a whole ``VectorStore`` and injects crashes (a ``BaseException`` raised
before or after a write primitive applies) and permanent refusals of chosen records.

``FaultInjector`` forwards every attribute to the real client. For the methods it is told to watch, it
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
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from bge_vdb.errors import ConnectorError, FailedRecord
from bge_vdb.store import VectorStore
from bge_vdb.types import CollectionSpec, Hit, Record


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


# --------------------------------------------------------------------------- store-level faults

class Crash(BaseException):
    """A simulated process death at the connector's edge.

    A ``BaseException``, not an ``Exception``: no ``except Exception`` in the code under test may
    swallow it, just as no code survives a SIGKILL. What the store holds when it is raised is
    exactly what a killed process would leave behind.
    """


Predicate = Callable[[str, Any, VectorStore], bool]
WRITES = ("upsert_records", "delete_ids", "delete_where")


class FaultyStore(VectorStore):
    """A real ``VectorStore`` (``inner``) behind a wrapper that injects crashes and refusals.

    Every primitive is forwarded to ``inner``, a real engine. Faults, all at the primitives:

    * ``crash_on_write(n, when, ops)``: the ``n``-th write call from now among ``ops`` (by
      default every write primitive: ``upsert_records``, ``delete_ids``, ``delete_where``;
      1-based) raises :class:`Crash`, ``"before"`` the call reaches the database or ``"after"``
      it applied.
    * ``crash_if(predicate, when)``: the first write call for which ``predicate(op, arg, inner)``
      holds crashes (``arg``: the records or ids of the call). One-shot.
    * ``refused``: ids the database refuses permanently. ``refuse_mode="record"`` returns them
      as per-record failures (the rest of the call lands); ``"batch"`` fails the whole request
      with a permanent ``ConnectorError`` when it holds one, as a server rejecting a request
      does. A delete naming a refused id is refused as a whole in both modes.
    """

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.scheme = inner.scheme  # type: ignore[misc]
        self.max_batch_count = inner.max_batch_count  # type: ignore[misc]
        self.max_batch_bytes = inner.max_batch_bytes  # type: ignore[misc]
        self.max_metadata_bytes = inner.max_metadata_bytes  # type: ignore[misc]
        self.retry_policy = inner.retry_policy
        self.refused: set[str] = set()
        self.refuse_mode = "record"
        self.writes = 0  # write calls seen, failed or not
        self.crashes = 0
        self._crash_at: int | None = None
        self._crash_when = "before"
        self._crash_ops: tuple[str, ...] = WRITES
        self._counted = 0  # write calls among _crash_ops
        self._predicate: tuple[Predicate, str] | None = None

    # ---- arming
    def crash_on_write(self, n: int, when: str = "before", ops: tuple[str, ...] = WRITES) -> None:
        if when not in ("before", "after") or n < 1 or not set(ops) <= set(WRITES):
            raise ValueError(f"need n >= 1, when 'before' or 'after', ops among {WRITES}")
        self._crash_at, self._crash_when, self._crash_ops = self._counted + n, when, tuple(ops)

    def crash_if(self, predicate: Predicate, when: str = "before") -> None:
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        self._predicate = (predicate, when)

    def disarm(self) -> None:
        self._crash_at, self._predicate = None, None

    def __repr__(self) -> str:
        return f"FaultyStore({self.inner!r})"

    def _write(self, op: str, arg: Any, call: Callable[[], Any]) -> Any:
        self.writes += 1
        self._counted += op in self._crash_ops
        when = None
        if self._crash_at is not None and op in self._crash_ops and self._counted == self._crash_at:
            when, self._crash_at = self._crash_when, None
        elif self._predicate is not None and self._predicate[0](op, arg, self.inner):
            when, self._predicate = self._predicate[1], None
        if when == "before":
            self.crashes += 1
            raise Crash(f"crash before {op} (write call {self.writes})")
        result = call()
        if when == "after":
            self.crashes += 1
            raise Crash(f"crash after {op} (write call {self.writes})")
        return result

    # ---- writes (faults)
    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        bad = [r for r in records if r.id in self.refused]
        if bad and self.refuse_mode == "batch":
            def refuse_all() -> list[FailedRecord]:
                raise ConnectorError(f"request refused by the database: record {bad[0].id!r} is invalid")
            return self._write("upsert_records", records, refuse_all)  # type: ignore[no-any-return]
        good = [r for r in records if r.id not in self.refused]

        def call() -> list[FailedRecord]:
            failed = list(self.inner.upsert_records(name, good)) if good else []
            return failed + [FailedRecord(r.id, "refused by the database") for r in bad]

        return self._write("upsert_records", records, call)  # type: ignore[no-any-return]

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        bad = [i for i in ids if i in self.refused]

        def call() -> None:
            if bad:
                raise ConnectorError(f"delete refused by the database: id {bad[0]!r}")
            self.inner.delete_ids(name, ids)

        self._write("delete_ids", list(ids), call)

    def delete_where(self, name: str, where: Any) -> int:
        return int(self._write("delete_where", where, lambda: self.inner.delete_where(name, where)))

    # ---- everything else is forwarded as is
    def list_collections(self) -> list[str]:
        return self.inner.list_collections()

    def describe_collection(self, name: str) -> CollectionSpec | None:
        return self.inner.describe_collection(name)

    def create_collection(self, spec: CollectionSpec) -> None:
        self.inner.create_collection(spec)

    def drop_collection(self, name: str) -> None:
        self.inner.drop_collection(name)

    def set_fingerprint(self, name: str, fingerprint: Any) -> None:
        self.inner.set_fingerprint(name, fingerprint)

    def query(self, name: str, vector: Any, k: int, where: Any, with_vectors: bool) -> list[Hit]:
        return self.inner.query(name, vector, k, where, with_vectors)

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        return self.inner.fetch_records(name, ids, with_vectors)

    def scroll_page(self, name: str, cursor: Any, limit: int, where: Any, with_vectors: bool) -> Any:
        return self.inner.scroll_page(name, cursor, limit, where, with_vectors)

    def count(self, name: str, where: Any = None) -> int:
        return self.inner.count(name, where)

    def record_nbytes(self, record: Record) -> int:
        return self.inner.record_nbytes(record)

    def close(self) -> None:
        self.inner.close()
