"""A real Milvus standalone server for tests: the C++/Go server of PyPI ``milvus==2.3.5``.

That package (the last with Linux wheels) ships the ``milvus`` binary with embedded etcd and
rocksmq, xz-compressed. What this module adds to the package's own launcher, and why:

* The binaries are unpacked once into a cache directory shared by every run (``$BGE_VDB_MILVUS_CACHE``
  or ``<tmp>/bge-vdb-milvus-2.3.5-<uid>``), under a file lock, so a start takes seconds, not the
  ~7 s of unpacking 246 MB.
* Every start gets fresh free ports for every component, the embedded etcd's client and peer
  ports included (the package leaves etcd on 2379/2380, so two servers could not run at once),
  and every component registers itself on 127.0.0.1 rather than the machine's external address.
  Milvus 2.3 has no listen-address option: its gRPC ports listen on all interfaces, but nothing
  is ever told to use anything but 127.0.0.1 and the server only lives for the test run.
* ``common.gracefulStopTimeout`` is 5 s (the package's 1800 s makes SIGTERM hang for minutes) and
  the child dies with the test process (``PR_SET_PDEATHSIG``) when pytest itself is killed.
* A server can be stopped, SIGKILLed and started again on the same data directory (the fault
  tests). A restart first waits out the previous process's etcd sessions: ~25 s here with the
  session TTL of 10 s used by default, ~4 s after a stop and ~16 s after a SIGKILL with the 5 s
  the fault tests use.
* Strong reads wait for the next time tick: the proxy ticks every 20 ms instead of 200 ms.

:func:`shared_server` is the session-wide server behind the ``milvus-standalone`` store factory:
started on first use on a fresh data directory, stopped at exit.
"""

from __future__ import annotations

import atexit
import fcntl
import importlib.util
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import die_with_parent, free_port

VERSION = "2.3.5"
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
SETTINGS: dict[str, object] = {  # milvus.yaml keys changed from the package's template
    "common.gracefulStopTimeout": 5,  # seconds; SIGTERM otherwise hangs for up to 30 minutes
    "common.session.ttl": 10,  # seconds a restart after SIGKILL waits for the dead sessions
    # A Strong read waits for the next time tick (200 ms by default): 20 ms keeps the suites'
    # thousands of reads affordable on CI. Consistency is the same, only the wait is shorter.
    "proxy.timeTickInterval": 20,
    # Loading a new collection waits for the query coordinator's channel checker (every 1000 ms)
    # and task scheduler (every 500 ms) before its 1 s load-status tick: ~2.8 s per collection,
    # most of the server suites' time. 100 ms / 50 ms make it ~1.5 s. (Not in the package's
    # template: added to the YAML by _add_missing_keys.)
    "queryCoord.checkChannelInterval": 100,
    "queryCoord.checkInterval": 100,
    "queryCoord.distPullInterval": 50,
}
START_TIMEOUT = 180.0  # seconds; a cold start is ~3 s, a restart after SIGKILL ~15 s on 2 busy cores


def unavailable_reason() -> str | None:
    """Why no Milvus standalone server can run here, or None when it can."""
    if not (sys.platform == "linux" and os.uname().machine == "x86_64"):
        return f"PyPI milvus=={VERSION} ships its server binary for Linux x86-64 only"
    if importlib.util.find_spec("milvus") is None:
        return f"PyPI milvus=={VERSION} is not installed (it is in the 'test' extra on Linux x86-64)"
    return None


def _add_missing_keys(yaml_path: Path, settings: dict[str, object]) -> None:
    """The package's launcher only rewrites keys its template already has: add the others of
    the form ``section.key`` at the top of their section (deeper keys are all in the template)."""
    lines = yaml_path.read_text().splitlines()
    for dotted, value in settings.items():
        if dotted.count(".") != 1:
            continue
        section, _, key = dotted.partition(".")
        start = lines.index(f"{section}:")
        end = next((i for i in range(start + 1, len(lines)) if lines[i][:1].isalpha()), len(lines))
        if not any(line.startswith(f"  {key}:") for line in lines[start + 1 : end]):
            lines.insert(start + 1, f"  {key}: {value}")
    yaml_path.write_text("\n".join(lines) + "\n")


def _package_dir() -> Path:
    import milvus

    if getattr(milvus, "__version__", None) != VERSION:
        raise RuntimeError(f"tests expect PyPI milvus=={VERSION}, found {milvus.__version__}")
    return Path(milvus.__file__).parent


