"""Embedding many texts through a server: batches by its limits, several requests in flight, and
refused texts found by position.

Texts are ordered by length (so one request holds texts of similar length, which the server pads
alike), cut into requests of at most ``batch_size`` texts and, when token counts are known, at
most ``batch_tokens`` padded tokens, and sent by at most ``concurrency`` threads at once. The
vectors come back in input order.

When the server refuses a request for its content (a validation or tokenizer error: HTTP 400 or
422; or a body over its size limit: 413), the request is split in halves and each half sent
again, so that the texts it refuses are found and reported by position while the others are
embedded; a request the server refuses for other reasons (424: inference failed) stops the call.

When a request fails for good, the call's ``stop`` event is set so that its siblings send no
further try, and the call raises that first failure, the root cause: never a sibling's
:class:`~.http.RequestAbandoned`, whichever thread happens to finish first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

import numpy as np

from ..embedder import plan_batches
from ..errors import EmbedderServerError, TextsRefused
from .http import RequestAbandoned, RequestRefused

#: Statuses meaning "something in this request's texts": bisect to find which.
_CONTENT_REFUSALS = frozenset({400, 413, 422})

#: Embeds one request's texts; sends nothing more once the event (the call's ``stop``) is set.
Send = Callable[[list[str], threading.Event], np.ndarray]


class RequestRunner:
    """Runs the requests of embed calls on a small thread pool (created on first use)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.in_flight = 0  # requests being sent now (for tests and the benchmark)
        self.most_in_flight = 0
        self.sent = 0  # requests sent, over the embedder's life

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="bge-vdb-remote")
            return self._pool

    def embed(self, texts: Sequence[str], send: Send, *, batch_size: int, batch_tokens: int | None,
              lengths: Sequence[int] | None) -> list[np.ndarray]:
        """One vector per text, in input order; ``send`` embeds one request's texts.

        Raises:
            TextsRefused: the server refused some texts (the others were embedded, not returned).
            EmbedderUnavailable / EmbedderServerError: a request failed for good.
        """
        n = len(texts)
        sizes = list(lengths) if lengths is not None else [len(t) for t in texts]
        order = sorted(range(n), key=lambda i: -sizes[i])
        budget = batch_tokens if lengths is not None else None
        requests = [[order[j] for j in r] for r in plan_batches([sizes[i] for i in order], batch_size, budget)]
        out: list[np.ndarray | None] = [None] * n
        refused: dict[int, str] = {}
        stop = threading.Event()
        if len(requests) == 1 or self.concurrency == 1:
            for rows in requests:
                self._isolate(rows, texts, send, stop, out, refused)
        else:
            self._concurrently(requests, texts, send, stop, out, refused)
        if refused:
            raise TextsRefused(refused, n)
        return [v for v in out if v is not None]

    def _concurrently(self, requests: list[list[int]], texts: Sequence[str], send: Send,
                      stop: threading.Event, out: list[np.ndarray | None], refused: dict[int, str]) -> None:
        failures: list[BaseException] = []  # in the order they happened

        def run(rows: list[int]) -> None:
            try:
                self._isolate(rows, texts, send, stop, out, refused)
            except BaseException as exc:
                with self._lock:
                    failures.append(exc)
                stop.set()  # after the append: a sibling abandoned for it comes later in the list
                raise

        pool = self._executor()
        futures: list[Future[None]] = [pool.submit(run, rows) for rows in requests]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            # After a failure (or when this thread is interrupted) the rest is not sent; the
            # requests already sending finish (or give up) before the call returns.
            left = [f for f in futures if not f.done()]
            if left:
                stop.set()
                for f in left:
                    f.cancel()
                wait(left)
        if failures:
            raise root_cause(failures)

    def _isolate(self, rows: list[int], texts: Sequence[str], send: Send, stop: threading.Event,
                 out: list[np.ndarray | None], refused: dict[int, str]) -> None:
        """Send ``rows``; when the server refuses them for their content, bisect to the texts
        it refuses (each then named by position)."""
        todo = [rows]
        while todo:
            part = todo.pop()
            try:
                vectors = self._send(send, [texts[i] for i in part], stop)
            except RequestRefused as exc:
                if exc.status not in _CONTENT_REFUSALS:
                    raise
                if len(part) > 1:
                    mid = len(part) // 2
                    todo += [part[mid:], part[:mid]]
                    continue
                why = exc.reason if exc.status != 413 else f"over the server's request size limit ({exc.reason})"
                refused[part[0]] = f"HTTP {exc.status}: {why}"
                continue
            if len(vectors) != len(part):
                raise EmbedderServerError(f"the server returned {len(vectors)} vectors for {len(part)} texts")
            for i, vec in zip(part, vectors, strict=True):
                out[i] = vec

    def _send(self, send: Send, texts: list[str], stop: threading.Event) -> np.ndarray:
        with self._lock:
            self.in_flight += 1
            self.sent += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return send(texts, stop)
        finally:
            with self._lock:
                self.in_flight -= 1


def root_cause(failures: Sequence[BaseException]) -> BaseException:
    """The failure that stopped a call: the first that is not a sibling's abandonment."""
    return next((f for f in failures if not isinstance(f, RequestAbandoned)), failures[0])
