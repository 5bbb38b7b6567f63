"""Weaviate-only behaviour through the real weaviate-client against the wire-level fake: injected
HTTP 5xx / 429 with Retry-After / dropped connections, gRPC failures before and after the write,
per-object batch errors, an unreachable server, names, tenants and API keys."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from bge_vdb.connectors.weaviate import WeaviateStore, class_name, path_token
from bge_vdb.errors import (
    CollectionError,
    ConnectorError,
    ServerUnreachable,
    TransientError,
    WriteError,
)
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import connect, stable_uuid
from bge_vdb.types import Record
from tests.fakes.weaviate_server import FakeWeaviate, running_weaviate_fake


@pytest.fixture
def fake() -> Iterator[FakeWeaviate]:
    with running_weaviate_fake() as f:
        yield f


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def store(fake: FakeWeaviate, waits: list[float]) -> Iterator[WeaviateStore]:
    with connect(fake.url, retry_policy=RetryPolicy(attempts=4, sleep=waits.append)) as s:
        yield s  # type: ignore[misc]


def _records(n: int, seed: int = 0) -> list[Record]:
    vecs = np.random.default_rng(seed).normal(size=(n, 8))
    return [Record(f"r{i:02d}", vecs[i], f"text {i}", {"i": i}) for i in range(n)]


def _stored_uuids(fake: FakeWeaviate, cls: str) -> list[str]:
    return sorted(fake.data[cls][""])


def test_http_5xx_then_success(fake: FakeWeaviate, store: WeaviateStore, waits: list[float]) -> None:
    fake.inject("http", "/v1/schema", status=503, times=2)
    col = store.collection("docs", dim=8)
    assert col.name == "docs" and len(waits) == 2 and "Docs" in fake.classes


def test_501_not_implemented_is_permanent(fake: FakeWeaviate, store: WeaviateStore, waits: list[float]) -> None:
    # 501: the server does not implement the request; asking again cannot succeed.
    fake.inject("http", "/v1/schema", status=501, times=5)
    with pytest.raises(ConnectorError, match="501") as err:
        store.collection("docs", dim=8)
    assert not isinstance(err.value, TransientError) and waits == []


def test_429_retry_after_is_honoured(fake: FakeWeaviate, store: WeaviateStore, waits: list[float]) -> None:
    store.collection("docs", dim=8)
    fake.inject("http", "/v1/schema", status=429, retry_after=7)
    with pytest.raises(TransientError) as err:  # a primitive alone does not retry
        store.describe_collection("docs")
    assert err.value.retry_after == 7.0 and "429" in str(err.value)
    fake.inject("http", "/v1/schema", status=429, retry_after=7)
    col = store.collection("docs", dim=8)
    assert col.dim == 8 and len(waits) == 1 and waits[0] >= 7


def test_dropped_http_connection_is_transient(fake: FakeWeaviate, store: WeaviateStore, waits: list[float]) -> None:
    fake.inject("drop", "/v1/schema")
    store.collection("docs", dim=8)
    assert len(waits) == 1 and "Docs" in fake.classes


@pytest.mark.parametrize("after_apply", [False, True])
def test_grpc_unavailable_during_write_lands_exactly_once(
    fake: FakeWeaviate, store: WeaviateStore, waits: list[float], after_apply: bool
) -> None:
    col = store.collection("docs", dim=8)
    store.max_batch_count = 5  # type: ignore[misc]
    fake.inject("grpc", "BatchObjects", code=grpc.StatusCode.UNAVAILABLE, times=2, after_apply=after_apply)
    res = col.upsert(_records(12))
    assert res.ok and res.written == 12 and len(waits) == 2
    assert _stored_uuids(fake, "Docs") == sorted(stable_uuid(f"r{i:02d}") for i in range(12))
    assert col.count() == 12


def test_per_object_errors_are_reported_by_id(fake: FakeWeaviate, store: WeaviateStore, waits: list[float]) -> None:
    col = store.collection("docs", dim=8)
    bad = {stable_uuid("r03"): "disk full on shard", stable_uuid("r07"): "vector index busy"}
    fake.inject("object_errors", errors=bad)
    with pytest.raises(WriteError) as err:
        col.upsert(_records(10))
    assert sorted(f.id for f in err.value.failed) == ["r03", "r07"] and err.value.written == 8
    assert "disk full" in str(err.value) and waits == []
    assert col.count() == 8 and col.fetch(["r03"]) == []
    col.upsert([r for r in _records(10) if r.id in ("r03", "r07")])  # re-sending the failed ones
    assert col.count() == 10


def test_whole_batch_refused_is_reported_per_record(fake: FakeWeaviate, store: WeaviateStore) -> None:
    col = store.collection("docs", dim=8)
    fake.inject("object_errors", errors={stable_uuid(r.id): "refused" for r in _records(3)})
    res = col.upsert(_records(3), raise_on_error=False)
    assert sorted(f.id for f in res.failed) == ["r00", "r01", "r02"] and res.written == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_fails_after_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVIATE_API_KEY", "sekrit-from-env")
    waits: list[float] = []
    port = _closed_port()
    with pytest.raises(ServerUnreachable) as err:
        connect(f"weaviate+http://127.0.0.1:{port}?grpc_port={port + 1}", retry_policy=RetryPolicy(attempts=3, sleep=waits.append))
    assert len(waits) == 2 and f"127.0.0.1:{port}" in str(err.value) and "sekrit" not in str(err.value)


def test_api_key_never_shown(fake: FakeWeaviate) -> None:
    url = fake.url.replace("weaviate+http", "weaviate+http")
    with connect(url, api_key="sekrit-arg") as s:
        assert "sekrit" not in repr(s) and "sekrit" not in str(s.__dict__.get("_label"))


def test_names_map_predictably_and_collisions_are_refused(fake: FakeWeaviate, store: WeaviateStore) -> None:
    assert [class_name(n) for n in ("docs", "my-docs", "2024", "名前")] == ["Docs", "My_docs", "C2024", "C__"]
    store.collection("my-docs", dim=8)
    assert store.list_collections() == ["my-docs"] and "My_docs" in fake.classes
    with pytest.raises(CollectionError, match=r"My_docs.*my-docs"):
        store.collection("my_docs", dim=8)
    store.drop("my_docs")  # another collection's class: not dropped
    assert store.list_collections() == ["my-docs"]


def test_path_tokens_are_injective() -> None:
    paths = [("a_b",), ("a", "b"), ("a.b",), ("a b",), ("a__b",), ("a", "_b")]
    assert len({path_token(p) for p in paths}) == len(paths)


def test_fake_enforces_class_name_rule(fake: FakeWeaviate) -> None:
    # As the server does (schema.UppercaseClassName), the first letter is capitalised first.
    assert fake.create_class({"class": "docs"})["class"] == "Docs"
    for bad in ("1docs", "my-docs", "_docs", ""):
        with pytest.raises(ValueError, match="valid class name"):
            fake.create_class({"class": bad})


def test_whitespace_and_types_filter_exactly(store: WeaviateStore) -> None:
    col = store.collection("docs", dim=8)
    vecs = np.eye(8)
    col.upsert([Record("a", vecs[0], metadata={"k": "x"}), Record("b", vecs[1], metadata={"k": " x "}),
                Record("c", vecs[2], metadata={"k": 1}), Record("d", vecs[3], metadata={"k": True}),
                Record("e", vecs[4], metadata={"k": None})])
    ids = lambda where: sorted(r.id for p in col.scroll(where=where) for r in p)  # noqa: E731
    assert ids({"k": "x"}) == ["a"] and ids({"k": 1}) == ["c"] and ids({"k": True}) == ["d"]
    assert ids({"k": {"$ne": "x"}}) == ["b", "c", "d", "e"] and ids({"k": {"$exists": False}}) == ["e"]
    assert ids({"k": {"$gte": 0}}) == ["c"] and ids({"nope": 3}) == []


def test_tenant(fake: FakeWeaviate) -> None:
    with connect(fake.url, tenant="acme") as a, connect(fake.url + "&tenant=globex") as b:
        ca, cb = a.collection("docs", dim=8), b.collection("docs", dim=8)
        ca.upsert(_records(3))
        cb.upsert(_records(1))
        assert (ca.count(), cb.count()) == (3, 1)
        assert sorted(fake.data["Docs"]) == ["acme", "globex"]
    with connect(fake.url) as plain, pytest.raises(Exception, match="tenant"):
        plain.collection("docs", dim=8)
