"""What every test server (Milvus, PostgreSQL, Infinity) needs from the OS: a free loopback port
and a child that cannot outlive the test process."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import sys
from collections.abc import Callable


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; loopback only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes Linux send ``sig`` to the child when the test process dies,
    even by SIGKILL (PR_SET_PDEATHSIG); ``None`` elsewhere. Each server takes the signal that
    stops it best (a fast shutdown for PostgreSQL, SIGKILL for Milvus's process tree...)."""
    if sys.platform != "linux":
        return None

    def arm() -> None:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").prctl(1, sig)  # 1 = PR_SET_PDEATHSIG

    return arm
