"""Milvus-specific behaviour beyond the conformance suite: URLs, credentials, error mapping,
unreachable servers, per-record limits and collections made outside bge-vdb."""

from __future__ import annotations

import inspect
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from bge_vdb import connect
from bge_vdb.connectors.milvus import MilvusStore, _map_errors
from bge_vdb.errors import (
    BgeVdbError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    ServerUnreachable,
    TransientError,
    UnsupportedFilter,
)
from bge_vdb.retry import RetryPolicy
from bge_vdb.types import Record
from tests.support.milvus_server import server_port
from tests.support.stores import STORE_FACTORIES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MilvusStore]:
    with STORE_FACTORIES["milvus-lite"](tmp_path) as s:
        assert isinstance(s, MilvusStore)
        yield s


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_relative_lite_url_resolves_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = connect("milvus://./rel.db")
    try:
        assert repr(s) == f"MilvusStore('milvus://{tmp_path / 'rel.db'}')"
        s.collection("c", dim=2).upsert([Record("a", [1, 0])])
        assert (tmp_path / "rel.db").exists() and s.list_collections() == ["c"]
    finally:
        s.close()


@pytest.mark.parametrize("url", ["milvus:///tmp/no-suffix", "milvus://"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        connect(url)


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colour") as err:
        connect(f"milvus://{tmp_path}/x.db", colour="red")
    assert "db_name" in str(err.value)  # the known options are named
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


@pytest.mark.parametrize("query", [
    "db_nme=prod&token=s3cret-value",  # the misspelling of issue 14: was silently the default db
    "token=s3cret-value&db_name=prod",  # a token in a URL: refused, never read or shown
    "db_name=prod&timeout=5&index=HNSW",
])
def test_url_options_are_checked_and_secrets_never_echoed(tmp_path: Path, query: str) -> None:
    url = f"milvus://{tmp_path}/x.db?{query}"
    with pytest.raises(ConfigError) as err:
        connect(url)
    msg = str(err.value)
    assert "s3cret" not in msg and "s3cret" not in repr(err.value)
    if "db_nme" in query:
        assert "'db_nme'" in msg and "db_name" in msg  # names the misspelt option and the known ones
    elif "index=" in query:
        assert "'index'" in msg and "index_type" in msg
    else:
        assert "token" in msg and "MILVUS_TOKEN" in msg
    assert not (tmp_path / "x.db").exists()


def test_credentials_in_the_url_are_refused_without_echo() -> None:
    with pytest.raises(ConfigError, match="MILVUS_TOKEN") as err:
        connect("milvus://root:Pa55word@127.0.0.1:19530")
    assert "Pa55word" not in str(err.value)


@pytest.mark.parametrize(("url_query", "kw", "error"), [
    ("timeout=soon", {}, "timeout must be a number"),
    ("", {"timeout": 0}, "timeout must be positive"),
    ("index_type=IVF_PQ", {}, "index_type must be one of FLAT, HNSW, AUTOINDEX"),
    ("search_ef=-3", {}, "search_ef must be positive"),
])
def test_bad_option_values_are_config_errors(tmp_path: Path, url_query: str, kw: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        connect(f"milvus://{tmp_path}/x.db?{url_query}", **kw)
    assert not (tmp_path / "x.db").exists()


def test_db_name_from_the_url_query_is_used(tmp_path: Path) -> None:
    s = connect(f"milvus://{tmp_path}/x.db?db_name=default&timeout=7")
    try:
        assert s._timeout == 7.0  # type: ignore[attr-defined]
    finally:
        s.close()


def test_an_error_without_retriable_is_mapped_not_an_attribute_error() -> None:
    """pymilvus before 3.0.1 has no MilvusException.retriable: a refusal must still be a
    ConnectorError (it was an AttributeError), and a transient code still transient."""
    class OldMilvusException(MilvusException):  # as pymilvus 2.5.x to 3.0.0 raise it
        @property
        def retriable(self) -> bool:
            raise AttributeError("'MilvusException' object has no attribute 'retriable'")

    for code, kind in ((1100, ConnectorError), (8, TransientError), (100, CollectionNotFound)):
        with pytest.raises(BgeVdbError) as err, _map_errors("upsert"):
            raise OldMilvusException(code, "refused")
        assert type(err.value) is kind


def test_unreachable_server_fails_after_bounded_retries_without_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_TOKEN", "s3cret-token-from-env")
    waits: list[float] = []
    port = closed_port()
    with pytest.raises(ServerUnreachable) as err:
        connect(f"milvus://127.0.0.1:{port}", timeout=3, retry_policy=RetryPolicy(attempts=3, sleep=waits.append))
    assert len(waits) == 2  # three attempts, two waits, none really slept
    assert f"127.0.0.1:{port}" in str(err.value) and "3 attempt" in str(err.value)
    assert "s3cret" not in str(err.value) and "s3cret" not in repr(err.value)


def test_server_url_token_is_used_but_never_shown() -> None:
    # Milvus Lite ignores tokens, so this checks the plumbing and that the token stays hidden.
    s = connect(f"milvus+http://127.0.0.1:{server_port()}", token="root:Milvus-secret")
    try:
        assert "secret" not in repr(s) and "secret" not in repr(s.__dict__.get("_location"))
        assert repr(s) == f"MilvusStore('http://127.0.0.1:{server_port()}')"
        with pytest.raises(CollectionNotFound) as err:
            s.collection("absent", create=False)
        assert "secret" not in str(err.value)
    finally:
        s.close()


def test_secret_is_scrubbed_from_mapped_errors() -> None:
    with pytest.raises(ConnectorError) as err, _map_errors("upsert", "tok-123"):
        raise MilvusException(1100, "bad request with header tok-123")
    assert "tok-123" not in str(err.value) and "***" in str(err.value)


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "from the wire"


_HAS_RETRIABLE = "retriable" in inspect.signature(MilvusException).parameters


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_RpcError(grpc.StatusCode.UNAVAILABLE), ServerUnreachable),
        (_RpcError(grpc.StatusCode.DEADLINE_EXCEEDED), TransientError),
        (_RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED), TransientError),
        (_RpcError(grpc.StatusCode.INVALID_ARGUMENT), ConnectorError),
        (MilvusException(grpc.StatusCode.UNAVAILABLE, "Retry timeout"), ServerUnreachable),
        (MilvusException(2, "Fail connecting to server"), ServerUnreachable),
        (MilvusException(8, "rate limit exceeded"), TransientError),
        # Milvus 2.3.5 while it shuts down: the proxy answers, its coordinators are gone.
        (MilvusException(65535, "empty grpc client: failed to connect 127.0.0.1:5, reason: "
                                "connection error"), ServerUnreachable),
        (MilvusException(65535, "empty grpc client: find no available rootcoord, check rootcoord "
                                "state"), ServerUnreachable),
        pytest.param(
            *((MilvusException(65535, "busy", retriable=True), TransientError) if _HAS_RETRIABLE else (None, None)),
            marks=pytest.mark.skipif(not _HAS_RETRIABLE, reason="pymilvus < 3.0.1 has no retriable flag"),
        ),
        (MilvusException(100, "collection not found[collection=x]"), CollectionNotFound),
        (MilvusException(1100, "invalid parameter"), ConnectorError),
        (ConnectionRefusedError(111, "Connection refused"), ServerUnreachable),
        (TimeoutError("timed out"), TransientError),
    ],
)
def test_error_map(exc: BaseException, kind: type[Exception]) -> None:
    with pytest.raises((ConnectorError, CollectionNotFound)) as err, _map_errors("query"):
        raise exc
    assert type(err.value) is kind and "query failed" in str(err.value)
    assert ("cannot reach the Milvus server" in str(err.value)) == (kind is ServerUnreachable)
    assert isinstance(err.value, TransientError) == (kind in (TransientError, ServerUnreachable))


