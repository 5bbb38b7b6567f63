"""pgvector URLs and options, checked before anything is opened: unknown options refused by name
(never their value), libpq's own options passed through, embedded paths checked."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import connect
from bge_vdb.connectors.pgvector import PgVectorStore
from bge_vdb.connectors.pgvector_client import parse_url
from bge_vdb.errors import ConfigError, StoreNotFound

SECRET = "pg-not-a-real-password-7d1e"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a connection was attempted before the options were checked")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(("url", "options", "named"), [
    (f"postgresql://app:{SECRET}@db.example/rag?db_nme={SECRET}", {}, "db_nme"),
    (f"postgres://app@db.example/rag?sslmode=require&ssl_mode={SECRET}", {}, "ssl_mode"),
    ("postgresql://app@db.example/rag", {"ef_serch": 40}, "ef_serch"),
    ("postgresql://app@db.example/rag", {"password": SECRET}, "password"),
    ("postgresql://app@db.example/rag?index=ivfflat", {}, "index"),
    ("postgresql://app@db.example/rag?m=0", {}, "m"),
    ("postgresql://app@db.example/rag?ef_search=many", {}, "ef_search"),
    (f"pgvector:///srv/pg?sslmode={SECRET}", {}, "sslmode"),  # no libpq options for the embedded server
    ("pgvector:///srv/pg", {"schema": ""}, "schema"),
    ("pgvector://somehost/srv/pg", {}, "pgvector:///abs/dir"),
    ("postgresql:///rag", {}, "no host"),
])
def test_bad_options_are_refused_by_name(url: str, options: dict[str, Any], named: str, no_network: None) -> None:
    with pytest.raises(ConfigError) as err:
        connect(url, **options)
    assert named in str(err.value) and SECRET not in str(err.value)


def test_libpq_options_pass_through_and_ours_are_read(no_network: None) -> None:
    parsed = parse_url("postgresql://app:p%40ss@db.example:6543/rag?sslmode=verify-full&sslrootcert=/ca.pem"
                       "&options=-c%20search_path%3Dv&target_session_attrs=read-write&index=hnsw&m=32&schema=v")
    assert parsed.settings == {"index": "hnsw", "m": 32, "schema": "v"}
    assert parsed.shown == "postgresql://app@db.example:6543/rag" and parsed.secret == "p@ss"
    assert "options=-c%20search_path%3Dv" in parsed.conninfo and "index" not in parsed.conninfo
    assert "connect_timeout=10" in parsed.conninfo  # a dead host fails in bounded time
    assert "p@ss" not in repr(parsed) and "p%40ss" not in repr(parsed)
    store = connect("postgresql://app@db.example/rag?index=none&ef_search=64")  # nothing connects yet
    assert isinstance(store, PgVectorStore) and store._index is None and store._ef_search == 64
    store.close()


def test_embedded_paths_are_checked_without_creating_anything(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(StoreNotFound, match="does not exist"):
        connect(f"pgvector://{missing}", must_exist=True)
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFound, match="no embedded PostgreSQL store"):
        connect(f"pgvector://{tmp_path / 'empty'}", must_exist=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        connect(f"pgvector://{tmp_path / 'file'}")
    PgVectorStore.check_url(f"pgvector://{missing}")  # creating is allowed without must_exist
    PgVectorStore.check_url("postgresql://app@db.example/rag", must_exist=True)  # nothing to check offline
