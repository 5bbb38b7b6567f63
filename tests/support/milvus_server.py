"""Milvus Lite for tests: a file per store, and one loopback server shared by the process.

The server is ``milvus-lite server`` (milvus-lite 3.x) in a child process on a free loopback port,
started on first use and stopped at exit, so the connector's server-URL path (gRPC over TCP to
another process) is tested for real.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bge_vdb.connectors.milvus import MilvusStore
from tests.support.processes import die_with_parent, free_port

_lock = threading.Lock()
_server: tuple[subprocess.Popen[bytes], int, Path] | None = None


def _stop() -> None:
    global _server
    if _server is None:
        return
    proc, _, data_dir = _server
    _server = None
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(data_dir, ignore_errors=True)


def server_port(startup_timeout: float = 60.0) -> int:
    """Port of the shared ``milvus-lite server``, starting it on first call."""
    global _server
    with _lock:
        if _server is not None and _server[0].poll() is None:
            return _server[1]
        data_dir = Path(tempfile.mkdtemp(prefix="bge-vdb-milvus-server-"))
        port = free_port()
        exe = Path(sys.executable).with_name("milvus-lite")
        proc = subprocess.Popen(
            [str(exe), "server", "--data-dir", str(data_dir / "data"), "--host", "127.0.0.1",
             "--port", str(port), "--max-workers", "4"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"milvus-lite server exited with {proc.returncode}: {err[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"milvus-lite server did not listen on {port} in {startup_timeout}s") from None
                time.sleep(0.1)  # waiting for a child process to listen, not a retry under test
        _server = (proc, port, data_dir)
        atexit.register(_stop)
        return port


@contextmanager
def milvus_server_store() -> Iterator[MilvusStore]:
    """An empty store on the shared server: leftover collections are dropped first."""
    store = MilvusStore.from_url(f"milvus://127.0.0.1:{server_port()}")
    for name in store.list_collections():
        store.drop_collection(name)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def milvus_lite_store(tmp: Path) -> Iterator[MilvusStore]:
    """A store on a fresh Milvus Lite file in ``tmp``; its in-process server is stopped after."""
    from milvus_lite.server_manager import server_manager_instance

    path = Path(tmp) / "milvus.db"
    store = MilvusStore.from_url(f"milvus://{path.resolve()}")
    try:
        yield store
    finally:
        store.close()
        server_manager_instance.release_server(str(path.resolve()))