def test_text_over_the_varchar_limit_is_a_per_record_error(store: MilvusStore) -> None:
    col = store.collection("t", dim=2)
    ok_text = "中" * (65535 // 3)  # 65535 bytes in UTF-8: exactly at the limit
    too_long = "中" * 21846  # fewer characters than the limit, but 65538 bytes
    res = col.upsert(
        [Record("ok", [1, 0], ok_text), Record("long", [0, 1], too_long), Record("also", [1, 1], "x")],
        raise_on_error=False,
    )
    assert res.written == 2 and [f.id for f in res.failed] == ["long"]
    assert "65538 bytes" in res.failed[0].reason and "65535" in res.failed[0].reason
    assert [r.text for r in col.fetch(["ok"])] == [ok_text]


def test_cosine_score_is_similarity(store: MilvusStore) -> None:
    col = store.collection("s", dim=2)
    col.upsert([Record("same", [1, 0]), Record("orth", [0, 1]), Record("opp", [-1, 0])])
    scores = {h.id: h.score for h in col.search([2, 0], k=3)}
    assert scores == pytest.approx({"same": 1.0, "orth": 0.0, "opp": -1.0}, abs=1e-6)


def _native(store: MilvusStore, name: str, pk_type: DataType, metadata: bool = False) -> None:
    client: MilvusClient = store._client
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    kw: dict[str, Any] = {"max_length": 64} if pk_type == DataType.VARCHAR else {}
    schema.add_field("pk", pk_type, is_primary=True, **kw)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=3)
    if metadata:
        schema.add_field("metadata", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index)


