"""The model-based test of sync (tests/model_based/sync_machine.py) on the memory store, Qdrant
local mode and Milvus Lite, through ``sync_corpus`` and through the per-batch path of
``sync_dataset`` (Ray's workers and driver, without Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from bge_vdb.store import VectorStore
from tests.model_based.budget import Budget
from tests.model_based.sync_machine import RayPathMachine, SyncMachine


def examples(quarter: bool) -> settings:
    """The profile's sizes (tests/conftest.py): 200 on the memory store through ``sync_corpus``
    in CI; a quarter (50) on the embedded engines, whose every call costs milliseconds, and on
    the Ray batch path, which shares the sync machine's rules and costs CI the most per example."""
    base = settings.default
    return settings(base, max_examples=max(25, base.max_examples // 4) if quarter else base.max_examples)


def run(machine: type[SyncMachine], quarter: bool, budget: Budget) -> None:
    SyncMachine.seen.clear()
    budget.run(lambda each: run_state_machine_as_test(machine, settings=each), examples(quarter))
    seen = SyncMachine.seen
    print(f"\n{machine.__name__} ({budget.describe()}): " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
    # The faults really happened and were recovered from (not just generated).
    assert seen["syncs crashed"] > 0 and seen["syncs with failures"] > 0
    assert seen["dirty documents resolved by a later run"] > 0 and seen["documents split"] > 0


def test_sync_model_memory(budget: Budget) -> None:
    run(SyncMachine, False, budget)


def test_sync_model_memory_through_the_ray_batch_path(budget: Budget) -> None:
    """``sync_dataset``'s workers and driver (``sync_rows`` + ``Driver``), without Ray."""
    run(RayPathMachine, True, budget)


@pytest.fixture
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    from tests.support.stores import STORE_FACTORIES

    with STORE_FACTORIES[request.param](tmp_path) as store:
        yield store


@pytest.mark.slow
@pytest.mark.parametrize("shared", ["qdrant-local", "milvus-lite"], indirect=True)
def test_sync_model_real_engine(shared: VectorStore, budget: Budget) -> None:
    class OnEngine(SyncMachine):
        make_store = staticmethod(lambda: shared)

    run(OnEngine, True, budget)
