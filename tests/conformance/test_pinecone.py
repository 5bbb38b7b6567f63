"""Pinecone through the conformance suite: the real pinecone SDK against the wire-level fake
(tests/fakes/pinecone_server.py), which evaluates filters and cosine scores itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pinecone.errors.exceptions import ApiError, PineconeConnectionError

from bge_vdb.connectors.pinecone import PineconeStore, index_name
from bge_vdb.store import VectorStore
from tests.conformance.suite import StoreConformance
from tests.support.stores import STORE_FACTORIES


class TestPinecone(StoreConformance):
    write_methods = ("upsert",)

    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES["pinecone-fake"](tmp_path) as s:
            yield s

    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        # As another tool would: a plain vector index, no bge-vdb record in it.
        assert isinstance(store, PineconeStore)
        store._client.indexes.create(
            name=index_name(name), dimension=dim, metric={"cosine": "cosine", "euclid": "euclidean"}[metric],
            spec={"serverless": {"cloud": "aws", "region": "us-east-1"}}, timeout=-1,
        )

    def inject_faults(self, store: VectorStore, wrap: Callable[[Any], Any]) -> None:
        # The data-plane client of each open index (the suite's tests use one collection).
        assert isinstance(store, PineconeStore) and store._indexes
        store._indexes = {k: wrap(v) for k, v in store._indexes.items()}

    def transient_error(self) -> BaseException:
        # What the SDK raises when the connection is refused or reset.
        return PineconeConnectionError("[Errno 111] Connection refused; request to http://127.0.0.1:1")

    def permanent_error(self) -> BaseException:
        return ApiError("Vector dimension 8 does not match the dimension of the index 16", 400)
