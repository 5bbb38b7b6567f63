"""A real Infinity server (PyPI ``infinity-emb`` 0.0.78, an OpenAI-compatible embedding server)
for the tests, in its own virtualenv.

Infinity pins ``transformers`` 4.x and ``sentence-transformers<4``, so it cannot share the test
virtualenv: it lives in a virtualenv of its own, found at ``$BGE_VDB_INFINITY_VENV`` or in
``~/.cache/bge-vdb-tests/infinity-0.0.78``, and created there when missing (``.ci/run`` creates it
before the tests, in parallel with the main install, and exports the variable). A marker file
says the install completed; a file lock keeps two processes from installing at once.

``python -m tests.remote.infinity [DIR]`` creates it (what ``.ci/run`` calls).

A server is started on a fresh loopback port with the model directory given, ``--no-model-warmup``
(faster start), fp32 on CPU and ``--no-trust-remote-code``, waited for (bounded) and always
stopped (terminate, then kill); its log is kept for error messages.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import die_with_parent, free_port

VERSION = "0.0.78"
REQUIREMENTS = [f"infinity-emb[server,torch]=={VERSION}", "torch==2.13.0"]
_MARKER = ".bge-vdb-complete"


class InfinityUnavailable(RuntimeError):
    """The Infinity virtualenv could not be created on this platform."""


def venv_dir() -> Path:
    env = os.environ.get("BGE_VDB_INFINITY_VENV")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bge-vdb-tests" / f"infinity-{VERSION}"


def executable(venv: Path) -> Path:
    return venv / "bin" / "infinity_emb"


def ensure_venv(venv: Path | None = None, *, log: Path | None = None) -> Path:
    """The Infinity virtualenv, created when missing. Raises InfinityUnavailable when pip fails."""
    venv = venv or venv_dir()
    if (venv / _MARKER).is_file() and executable(venv).is_file():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it
        if (venv / _MARKER).is_file() and executable(venv).is_file():
            return venv
        log = log or venv.parent / f"{venv.name}-install.log"
        with open(log, "w") as out:
            for cmd in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                         *REQUIREMENTS]):
                code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
                if code != 0:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise InfinityUnavailable(f"{' '.join(cmd[:4])}... exited {code}; log {log}:\n{tail}")
        (venv / _MARKER).write_text(VERSION)
    return venv


@dataclass
class InfinityServer:
    process: subprocess.Popen[bytes]
    port: int
    served_names: list[str]
    log: Path
    api_key: str | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def url(self, name: str | None = None, **options: str) -> str:
        """``openai+http://127.0.0.1:PORT/v1?model=NAME`` (the first served name by default)."""
        query = "&".join(f"{k}={v}" for k, v in {"model": name or self.served_names[0], **options}.items())
        return f"openai+{self.base_url}?{query}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the server dies at once, mid-request (for fault tests)."""
        self.process.kill()
        self.process.wait()


def start(model_dir: Path, *, served_names: list[str], port: int | None = None, api_key: str | None = None,
          startup_timeout: float = 240.0, venv: Path | None = None, batch_size: int = 32,
          threads: int = 1) -> InfinityServer:
    """Start Infinity serving ``model_dir`` under each of ``served_names`` (one model instance
    each); returns once it answers."""
    venv = ensure_venv(venv)
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="bge-vdb-infinity-", suffix=".log")[1])
    cmd = [str(executable(venv)), "v2"]
    for name in served_names:  # each option once per model
        cmd += ["--model-id", str(model_dir), "--served-model-name", name, "--engine", "torch",
                "--device", "cpu", "--dtype", "float32", "--no-trust-remote-code", "--no-model-warmup",
                "--no-vector-disk-cache", "--batch-size", str(batch_size)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--url-prefix", "/v1", "--log-level", "warning"]
    if api_key:
        cmd += ["--api-key", api_key]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0",
           "DO_NOT_TRACK": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("BGE_VDB_INFINITY_VENV", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=die_with_parent(signal.SIGTERM))
    server = InfinityServer(proc, port, list(served_names), log, api_key)
    deadline = time.monotonic() + startup_timeout
    request = urllib.request.Request(f"{server.base_url}/models",
                                     headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"infinity_emb exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"infinity_emb did not answer within {startup_timeout:.0f}s:\n{server.log_tail()}")
        time.sleep(0.5)


@contextmanager
def running(model_dir: Path, **options: object) -> Iterator[InfinityServer]:
    """A started server, always stopped."""
    server = start(model_dir, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


if __name__ == "__main__":  # python -m tests.remote.infinity [DIR]
    target = ensure_venv(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(target)