def test_int_primary_key_gives_a_clear_error(store: MilvusStore) -> None:
    _native(store, "ints", DataType.INT64)
    with pytest.raises(ConnectorError, match=r"INT64 primary key 'pk'.*VARCHAR"):
        store.collection("ints", dim=3)


def test_inner_product_collection_is_a_metric_mismatch(store: MilvusStore) -> None:
    from bge_vdb.errors import MetricMismatch

    _native(store, "ip", DataType.VARCHAR)
    with pytest.raises(MetricMismatch, match="dot"):
        store.collection("ip", dim=3)


def test_filters_on_a_foreign_collection_are_refused_not_guessed(store: MilvusStore) -> None:
    client: MilvusClient = store._client
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=3)
    schema.add_field("metadata", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("foreign", schema=schema, index_params=index, consistency_level="Strong")
    col = store.collection("foreign", dim=3)
    col.upsert([Record("a", [1, 0, 0], None, {"x": 1})])
    assert [r.metadata for r in col.fetch(["a"])] == [{"x": 1}]
    with pytest.raises(UnsupportedFilter, match=r"Milvus.*metadata_typed"):
        col.count(where={"x": 1})
    with pytest.raises(UnsupportedFilter):
        col.search(np.ones(3), k=1, where={"x": 1})


def test_store_from_an_existing_client(store: MilvusStore) -> None:
    mine = MilvusStore(client=store._client)
    assert repr(mine) == "MilvusStore('MilvusClient')"
    mine.collection("shared", dim=2).upsert([Record("a", [1, 0], "t", {"k": "v"})])
    assert [r.metadata for r in store.collection("shared", dim=2).fetch(["a"])] == [{"k": "v"}]


def test_persisted_collection_reopened_by_another_process_is_readable(tmp_path) -> None:
    """A Milvus Lite file written by one process opens 'released' in the next: it must be loaded."""
    import subprocess
    import sys

    db = tmp_path / "reopen.db"
    script = (
        "from bge_vdb import connect, Record\n"
        f"s = connect('milvus://{db}')\n"
        "c = s.collection('c', dim=3)\n"
        "c.upsert([Record('a', [1, 0, 0], text='x')])\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    from bge_vdb import connect

    with connect(f"milvus://{db}") as store:
        col = store.collection("c", dim=3)
        assert col.count() == 1
        assert [h.id for h in col.search([1, 0, 0], k=1)] == ["a"]


def test_close_releases_the_lite_file_for_another_process(tmp_path) -> None:
    """pymilvus keeps the Lite engine and its file lock until exit unless the store releases it."""
    import subprocess
    import sys

    from bge_vdb import Record, connect

    db = tmp_path / "handoff.db"
    first, second = connect(f"milvus://{db}"), connect(f"milvus://{db}")
    first.collection("c", dim=3).upsert([Record("a", [0, 1, 0])])
    first.close()  # the second store still uses the file: it must keep working
    assert second.collection("c", dim=3).count() == 1
    second.close()
    script = f"from bge_vdb import connect; print(connect('milvus://{db}').collection('c', dim=3).count())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"


def test_a_create_retried_after_a_lost_answer_completes_the_collection(
    store: MilvusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server made the collection but the client timed out waiting for the answer (seen on
    a busy server): the retry finds the collection there and must still index and load it."""
    real_create = store._client.create_collection
    lost: list[str] = []

    def create_then_lose_the_answer(name: str, *args: Any, **kwargs: Any) -> None:
        real_create(name, *args, **kwargs)
        if not lost:
            lost.append(name)
            raise _RpcError(grpc.StatusCode.DEADLINE_EXCEEDED)

    monkeypatch.setattr(store._client, "create_collection", create_then_lose_the_answer)
    store.retry_policy = RetryPolicy(attempts=3, sleep=lambda _: None)
    col = store.collection("late", dim=4)
    assert lost == ["late"]
    col.upsert([Record("a", [1, 0, 0, 0], "t"), Record("b", [0, 1, 0, 0], "u")])
    assert [h.id for h in col.search([1, 0, 0, 0], k=1)] == ["a"] and col.count() == 2
