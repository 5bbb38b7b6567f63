"""Weaviate through the conformance suite: the real weaviate-client against the wire-level fake
(tests/fakes/weaviate_server.py). Faults are raised at the gRPC stub, below the SDK, so the SDK's
own exception wrapping and our ``_map_errors`` are what is tested."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import weaviate.classes as wvc

from bge_vdb.store import VectorStore
from bge_vdb.types import Distance, Document
from tests.conformance.suite import DIM, StoreConformance
from tests.fakes.weaviate_server import running_weaviate_fake
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES


class RpcFailure(grpc.RpcError):
    """What a grpc stub raises: an RpcError carrying a status code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class TestWeaviate(StoreConformance):
    write_methods = ("BatchObjects",)

    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES["weaviate-fake"](tmp_path) as s:
            yield s

    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        # As another tool would: a self-provided vector, no bge-vdb description. Weaviate keeps
        # no dimension in its schema, so ``dim`` cannot be recorded.
        distance = {"cosine": wvc.config.VectorDistances.COSINE, "euclid": wvc.config.VectorDistances.L2_SQUARED}[metric]
        store.client.collections.create(  # type: ignore[attr-defined]
            name.capitalize(), vector_config=wvc.config.Configure.Vectors.self_provided(
                vector_index_config=wvc.config.Configure.VectorIndex.hnsw(distance_metric=distance)))

    def inject_faults(self, store: VectorStore, wrap: Any) -> None:
        stub = store.client._connection._grpc_stub  # type: ignore[attr-defined]
        stub._stub = wrap(stub._stub)  # below our no-SDK-retry layer, as the network would fail

    def transient_error(self) -> BaseException:
        return RpcFailure(grpc.StatusCode.UNAVAILABLE, "connection reset by peer")

    def permanent_error(self) -> BaseException:
        return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "invalid batch")

    def test_collection_made_outside_opens(self, store: VectorStore, emb: HashEmbedder) -> None:
        # Weaviate-specific version: an empty class made elsewhere has no dimension yet (0); it
        # takes the one asked for, and afterwards reports the one its vectors have.
        self.create_native_collection(store, "ext", DIM, "cosine")
        spec = store.describe_collection("ext")
        assert spec is not None and spec.dim == 0 and spec.distance == Distance.COSINE
        assert not spec.fingerprint
        col = store.collection("ext", embedder=emb)
        col.upsert([Document("d1", "hello world")])
        assert [h.id for h in col.search("hello world", k=1)] == ["d1"]
        assert col.count() == 1
        again = store.describe_collection("ext")
        assert again is not None and again.dim == DIM

    def test_empty_foreign_class_needs_a_dimension(self, store: VectorStore) -> None:
        from bge_vdb.errors import ConfigError

        self.create_native_collection(store, "ext", DIM, "cosine")
        with pytest.raises(ConfigError, match="does not record a dimension"):
            store.collection("ext")
        assert store.collection("ext", dim=DIM).dim == DIM


def test_factory_hands_out_an_empty_store() -> None:
    with running_weaviate_fake() as fake:
        assert fake.classes == {}