def unpacked_bin() -> Path:
    """The directory holding the unpacked server binary and its libraries (unpacked once)."""
    cache = Path(os.environ.get("BGE_VDB_MILVUS_CACHE")
                 or Path(tempfile.gettempdir()) / f"bge-vdb-milvus-{VERSION}-{os.getuid()}")
    target = cache / "bin"
    packed = sorted((_package_dir() / "data" / "bin").glob("*.lzma"))
    stamp = "\n".join(f"{p.name} {p.stat().st_size}" for p in packed)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be unpacking right now
        if (target / ".complete").is_file() and (target / ".complete").read_text() == stamp:
            return target
        staging = Path(tempfile.mkdtemp(prefix="bin-", dir=cache))
        for src in packed:
            out = staging / src.name[: -len(".lzma")]
            with lzma.open(src) as fin, open(out, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            out.chmod(0o755)
        (staging / ".complete").write_text(stamp)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # whole or absent: a crash mid-unpack leaves no half directory
    return target


class MilvusStandalone:
    """One Milvus standalone process on a data directory it may be restarted on."""

    def __init__(self, base_dir: Path, settings: dict[str, object] | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.settings = {**SETTINGS, **(settings or {})}
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The bge-vdb URL of this server."""
        return f"milvus://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _configure(self) -> dict[str, str]:
        """Write configs/milvus.yaml and the embedded etcd's config with fresh ports."""
        from milvus import MilvusServerConfig

        self.base_dir.mkdir(parents=True, exist_ok=True)
        link = self.base_dir / "bin"
        if not link.exists():
            link.symlink_to(unpacked_bin(), target_is_directory=True)
        config = MilvusServerConfig(data_dir=str(self.base_dir))
        ports = {key: free_port() for key in config.configurable_items if key.endswith("_port")}
        config.update(**ports)
        for component in COMPONENTS:
            config.set(f"{component}.ip", "127.0.0.1")
        for key, value in self.settings.items():
            config.set(key, value)
        config.resolve()  # writes configs/milvus.yaml; makes logs/ and data/
        _add_missing_keys(self.base_dir / "configs" / "milvus.yaml", self.settings)
        etcd_client, etcd_peer, metrics = ports["etcd_port"], free_port(), free_port()
        etcd_yaml = self.base_dir / "configs" / "etcd.yaml"
        etcd_yaml.write_text(
            f"listen-client-urls: http://127.0.0.1:{etcd_client}\n"
            f"advertise-client-urls: http://127.0.0.1:{etcd_client}\n"
            f"listen-peer-urls: http://127.0.0.1:{etcd_peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{etcd_peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{etcd_peer}\n"
        )
        self.port = ports["proxy_port"]
        self._metrics_port = metrics
        return {
            "DEPLOY_MODE": "STANDALONE",
            "METRICS_PORT": str(metrics),
            "ETCD_CONFIG_PATH": str(etcd_yaml),
            "LD_LIBRARY_PATH": str(link),
        }

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start on fresh ports and wait until the proxy answers a request."""
        if self.running():
            raise RuntimeError(f"Milvus standalone on {self.base_dir} is already running")
        env = {**os.environ, **self._configure()}
        self._log = self.base_dir / "logs" / f"milvus-{int(time.time() * 1000)}.log"
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                # -alias: the pid file (/run/milvus or /tmp/milvus) is per server, not shared
                [str(self.base_dir / "bin" / "milvus"), "run", "standalone", "-alias", f"bgevdb{self.port}"],
                cwd=self.base_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + timeout
        healthy = False
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"Milvus standalone exited during start-up:\n{self.log_tail()}")
            try:
                if not healthy:
                    url = f"http://127.0.0.1:{self._metrics_port}/healthz"
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        healthy = b"OK" in resp.read()
                if healthy:  # healthz is OK a little before the proxy serves requests
                    client = MilvusClient(uri=self.uri, timeout=5)
                    try:
                        client.list_collections(timeout=5)
                    finally:
                        client.close()
                    return
            except Exception:  # not up yet: keep polling until the deadline
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Milvus standalone not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)  # polling a starting child process, not a retry under test

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None or not self._log.exists():
            return "(no log)"
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def wait_served_indexed(self, collection: str, rows: int, timeout: float = 300.0) -> dict[str, object]:
        """Wait until all ``rows`` are in sealed, indexed segments that the query node serves,
        and return the index description. Until then Milvus 2.3 searches rows through its
        interim IVF index of growing segments (nprobe 16 of nlist 128), whatever the
        collection's index or the request's parameters: a recall figure would measure that."""
        import warnings

        from pymilvus import MilvusClient, connections, utility

        client = MilvusClient(uri=self.uri)
        alias = f"segments-{self.port}"
        deadline = time.monotonic() + timeout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the ORM utility is the only API listing served segments
            connections.connect(alias=alias, uri=self.uri)
            try:
                while True:
                    info = client.describe_index(collection, "vector")
                    served = utility.get_query_segment_info(collection, using=alias)
                    # 3 is Sealed; a FLAT "index" is served as the raw rows, without an index name.
                    flat = info.get("index_type") == "FLAT"
                    sealed = sum(s.num_rows for s in served if s.state == 3 and (s.index_name or flat))
                    if info.get("indexed_rows") == rows and sealed == rows:
                        return dict(info)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{collection!r} not served indexed after {timeout:.0f}s: {info}")
                    time.sleep(0.5)  # waiting for the server's build and hand-off, not a retry under test
            finally:
                connections.disconnect(alias)
                client.close()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to flush or to close its etcd sessions."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@contextmanager
def running_server(base_dir: Path, settings: dict[str, object] | None = None) -> Iterator[MilvusStandalone]:
    """A server of its own on ``base_dir``, always stopped on exit (for tests that stop, kill or
    restart it); skips where no server binary can run."""
    import pytest

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = MilvusStandalone(base_dir, settings)
    try:
        server.start()
        yield server
    finally:
        server.kill()


_lock = threading.Lock()
_shared: MilvusStandalone | None = None


def _stop_shared() -> None:
    global _shared
    server, _shared = _shared, None
    if server is not None:
        server.kill()  # the data directory is thrown away: no need for a graceful stop
        shutil.rmtree(server.base_dir, ignore_errors=True)


def shared_server() -> MilvusStandalone:
    """The session's server: started on first use on a fresh data directory, stopped at exit.
    Skips the calling test (with the reason) where no server binary can run."""
    global _shared
    reason = unavailable_reason()
    if reason:
        import pytest

        pytest.skip(reason)
    with _lock:
        if _shared is not None and _shared.running():
            return _shared
        if _shared is not None:  # died under a test: say so, and start a fresh one for the rest
            print(f"Milvus standalone had died; last log lines:\n{_shared.log_tail()}", file=sys.stderr)
            _stop_shared()
        server = MilvusStandalone(Path(tempfile.mkdtemp(prefix="bge-vdb-milvus-standalone-")))
        atexit.register(_stop_shared)
        _shared = server
        server.start()
        return server
