"""Faults on a real PostgreSQL: connections killed by the server, serialization failures,
constraint errors, unreachable servers and passwords that must never show."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import numpy as np
import psycopg
import pytest

from bge_vdb.connectors.pgvector import PgVectorStore
from bge_vdb.connectors.pgvector_client import map_errors
from bge_vdb.errors import (
    CollectionNotFound,
    ConnectorError,
    ServerUnreachable,
    TransientError,
    WriteError,
)
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import connect
from bge_vdb.types import Record
from tests.support.pg_server import fresh_database, shared_server

DIM = 8


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as u:
        yield u


def _records(n: int, prefix: str = "r") -> list[Record]:
    vecs = np.random.default_rng(n).normal(size=(n, DIM))
    return [Record(f"{prefix}{i:05d}", vecs[i], f"text {i}", {"i": i}) for i in range(n)]


def _terminate_backends(dbname: str) -> int:
    with shared_server().admin() as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall()
    return len(rows)


def test_connections_killed_by_the_server_are_retried_and_land_exactly_once(url: str) -> None:
    """pg_terminate_backend (an admin_shutdown, or a lost connection) at random moments of a
    batched upsert: each batch is retried on a new connection, nothing is lost or doubled."""
    waits: list[float] = []
    dbname = url.rsplit("/", 1)[1]
    policy = RetryPolicy(attempts=100, max_total=1e9, sleep=waits.append)  # waits recorded, not slept
    with PgVectorStore.from_url(url, retry_policy=policy) as store:
        store.max_batch_count = 20  # type: ignore[misc]
        col = store.collection("docs", dim=DIM)
        stop = threading.Event()
        killed = 0

        def killer() -> None:
            nonlocal killed
            while not stop.is_set():
                killed += _terminate_backends(dbname)
                # The fault's rhythm, not a retry: long enough for a batch to land in between even
                # on a loaded machine, short enough to hit many batches mid-way.
                time.sleep(0.15)

        thread = threading.Thread(target=killer)
        thread.start()
        records: list[Record] = []
        try:
            # Upsert rounds of 1,500 new records until the faults really hit (at least 3 kills and
            # 3 retries): on a quiet machine one round can land between two kills.
            for round_ in range(20):
                batch = _records(1500, prefix=f"r{round_:02d}-")
                res = col.upsert(batch)
                assert res.written == 1500 and res.ok
                records += batch
                if killed >= 3 and len(waits) >= 3:
                    break
        finally:
            stop.set()
            thread.join()
        assert killed >= 3 and len(waits) >= 3  # the faults happened and were retried
        assert col.count() == len(records)
        got = {r.id: r for p in col.scroll(500, with_vectors=True) for r in p}
        assert sorted(got) == [r.id for r in records]
        for rec in records[::97]:
            np.testing.assert_allclose(got[rec.id].vector, rec.vector / np.linalg.norm(rec.vector), atol=1e-6)
            assert got[rec.id].metadata == rec.metadata


def test_a_serialization_failure_is_retried(url: str) -> None:
    """Under REPEATABLE READ, a row updated by another transaction after ours began makes ours
    fail with 40001; the retry (a new transaction) succeeds."""
    waits: list[float] = []
    options = quote("-c default_transaction_isolation=repeatable\\ read")
    with PgVectorStore.from_url(f"{url}?options={options}", retry_policy=RetryPolicy(sleep=waits.append)) as store:
        col = store.collection("docs", dim=DIM)
        col.upsert([Record("a", np.ones(DIM), "v0")])
        with psycopg.connect(url) as other:
            other.execute("SELECT text FROM docs WHERE id = 'a' FOR UPDATE")  # holds the row lock
            done = threading.Event()

            def write() -> None:
                col.upsert([Record("a", np.ones(DIM), "from the store")])
                done.set()

            thread = threading.Thread(target=write)
            thread.start()
            deadline = time.monotonic() + 30
            while not _waiting_on_lock(url) and time.monotonic() < deadline:
                time.sleep(0.02)  # until the store's upsert blocks on our row lock
            other.execute("UPDATE docs SET text = 'from the other' WHERE id = 'a'")
            other.commit()
            thread.join(timeout=60)
        assert done.is_set()
        assert len(waits) == 1  # one 40001, one retry
        assert col.fetch(["a"])[0].text == "from the store"


def _waiting_on_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()").fetchone()
    return bool(row and row[0])


def test_constraint_and_trigger_errors_are_not_retried(url: str) -> None:
    waits: list[float] = []
    with PgVectorStore.from_url(url, retry_policy=RetryPolicy(sleep=waits.append)) as store:
        col = store.collection("docs", dim=DIM)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE docs ADD CONSTRAINT short_text CHECK (length(text) < 20)")
        store.max_batch_count = 2  # type: ignore[misc]
        recs = [Record("ok1", np.ones(DIM), "short"), Record("ok2", np.ones(DIM), "short"),
                Record("long", np.ones(DIM), "x" * 50), Record("ok3", np.ones(DIM), "short")]
        with pytest.raises(WriteError) as err:
            col.upsert(recs)
        # The refused batch (long, ok3) is bisected by the collection: only the refused record fails.
        assert [f.id for f in err.value.failed] == ["long"]
        assert "short_text" in str(err.value) and err.value.written == 3
        assert waits == []  # a constraint violation is never retried
        assert sorted(r.id for r in col.fetch(["ok1", "ok2", "long", "ok3"])) == ["ok1", "ok2", "ok3"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_fails_after_bounded_retries_without_showing_the_password(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    waits: list[float] = []
    store = connect(f"postgresql://alice:s3kr%21t@127.0.0.1:{port}/db?connect_timeout=2",
                    retry_policy=RetryPolicy(attempts=3, sleep=waits.append))
    assert repr(store) == f"PgVectorStore('postgresql://alice@127.0.0.1:{port}/db')"
    with pytest.raises(ServerUnreachable) as err:
        store.collection("docs", dim=DIM)
    assert len(waits) == 2 and f"127.0.0.1\", port {port}" in str(err.value)
    for text in (str(err.value), repr(store), caplog.text):
        assert "s3kr" not in text
    store.close()

    monkeypatch.setenv("PGPASSWORD", "env-s3cret")
    store = connect(f"postgresql://bob@127.0.0.1:{port}/db?connect_timeout=2",
                    retry_policy=RetryPolicy(attempts=1))
    with pytest.raises(ServerUnreachable) as err:
        store.list_collections()
    assert "env-s3cret" not in str(err.value) and "env-s3cret" not in repr(store)
    store.close()


def test_a_refused_login_is_not_retried(url: str) -> None:
    waits: list[float] = []
    for bad in (url.rsplit("/", 1)[0] + "/no_such_db", url.replace("postgres@", "nobody@"),
                url + "?sslmode=require"):
        store = connect(bad, retry_policy=RetryPolicy(sleep=waits.append))
        with pytest.raises(ConnectorError) as err:
            store.list_collections()
        assert not isinstance(err.value, TransientError), err.value
        store.close()
    assert waits == []


def test_options_and_sslmode_pass_through(url: str) -> None:
    with connect(url + "?sslmode=disable&application_name=bge%20vdb&schema=other&index=hnsw&ef_search=64") as store:
        assert store._schema == "other" and store._index == "hnsw" and store._ef_search == 64  # type: ignore[attr-defined]
        name = store._client.read(lambda cur: cur.execute("SHOW application_name").fetchone()[0])  # type: ignore[attr-defined]
        assert name == "bge vdb"
        store._client.write(lambda cur: cur.execute("CREATE SCHEMA other"))  # type: ignore[attr-defined]
        store.collection("docs", dim=DIM).upsert(_records(3))
        assert store.list_collections() == ["docs"]
    with connect(url) as public:  # another schema: not seen from public
        assert public.list_collections() == []


def test_a_users_connection_and_transaction(url: str) -> None:
    with psycopg.connect(url) as conn:  # autocommit off, as psycopg's default
        store = PgVectorStore(conn)
        assert repr(store) == "PgVectorStore('a user-supplied connection')"
        col = store.collection("docs", dim=DIM)
        col.upsert(_records(2, "own"))  # no transaction open: ours commits by itself
        conn.rollback()
        assert col.count() == 2
        conn.execute("SELECT 1")  # the user opens a transaction: ours joins it (a savepoint)
        col.upsert(_records(5))
        conn.rollback()  # the user's rollback undoes our writes too
        assert col.count() == 2
        conn.execute("SELECT 1")
        col.upsert(_records(5))
        conn.commit()
        store.close()  # not ours: the connection stays open
        assert not conn.closed
        assert conn.execute("SELECT count(*) FROM docs").fetchone() == (7,)
    with pytest.raises(ConnectorError, match="closed") as err:
        store.collection("docs", dim=DIM).count()
    assert not isinstance(err.value, TransientError)


def test_a_users_pool(url: str) -> None:
    psycopg_pool = pytest.importorskip("psycopg_pool")
    with psycopg_pool.ConnectionPool(url, min_size=1, max_size=2, open=True) as pool:
        store = PgVectorStore(pool)
        col = store.collection("docs", dim=DIM)
        col.upsert(_records(10))
        threads = [threading.Thread(target=lambda: col.search(np.ones(DIM), k=3)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert col.count() == 10
        store.close()
        with pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM docs").fetchone() == (10,)


def test_error_mapping() -> None:
    cases: list[tuple[BaseException, type[Exception]]] = [
        (psycopg.OperationalError("server closed the connection unexpectedly"), TransientError),
        (psycopg.errors.AdminShutdown("terminating connection"), TransientError),
        (psycopg.errors.SerializationFailure("could not serialize"), TransientError),
        (psycopg.errors.DeadlockDetected("deadlock detected"), TransientError),
        (psycopg.errors.TooManyConnections("too many"), TransientError),
        (psycopg.errors.ConnectionFailure("connection failure"), TransientError),
        (psycopg.errors.QueryCanceled("statement timeout"), ConnectorError),
        (psycopg.errors.DiskFull("no space"), ConnectorError),
        (psycopg.errors.UndefinedTable("no such table"), CollectionNotFound),
        (psycopg.errors.UniqueViolation("duplicate"), ConnectorError),
        (psycopg.errors.SyntaxError("syntax"), ConnectorError),
        (psycopg.errors.InsufficientPrivilege("denied"), ConnectorError),
        (psycopg.InterfaceError("the connection is closed"), ConnectorError),
    ]
    for exc, kind in cases:
        with pytest.raises(kind) as err, map_errors("db", "testing", "pw"):
            raise exc
        assert type(err.value) is kind, (exc, err.value)


def test_every_test_database_is_dropped() -> None:
    with fresh_database() as url:
        name = url.rsplit("/", 1)[1]
    with shared_server().admin() as admin, contextlib.closing(admin.cursor()) as cur:
        assert cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)

