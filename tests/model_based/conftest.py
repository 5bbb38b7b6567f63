"""The ``budget`` fixture: each model-based test's share of ``BGE_VDB_MODEL_MINUTES``
(tests/model_based/budget.py), the time left divided by the budgeted tests left to run."""

from __future__ import annotations

import time

import pytest

from tests.model_based.budget import Budget, session_minutes

_budgeted: list[str] = []  # node ids of the tests taking the fixture, in run order
_deadline: list[float] = []  # set when the first of them starts


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _budgeted[:] = [item.nodeid for item in items if "budget" in getattr(item, "fixturenames", ())]


@pytest.fixture
def budget(request: pytest.FixtureRequest) -> Budget:
    minutes = session_minutes()
    if minutes is None:
        return Budget()
    now = time.monotonic()
    if not _deadline:
        _deadline.append(now + minutes * 60)
    node = request.node.nodeid
    left = len(_budgeted) - _budgeted.index(node) if node in _budgeted else 1
    return Budget(until=now + max(0.0, _deadline[0] - now) / left)
