"""Pinecone's limits: 2 MB per request, 1000 vectors per upsert, 40 KB of metadata per record,
1000 ids per fetch, 100 ids per list page. The fake enforces them (checked first, straight
through the SDK); the connector stays under them or reports the one record that cannot."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from pinecone import Pinecone
from pinecone.errors.exceptions import ApiError

from bge_vdb.connectors.pinecone import PineconeStore
from bge_vdb.errors import InputError, WriteError
from bge_vdb.store import connect
from bge_vdb.types import Record
from tests.fakes.pinecone_server import (
    API_KEY,
    MAX_REQUEST_BYTES,
    FakePinecone,
    running_pinecone_fake,
)

DIM = 8


@pytest.fixture
def fake() -> Iterator[FakePinecone]:
    with running_pinecone_fake() as f:
        yield f


@pytest.fixture
def store(fake: FakePinecone) -> Iterator[PineconeStore]:
    with connect(fake.url, sleep=lambda s: None) as s:
        assert isinstance(s, PineconeStore)
        yield s


def vec(seed: int, dim: int = DIM) -> list[float]:
    return list(np.random.default_rng(seed).normal(size=dim))


def test_fake_enforces_the_service_limits(fake: FakePinecone) -> None:
    pc = Pinecone(api_key=API_KEY, host=fake.control_host)
    pc.indexes.create(name="raw", dimension=4, metric="cosine",
                      spec={"serverless": {"cloud": "aws", "region": "us-east-1"}}, timeout=-1)
    index = pc.index(name="raw")
    refusals = {
        "over 2 MB": lambda: index.upsert(vectors=[{"id": f"v{i}", "values": [0.1] * 4,
                                                    "metadata": {"t": "x" * 30_000}} for i in range(80)]),
        "over 1000 vectors": lambda: index.upsert(vectors=[(f"v{i}", [0.1] * 4) for i in range(1001)]),
        "over 40 KB metadata": lambda: index.upsert(vectors=[("v", [0.1] * 4, {"t": "x" * 41_000})]),
        "over 1000 ids": lambda: index.fetch(ids=[f"v{i}" for i in range(1001)]),
        "wrong dimension": lambda: index.upsert(vectors=[("v", [0.1] * 5)]),
    }
    for what, call in refusals.items():
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status_code == 400, what
    # What the SDK already refuses client-side, sent raw: the fake refuses it too.
    headers = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"}
    base = f"{fake.control_host}/index/raw"
    assert httpx.get(f"{base}/vectors/list?limit=101", headers=headers).status_code == 400
    for bad in ({"a": {"b": 1}}, {"a": [1, 2]}, {"a": None}):  # "Null metadata values aren't supported"
        body = {"vectors": [{"id": "v", "values": [0.1] * 4, "metadata": bad}]}
        assert httpx.post(f"{base}/vectors/upsert", json=body, headers=headers).status_code == 400
    assert httpx.get(f"{base}/vectors/list", headers={"Api-Key": "wrong"}).status_code == 401
    assert index.describe_index_stats().total_vector_count == 0  # nothing half-applied
    # What Pinecone does to accepted metadata: numbers come back as floats.
    index.upsert(vectors=[("v", [0.1] * 4, {"n": 1, "tags": ["a"]})])
    meta = index.fetch(ids=["v"]).vectors["v"].metadata
    assert meta == {"n": 1.0, "tags": ["a"]} and type(meta["n"]) is float
    pc.close()


def test_record_over_40kb_of_pinecone_metadata_is_reported_by_id(store: PineconeStore) -> None:
    col = store.collection("docs", dim=DIM)
    # Text and metadata are each under 40 KB, but together (as Pinecone metadata) over it.
    big = Record("big-one", vec(1), "x" * 30_000, {"blob": "y" * 15_000})
    res = col.upsert([Record("a", vec(2), "a"), big, Record("b", vec(3), "b")], raise_on_error=False)
    assert res.written == 2 and [f.id for f in res.failed] == ["big-one"]
    assert "40960" in res.failed[0].reason
    with pytest.raises(WriteError, match="big-one"):
        col.upsert([big])
    assert col.count() == 2 and col.fetch(["big-one"]) == []


def test_metadata_alone_over_40kb_is_refused_before_writing(store: PineconeStore) -> None:
    col = store.collection("docs", dim=DIM)
    with pytest.raises(InputError, match=r"item 1.*'fat'.*40960"):
        col.upsert([Record("ok", vec(1)), Record("fat", vec(2), metadata={"x": "y" * 41_000})])
    assert col.count() == 0


def test_large_upserts_are_split_under_2mb(fake: FakePinecone, store: PineconeStore) -> None:
    col = store.collection("wide", dim=384)
    vecs = np.random.default_rng(0).normal(size=(600, 384))
    recs = [Record(f"r{i:04d}", vecs[i], "t" * 2000 + str(i), {"i": i, "ü": "ö" * 500}) for i in range(600)]
    fake.requests.clear()
    res = col.upsert(recs)
    assert res.written == 600 and res.ok
    sizes = [size for _, path, size in fake.requests if path.endswith("/vectors/upsert")]
    assert len(sizes) >= 4 and max(sizes) <= MAX_REQUEST_BYTES
    assert max(sizes) > MAX_REQUEST_BYTES // 2  # batches are filled, not needlessly small
    assert col.count() == 600


def test_fetch_and_scroll_stay_under_the_id_limits(fake: FakePinecone, store: PineconeStore) -> None:
    col = store.collection("docs", dim=DIM)
    vecs = np.random.default_rng(1).normal(size=(1500, DIM))
    col.upsert([Record(f"id-{i:05d}", vecs[i]) for i in range(1500)])
    wanted = [f"id-{i:05d}" for i in range(1499, -1, -1)] + ["missing"]
    assert [r.id for r in col.fetch(wanted)] == wanted[:-1]
    pages = list(col.scroll(1000))
    assert sum(len(p) for p in pages) == 1500 and all(len(p) <= 1000 for p in pages)
    assert col.count(where={"missing": {"$exists": False}}) == 1500
