"""The retry policy: tenacity, retrying :class:`TransientError` only, honouring Retry-After.

Every connector call that may fail transiently goes through :func:`call_with_retry`. The policy
is a small frozen value so tests inject ``sleep`` (never really sleeping) and a tight ``stop``.
Worst case with the defaults: 6 attempts, waits of at most 0.5+1+2+4+8 s plus jitter, and a hard
cap of 60 s of waiting in total, so a dead server yields ServerUnreachable within about a minute.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from .errors import TransientError

log = logging.getLogger("bge_vdb.retry")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry transient failures.

    Attributes:
        attempts: total tries, the first included.
        initial: first backoff in seconds; it doubles each time, capped at ``max_wait``.
        max_wait: cap of one wait.
        max_total: cap of the time spent waiting (and trying) over all attempts.
        jitter: random extra wait, as a fraction of the backoff, so workers do not retry in step.
        sleep: injected for tests; ``time.sleep`` otherwise.
    """

    attempts: int = 6
    initial: float = 0.5
    max_wait: float = 8.0
    max_total: float = 60.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.max_wait, self.initial * (2 ** (attempt - 1)))
        backoff += random.uniform(0, self.jitter * backoff)
        if retry_after is not None and retry_after > 0:
            # The server knows better than our backoff, but a huge hint must not hang a job.
            backoff = max(backoff, min(retry_after, self.max_wait * 4))
        return backoff


DEFAULT_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        return policy.wait_for(state.attempt_number, hint)

    return wait


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("transient error (try %d), retrying: %s", state.attempt_number, exc)


def call_with_retry(fn: Callable[..., T], *args: Any, policy: RetryPolicy = DEFAULT_POLICY, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)``, retrying TransientError by ``policy``; other errors pass at once.

    After the last attempt the final TransientError is re-raised unchanged.
    """
    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=_wait(policy),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_total),
        sleep=policy.sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(fn, *args, **kwargs)
