"""Sync tests run on every registered connector (tests/support/stores.py STORE_FACTORIES)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_vdb.retry import RetryPolicy
from bge_vdb.store import VectorStore
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES

NO_SLEEP = RetryPolicy(attempts=6, sleep=lambda _s: None)


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    with STORE_FACTORIES[request.param](tmp_path) as s:
        s.retry_policy = NO_SLEEP
        yield s


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=16, max_length=40)
