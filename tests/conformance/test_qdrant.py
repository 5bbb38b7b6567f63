"""Qdrant local mode (in memory and on disk) through the conformance suite, plus what only
Qdrant has: URLs, the local-mode directory lock, points written by other tools, error mapping."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from bge_vdb import filters
from bge_vdb.connectors.qdrant import QdrantStore, to_qdrant_filter
from bge_vdb.errors import (
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    ServerUnreachable,
    TransientError,
    UnsupportedFilter,
)
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import VectorStore, connect
from bge_vdb.types import Record
from tests.conformance.suite import StoreConformance, unit
from tests.support.stores import STORE_FACTORIES

_TRANSIENT = [
    lambda: ResponseHandlingException(httpx.ConnectError("connection refused")),
    lambda: ResponseHandlingException(httpx.ReadTimeout("timed out")),
    lambda: UnexpectedResponse(503, "Service Unavailable", b"{}", httpx.Headers()),
    lambda: ResourceExhaustedResponse("slow down", 1),
]


class QdrantHooks(StoreConformance):
    write_methods = ("upsert",)

    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        distance = {"cosine": models.Distance.COSINE, "euclid": models.Distance.EUCLID}[metric]
        store._client.create_collection(  # type: ignore[attr-defined]
            name, vectors_config=models.VectorParams(size=dim, distance=distance))

    def inject_faults(self, store: VectorStore, wrap: Any) -> None:
        store._client = wrap(store._client)  # type: ignore[attr-defined]

    _kinds = itertools.count()

    def transient_error(self) -> BaseException:
        # Cycle through the SDK's real transient failures: refused, timeout, 503, 429.
        return _TRANSIENT[next(self._kinds) % len(_TRANSIENT)]()

    def permanent_error(self) -> BaseException:
        return UnexpectedResponse(400, "Bad Request", b'{"status":{"error":"Wrong input"}}', httpx.Headers())


class TestQdrantMemory(QdrantHooks):
    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES["qdrant-memory"](tmp_path) as s:
            yield s


class TestQdrantLocal(QdrantHooks):
    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES["qdrant-local"](tmp_path) as s:
            yield s


# ----------------------------------------------------------------------- Qdrant-only behaviour

def test_disk_store_persists_and_close_releases_the_directory(tmp_path: Any) -> None:
    url = f"qdrant://{tmp_path / 'q'}"
    with connect(url) as store:
        col = store.collection("docs", dim=4)
        col.upsert([Record("a", [1, 0, 0, 0], "kept", {"n": 1})])
    with connect(url) as again:  # a second client on the same path works once the first is closed
        (rec,) = again.collection("docs", dim=4).fetch(["a"])
        assert rec.text == "kept" and rec.metadata == {"n": 1}


def test_a_locked_directory_is_a_clear_error(tmp_path: Any) -> None:
    url = f"qdrant://{tmp_path / 'q'}"
    with connect(url), pytest.raises(ConnectorError, match=r"already accessed.*close"):
        connect(url)


def test_options_reach_the_store_and_client() -> None:
    policy = RetryPolicy(attempts=2)
    with connect("qdrant://:memory:", retry_policy=policy) as store:
        assert store.retry_policy is policy
    store = connect("qdrant+http://[::1]:6334", timeout=3)
    assert repr(store) == "QdrantStore('http://[::1]:6334')"
    store.close()


def test_relative_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with connect("qdrant://./rel/qd") as store:
        store.collection("docs", dim=4)
        assert "rel/qd" in repr(store)
    assert (tmp_path / "rel" / "qd").is_dir()


@pytest.mark.parametrize("url, message", [
    ("qdrant://somehost:6333", "qdrant\\+http://somehost:6333"),
    ("qdrant://", "no directory"),
    ("qdrant+http://", "no host"),
    ("qdrant:///tmp/x?bogus=1", "bogus"),
])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        connect(url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_unreachable_server_fails_after_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "sekrit-key-from-env")
    waits: list[float] = []
    port = _closed_port()
    store = connect(f"qdrant+http://127.0.0.1:{port}?timeout=2")
    store.retry_policy = RetryPolicy(attempts=3, sleep=waits.append)
    with pytest.raises(ServerUnreachable) as err:
        store.collection("docs", dim=4)
    assert len(waits) == 2  # three tries, two waits, then a clear error
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "sekrit" not in str(err.value) and "sekrit" not in repr(store)
    store.close()


def test_api_key_argument_never_shown() -> None:
    store = connect("qdrant+https://db.example.invalid:6333", api_key="sekrit-arg")
    assert "sekrit" not in repr(store) and repr(store) == "QdrantStore('https://db.example.invalid:6333')"
    store.close()


def test_wraps_an_existing_client_and_reads_foreign_points() -> None:
    client = QdrantClient(location=":memory:")
    client.create_collection("ext", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    uid = "0b6e1c1e-3b8a-4a53-9a0e-6c1f6d2f5e11"
    client.upsert("ext", points=[
        models.PointStruct(id=7, vector=[1.0, 0.0, 0.0, 0.0], payload={"page_content": "int id", "metadata": {"k": 1}}),
        models.PointStruct(id=uid, vector=[0.0, 1.0, 0.0, 0.0], payload={"text": "uuid id", "lang": "en"}),
    ])
    store = QdrantStore(client)
    col = store.collection("ext", dim=4)
    assert [(r.id, r.text) for r in col.fetch(["7", uid, "8"])] == [("7", "int id"), (uid, "uuid id")]
    assert col.fetch([uid])[0].metadata == {"lang": "en"}
    assert col.search([1, 0, 0, 0], k=1)[0].id == "7"
    col.delete(ids=["7"])
    assert col.count() == 1
    store.close()  # not ours: the user's client stays open
    assert client.count("ext").count == 1


def test_raw_uuid_id_of_ours_is_not_deleted_by_accident() -> None:
    with connect("qdrant://:memory:") as store:
        col = store.collection("docs", dim=4)
        from bge_vdb.store import stable_uuid

        # "b" is stored under stable_uuid("b"); deleting that UUID *as a user id* must not touch it.
        col.upsert([Record("b", [1, 0, 0, 0])])
        col.delete(ids=[stable_uuid("b")])
        assert [r.id for r in col.fetch(["b"])] == ["b"]


def test_error_mapping() -> None:
    store = QdrantStore(QdrantClient(location=":memory:"))
    cases = [
        (UnexpectedResponse(429, "Too Many", b"", httpx.Headers({"Retry-After": "3"})), TransientError, 3.0),
        (ResourceExhaustedResponse("busy", 5), TransientError, 5.0),
        (UnexpectedResponse(502, "Bad Gateway", b"", httpx.Headers()), TransientError, None),
        (ResponseHandlingException(httpx.ReadTimeout("slow")), TransientError, None),
        (ResponseHandlingException(httpx.ConnectError("refused")), ServerUnreachable, None),
        (UnexpectedResponse(404, "Not Found", b"", httpx.Headers()), CollectionNotFound, None),
        (UnexpectedResponse(400, "Bad Request", b"", httpx.Headers()), ConnectorError, None),
        (ResponseHandlingException(ValueError("bad json")), ConnectorError, None),
        (RuntimeError("something else"), ConnectorError, None),
    ]
    for exc, kind, retry_after in cases:
        with pytest.raises(kind) as err, store._map_errors("testing"):
            raise exc
        assert type(err.value) is kind, (exc, err.value)
        assert getattr(err.value, "retry_after", None) == retry_after


def test_grpc_status_mapping() -> None:
    grpc = pytest.importorskip("grpc")

    class FakeRpcError(grpc.RpcError):  # type: ignore[name-defined, misc]
        def __init__(self, code: Any) -> None:
            self._code = code

        def code(self) -> Any:
            return self._code

    store = QdrantStore(QdrantClient(location=":memory:"))
    for code, kind in [(grpc.StatusCode.UNAVAILABLE, TransientError),
                       (grpc.StatusCode.DEADLINE_EXCEEDED, TransientError),
                       (grpc.StatusCode.RESOURCE_EXHAUSTED, TransientError),
                       (grpc.StatusCode.INVALID_ARGUMENT, ConnectorError)]:
        with pytest.raises(kind) as err, store._map_errors("testing"):
            raise FakeRpcError(code)
        assert type(err.value) is kind


def test_filter_key_with_double_quote_is_unsupported() -> None:
    with pytest.raises(UnsupportedFilter, match="Qdrant"):
        to_qdrant_filter(filters.parse({'we"ird': 1}))
    # Unicode and spaces are quoted, not refused.
    flt = to_qdrant_filter(filters.parse({"名 字.x-y": "a"}))
    assert flt is not None and flt.must[0].key == 'metadata."名 字".x-y'  # type: ignore[index, union-attr]


def test_unicode_and_spaced_keys_filter_for_real() -> None:
    with connect("qdrant://:memory:") as store:
        col = store.collection("docs", dim=4)
        v = unit(np.random.default_rng(0), 2, 4)
        col.upsert([Record("a", v[0], metadata={"名 字": {"x-y": "a"}}), Record("b", v[1], metadata={"名 字": "a"})])
        assert [r.id for p in col.scroll(where={"名 字.x-y": "a"}) for r in p] == ["a"]
        assert col.count(where={"名 字": "a"}) == 1


def _journal_mode(directory: Any, collection: str) -> str:
    import sqlite3

    (db,) = list((directory / "collection" / collection).glob("*.sqlite"))
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_local_writes_use_wal_and_survive_a_killed_process(tmp_path: Any) -> None:
    """WAL + synchronous=NORMAL (50x faster than a fsync per point) must still keep every write
    acknowledged before the process is SIGKILLed; durable=True keeps SQLite's default journal."""
    import subprocess
    import sys

    path = tmp_path / "q"
    script = (
        "import os, signal\n"
        "from bge_vdb import connect, Record\n"
        f"s = connect('qdrant://{path}')\n"
        "c = s.collection('c', dim=3)\n"
        "c.upsert([Record(f'r{i}', [1, i, 0]) for i in range(300)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert _journal_mode(path, "c") == "wal"
    with connect(f"qdrant://{path}") as store:
        assert store.collection("c", dim=3).count() == 300

    with connect(f"qdrant://{tmp_path / 'd'}", durable=True) as store:
        store.collection("c", dim=3).upsert([Record("a", [1, 0, 0])])
    assert _journal_mode(tmp_path / "d", "c") == "delete"
