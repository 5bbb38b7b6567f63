"""Milvus through the conformance suite: a Milvus Lite file, Milvus Lite served on a loopback port
reached through the server URL (``milvus://127.0.0.1:PORT``), and the real Milvus 2.3.5 standalone
server (tests/support/milvus_standalone.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from bge_vdb.store import VectorStore
from tests.conformance.suite import StoreConformance
from tests.support.stores import STORE_FACTORIES


class _MilvusHooks(StoreConformance):
    factory = ""
    write_methods = ("upsert",)

    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES[self.factory](tmp_path) as s:
            yield s

    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        # As another tool would make it: other field names, no bge-vdb fields or properties.
        client: MilvusClient = store._client  # type: ignore[attr-defined]
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("text", DataType.VARCHAR, max_length=4096, nullable=True)
        index = client.prepare_index_params()
        index.add_index("embedding", index_type="FLAT", metric_type={"cosine": "COSINE", "euclid": "L2"}[metric])
        client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")

    def inject_faults(self, store: VectorStore, wrap: Callable[[Any], Any]) -> None:
        store._client = wrap(store._client)  # type: ignore[attr-defined]

    def transient_error(self) -> BaseException:
        # What pymilvus raises once its own channel retries give up on an unreachable server.
        return MilvusException(grpc.StatusCode.UNAVAILABLE, "[upsert] Retry timeout: 30s, failed to connect")

    def permanent_error(self) -> BaseException:
        # Milvus's ParameterInvalid (1100): a request the server refuses.
        return MilvusException(1100, "invalid parameter: field vector dimension mismatch")


class TestMilvusLite(_MilvusHooks):
    factory = "milvus-lite"


class TestMilvusLiteServed(_MilvusHooks):
    factory = "milvus-lite-served"


class TestMilvusStandalone(_MilvusHooks):
    factory = "milvus-standalone"
