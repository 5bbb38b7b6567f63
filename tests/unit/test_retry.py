"""The retry policy: TransientError only, bounded, backoff with jitter, Retry-After honoured.
Nothing sleeps: waits go to an injected ``sleep``."""

from __future__ import annotations

import pytest

from bge_vdb.errors import ConnectorError, InputError, TransientError
from bge_vdb.retry import NO_RETRY, RetryPolicy, call_with_retry


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, x: int, *, y: int = 0) -> int:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return x + y


def test_transient_errors_are_retried_until_success() -> None:
    waits: list[float] = []
    fn = Flaky([TransientError("a"), TransientError("b")])
    assert call_with_retry(fn, 1, y=2, policy=RetryPolicy(sleep=waits.append)) == 3
    assert fn.calls == 3 and len(waits) == 2


@pytest.mark.parametrize("error", [ConnectorError("400"), InputError("bad"), KeyError("x")])
def test_other_errors_pass_at_once(error: BaseException) -> None:
    waits: list[float] = []
    fn = Flaky([error])
    with pytest.raises(type(error)):
        call_with_retry(fn, 1, policy=RetryPolicy(sleep=waits.append))
    assert fn.calls == 1 and waits == []


def test_gives_up_after_attempts_with_the_last_error() -> None:
    waits: list[float] = []
    errors: list[BaseException] = [TransientError(f"try {i}") for i in range(10)]
    fn = Flaky(errors)
    with pytest.raises(TransientError, match="try 3"):
        call_with_retry(fn, 1, policy=RetryPolicy(attempts=4, sleep=waits.append))
    assert fn.calls == 4 and len(waits) == 3
    fn = Flaky([TransientError("once")])
    with pytest.raises(TransientError):
        call_with_retry(fn, 1, policy=NO_RETRY)
    assert fn.calls == 1


def test_backoff_doubles_with_bounded_jitter_and_cap() -> None:
    policy = RetryPolicy(initial=0.5, max_wait=4.0, jitter=0.5)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        waits = [policy.wait_for(attempt, None) for _ in range(200)]
        assert all(base <= w <= base * 1.5 for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) > min(waits)  # jitter really varies


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(initial=0.5, max_wait=2.0, jitter=0.0)
    assert policy.wait_for(1, 5.0) == 5.0  # the server's hint wins over a shorter backoff
    assert policy.wait_for(1, 1000.0) == 8.0  # but never more than 4 x max_wait
    assert policy.wait_for(3, 0.1) == 2.0  # a shorter hint does not shorten our backoff
    waits: list[float] = []
    fn = Flaky([TransientError("429", retry_after=3.0)])
    call_with_retry(fn, 1, policy=RetryPolicy(jitter=0.0, sleep=waits.append))
    assert waits == [3.0]
