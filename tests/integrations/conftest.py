"""Shared fixtures: every integration test runs on each of the six stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_vdb.store import VectorStore
from tests.support.stores import STORE_FACTORIES

# The six databases the integrations must behave the same on. A factory that its connector's
# owner has not registered yet is skipped with that reason (never silently dropped).
STORE_NAMES = ("memory", "qdrant-local", "milvus-lite", "weaviate-fake", "pinecone-fake", "pgvector")
_ALIASES = {"qdrant-local": ("qdrant-local", "qdrant-memory")}


def open_store(name: str, tmp_path: Path) -> Iterator[VectorStore]:
    for key in _ALIASES.get(name, (name,)):
        factory = STORE_FACTORIES.get(key)
        if factory is not None:
            with factory(tmp_path) as store:
                yield store
            return
    pytest.skip(f"store factory {name!r} is not registered in tests/support/stores.py yet")


@pytest.fixture(params=STORE_NAMES)
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    yield from open_store(request.param, tmp_path)
