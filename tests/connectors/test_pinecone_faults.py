"""Pinecone faults at the wire: the fake answers 5xx, 429 with Retry-After, or drops the
connection (before or after applying a write); the real SDK and bge-vdb's retry policy handle
it. Retry waits are recorded, never slept."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from bge_vdb.connectors.pinecone import PineconeStore
from bge_vdb.errors import ServerUnreachable, TransientError, WriteError
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import connect
from bge_vdb.types import Record
from tests.fakes.pinecone_server import FakePinecone, running_pinecone_fake

DIM = 8


@pytest.fixture
def fake() -> Iterator[FakePinecone]:
    with running_pinecone_fake() as f:
        yield f


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def store(fake: FakePinecone, waits: list[float]) -> Iterator[PineconeStore]:
    with connect(fake.url, sleep=lambda s: None) as s:
        s.retry_policy = RetryPolicy(attempts=6, max_total=1e9, sleep=waits.append)
        assert isinstance(s, PineconeStore)
        yield s


def records(n: int, seed: int = 0) -> list[Record]:
    vecs = np.random.default_rng(seed).normal(size=(n, DIM))
    return [Record(f"r{i:03d}", vecs[i], f"text {i}", {"i": i}) for i in range(n)]


def requests_to(fake: FakePinecone, suffix: str) -> list[int]:
    return [size for _, path, size in fake.requests if path.endswith(suffix)]


def stored_ids(fake: FakePinecone, index: str = "docs") -> list[str]:
    return sorted(fake.indexes[index].namespaces.get("", {}))


def test_5xx_is_retried_by_bge_vdb_alone(fake: FakePinecone, store: PineconeStore, waits: list[float]) -> None:
    col = store.collection("docs", dim=DIM)
    fake.requests.clear()
    fake.inject("status", path="/vectors/upsert", times=2, status=503)
    res = col.upsert(records(20))
    assert res.written == 20 and res.ok
    # One HTTP request per bge-vdb attempt: the SDK's own retries are off, so nothing multiplies.
    assert len(requests_to(fake, "/vectors/upsert")) == 3 and len(waits) == 2
    assert stored_ids(fake) == [f"r{i:03d}" for i in range(20)] and col.count() == 20


def test_501_not_implemented_is_permanent(fake: FakePinecone, store: PineconeStore, waits: list[float]) -> None:
    # 501: the server does not implement the request; asking again cannot succeed.
    col = store.collection("docs", dim=DIM)
    fake.requests.clear()
    fake.inject("status", path="/vectors/upsert", status=501)
    with pytest.raises(WriteError, match="501"):
        col.upsert(records(3))
    assert len(requests_to(fake, "/vectors/upsert")) == 1 and waits == []


def test_429_retry_after_is_honoured(fake: FakePinecone, store: PineconeStore, waits: list[float]) -> None:
    col = store.collection("docs", dim=DIM)
    fake.inject("status", path="/vectors/upsert", status=429, retry_after=7)
    assert col.upsert(records(5)).written == 5
    assert len(waits) == 1 and waits[0] >= 7
    fake.inject("status", path="/query", status=429, retry_after=3)
    assert len(col.search(records(1)[0].vector, k=3)) == 3
    assert len(waits) == 2 and waits[1] >= 3


@pytest.mark.parametrize("kind", ["drop", "drop_after"])
def test_dropped_connections_land_exactly_once(
    fake: FakePinecone, store: PineconeStore, waits: list[float], kind: str
) -> None:
    col = store.collection("docs", dim=DIM)
    store.max_batch_count = 10  # type: ignore[misc]
    fake.requests.clear()
    fake.inject(kind, path="/vectors/upsert", times=3)
    recs = records(50)
    res = col.upsert(recs)
    assert res.written == 50 and res.ok and len(waits) == 3
    assert len(requests_to(fake, "/vectors/upsert")) == 5 + 3
    assert stored_ids(fake) == sorted(r.id for r in recs)  # each exactly once, none lost
    assert col.count() == 50
    assert [r.metadata["i"] for r in col.fetch(["r007", "r049"])] == [7, 49]


@pytest.mark.parametrize("suffix", ["/query", "/vectors/fetch", "/vectors/list", "/describe_index_stats"])
def test_reads_are_retried(fake: FakePinecone, store: PineconeStore, waits: list[float], suffix: str) -> None:
    col = store.collection("docs", dim=DIM)
    recs = records(30)
    col.upsert(recs)
    fake.inject("status", path=suffix, times=1, status=502)
    fake.inject("drop", path=suffix, times=1)
    assert [h.id for h in col.search(recs[4].vector, k=1)] == ["r004"]
    assert [r.id for r in col.fetch(["r001", "r029"])] == ["r001", "r029"]
    assert sorted(r.id for page in col.scroll(7) for r in page) == [r.id for r in recs]
    assert col.count() == 30
    assert len(waits) == 2


def test_control_plane_faults_create_the_index_once(fake: FakePinecone, store: PineconeStore,
                                                    waits: list[float]) -> None:
    fake.inject("status", path="/indexes", times=1, status=500)  # POST /indexes
    fake.inject("drop_after", path="/indexes", times=1)  # created, answer lost: the retry gets 409
    fake.inject("status", path="/indexes/docs", times=1, status=503)  # describe while waiting
    col = store.collection("docs", dim=DIM)
    assert list(fake.indexes) == ["docs"] and len(waits) >= 3
    assert col.upsert(records(3)).written == 3 and col.count() == 3


def test_persistent_5xx_gives_up_after_the_policy(fake: FakePinecone, store: PineconeStore) -> None:
    col = store.collection("docs", dim=DIM)
    waits: list[float] = []
    store.retry_policy = RetryPolicy(attempts=3, sleep=waits.append)
    fake.requests.clear()
    fake.inject("status", path="/vectors/upsert", times=1000, status=503)
    res = col.upsert(records(5), raise_on_error=False)
    assert res.written == 0 and [f.id for f in res.failed] == [f"r{i:03d}" for i in range(5)]
    assert "503" in res.failed[0].reason
    assert len(requests_to(fake, "/vectors/upsert")) == 3 and len(waits) == 2


def test_unreachable_host_is_a_clear_error_after_bounded_retries() -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    store = PineconeStore(api_key="sk-secret-do-not-print", host=f"http://127.0.0.1:{port}")
    store.retry_policy = RetryPolicy(attempts=3, sleep=waits.append)
    with pytest.raises(ServerUnreachable) as err:
        store.collection("docs", dim=DIM)
    assert isinstance(err.value, TransientError) and len(waits) == 2
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "sk-secret" not in str(err.value) and "sk-secret" not in repr(store)
    store.close()
