"""The numpy reference store through the conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bge_vdb.store import VectorStore
from bge_vdb.types import CollectionSpec, Distance
from tests.conformance.suite import StoreConformance
from tests.support.stores import STORE_FACTORIES


class TestMemory(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES["memory"](tmp_path) as s:
            yield s

    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        # The memory store has no SDK: its primitive is "native"; no fingerprint, as elsewhere.
        distance = {"cosine": Distance.COSINE, "euclid": Distance.EUCLID}[metric]
        store.create_collection(CollectionSpec(name, dim, distance, None))
