"""A wall-clock bound for long local runs of the model-based tests.

Hypothesis bounds a run by a number of examples, not by time, and an example of the state
machine costs from a millisecond to seconds. With ``BGE_VDB_MODEL_MINUTES=M`` in the
environment, the model-based tests of one pytest session together take about ``M`` minutes:
each test gets an equal share of the time left when it starts (tests/model_based/conftest.py)
and spends it in rounds of fresh random examples (at most ``ROUND`` each, the profile's other
settings), starting no round that its previous round's length says would overrun the share.
A failure ends the test at once, with Hypothesis's shrunk example. Without the variable (CI),
a test runs the profile's examples once, as Hypothesis always does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import settings

ENV = "BGE_VDB_MODEL_MINUTES"
ROUND = 50  # examples per round: short rounds waste little of a share at its end


def session_minutes() -> float | None:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    try:
        minutes = float(value)
    except ValueError:
        raise ValueError(f"{ENV}={value!r}: expected a number of minutes") from None
    if minutes <= 0:
        raise ValueError(f"{ENV}={value!r}: expected a positive number of minutes")
    return minutes


@dataclass
class Budget:
    """The time one test may spend; ``until`` is a ``time.monotonic()`` instant, or None."""

    until: float | None = None
    rounds: int = 0

    def run(self, run_round: Callable[[settings], None], base: settings) -> None:
        """Call ``run_round`` with the settings of each round: once with ``base`` when no budget
        is set, else rounds of random examples until the budget is spent (at least one)."""
        if self.until is None:
            run_round(base)
            self.rounds = 1
            return
        each = settings(base, max_examples=min(base.max_examples, ROUND), derandomize=False)
        last = 0.0
        while True:
            start = time.monotonic()
            if self.rounds and start + last > self.until:
                return
            run_round(each)
            self.rounds += 1
            last = time.monotonic() - start

    def describe(self) -> str:
        return "one run" if self.until is None else f"{self.rounds} rounds of up to {ROUND} examples"
