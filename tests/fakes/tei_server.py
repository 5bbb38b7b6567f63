"""A wire-level fake of Hugging Face Text Embeddings Inference (TEI 1.9) on loopback.

TEI is a Rust binary / container image that cannot run here, so the ``tei+http://`` path is
tested against this fake, written from TEI's documented API (docs/openapi.json and the router's
documented behaviour), never from its code:

* ``GET /info`` with the fields of the ``Info`` schema (model id and sha, ``model_type.embedding.
  pooling``, ``max_input_length``, ``max_client_batch_size``, ``max_batch_tokens``...);
* ``POST /embed`` (``inputs`` a string or a list, ``normalize`` default true, ``truncate``
  default the server's ``auto_truncate``); ``POST /tokenize`` (tokens with UTF-8 byte
  ``start``/``stop``, null for special tokens); ``GET /health``;
* for a reranker directory (a one-label sequence-classification model: TEI's
  ``model_type.reranker``), ``POST /rerank`` (``query``, ``texts``, ``raw_scores`` default
  false: sigmoid, ``truncate`` default ``auto_truncate``, ``return_text``) answering
  ``[{"index", "score"(, "text")}]`` best first; ``/embed`` on a reranker and ``/rerank`` on an
  embedding model are TEI's 424 ``Backend`` errors;
* the error bodies ``{"error", "error_type"}`` and their statuses: 400 ``Empty``, 422
  ``Validation`` (a batch over ``max_client_batch_size``, an input over ``max_input_length``
  tokens without truncation), 422 ``Tokenizer``, 424 ``Backend``, 429 ``Overloaded`` (more
  requests in flight than ``max_concurrent_requests``), and 413 with a plain-text body for a
  request over the payload limit; 401 without the right bearer token when an API key is set.

The vectors are real: the fake runs the model of a local directory through bge-vdb's own
Embedder in fp32 (TEI runs the same weights), truncating at ``max_input_length`` as TEI does.
Rerank scores are real too, and independent of bge-vdb's Reranker: sentence-transformers'
``CrossEncoder`` over the same weights, cutting long pairs longest-first as TEI does.
What it does not model is refused with 501, never silently ignored: ``inputs`` given as token
ids, ``prompt_name``, ``dimensions``, left truncation, and TEI's other routes.

Faults: :meth:`FakeTEI.inject` queues an HTTP status (with ``Retry-After`` when asked) or a
dropped connection for the next requests; :attr:`FakeTEI.poison` makes any input containing it
fail tokenization (TEI's 422 ``Tokenizer``), to test per-text errors.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes.http_base import JsonHandler, serve_in_thread

MAX_CHAR_MULTIPLIER = 250  # TEI refuses inputs over max_input_length * 250 characters
OTHER_ROUTES = {"/embed_all", "/embed_sparse", "/predict", "/similarity", "/decode",
                "/embeddings", "/v1/embeddings", "/vertex", "/metrics"}


@dataclass
class Fault:
    status: int | None  # None: drop the connection
    error_type: str = "Backend"
    retry_after: str | None = None
    path: str | None = None  # only requests to this path


_MODELS: dict[tuple[str, int, bool], Any] = {}
_MODELS_LOCK = threading.Lock()


def _loaded(model_dir: Path, max_length: int, normalize: bool) -> Any:
    """The model, loaded before the fake serves (TEI answers only once its model is loaded: a
    first request must not wait for the weights) and shared by the fakes of a test session."""
    from bge_vdb.embedder import Embedder

    key = (str(model_dir), max_length, normalize)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = Embedder(str(model_dir), precision="fp32", normalize=normalize,
                                    max_length=max_length).load()
        return _MODELS[key]


def is_reranker_dir(model_dir: Path) -> bool:
    """A one-label sequence-classification model: what TEI serves as ``model_type.reranker``."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    classifier = any("SequenceClassification" in a for a in config.get("architectures") or [])
    return classifier and len(config.get("id2label") or {"0": "", "1": ""}) == 1


def _cross_encoder(model_dir: Path, max_length: int) -> Any:
    """sentence-transformers' CrossEncoder over the directory, shared by the fakes of a session."""
    from sentence_transformers import CrossEncoder

    key = (f"cross-encoder:{model_dir}", max_length, False)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = CrossEncoder(str(model_dir), max_length=max_length, device="cpu")
        return _MODELS[key]


class _ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


class FakeTEI:
    """TEI serving the model in ``model_dir`` as ``model_id``.

    Args mirror TEI's launcher flags; ``max_input_length`` defaults to the model's own limit
    (sentence_bert_config / config), as TEI reads it.
    """

    def __init__(self, model_dir: Path, *, model_id: str = "BAAI/bge-small-en-v1.5",
                 model_sha: str | None = "0" * 40, max_client_batch_size: int = 32,
                 max_batch_tokens: int = 16384, max_concurrent_requests: int = 512,
                 payload_limit: int = 2_000_000, auto_truncate: bool = True,
                 api_key: str | None = None, max_input_length: int | None = None,
                 model_type: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        from bge_vdb.embedder import Embedder

        self.model_id, self.model_sha = model_id, model_sha
        self.max_client_batch_size = max_client_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_concurrent_requests = max_concurrent_requests
        self.payload_limit = payload_limit
        self.auto_truncate = auto_truncate
        self.api_key = api_key
        self.delay = delay
        self.reranker = is_reranker_dir(model_dir)
        self.reranked: list[tuple[str, list[str]]] = []  # (query, texts) of each /rerank
        if self.reranker:
            from bge_vdb.reranker import Reranker

            self.max_input_length = max_input_length or Reranker(model_dir).max_length
            self.cross_encoder = _cross_encoder(model_dir, self.max_input_length)
            from tokenizers import Tokenizer

            self.pair_tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            self.pair_tokenizer.no_truncation()  # counts, as TEI's validation does, before any cut
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            labels = {str(k): str(v) for k, v in config["id2label"].items()}
            self.pooling = None
            self.model_type = model_type or {"reranker": {
                "id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}}}
        else:
            probe = Embedder(str(model_dir), precision="fp32")
            self.max_input_length = max_input_length or probe.max_length
            self._models = {norm: _loaded(model_dir, self.max_input_length, norm) for norm in (True, False)}
            self.pooling = self._models[True].layout.pooling
            self.model_type = model_type or {"embedding": {"pooling": self.pooling}}
        self.poison: str | None = None
        self.faults: deque[Fault] = deque()
        self.requests: Counter[str] = Counter()
        self.batch_sizes: list[int] = []
        self.batch_lengths: list[list[int]] = []  # tokens of each input of each /embed (truncated)
        self.embedded_texts: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.seen_auth: list[str | None] = []
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------------------ running
    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"tei+http://127.0.0.1:{self.port}"

    def start(self) -> FakeTEI:
        fake = self

        class Handler(_Handler):
            tei = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve_in_thread(self._server, "fake-tei")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def inject(self, status: int | None, *, times: int = 1, error_type: str = "Backend",
               retry_after: str | None = None, path: str | None = None) -> None:
        """The next ``times`` requests (to ``path``, if given) fail with ``status`` (None: the
        connection is dropped before the request is read)."""
        for _ in range(times):
            self.faults.append(Fault(status, error_type, retry_after, path))

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id, "model_sha": self.model_sha, "model_dtype": "float32",
            "model_type": self.model_type, "served_model_name": self.model_id,
            "max_concurrent_requests": self.max_concurrent_requests,
            "max_input_length": self.max_input_length, "max_batch_tokens": self.max_batch_tokens,
            "max_batch_requests": None, "max_client_batch_size": self.max_client_batch_size,
            "auto_truncate": self.auto_truncate, "tokenization_workers": 1, "version": "1.9.3",
            "sha": None, "docker_label": None,
        }

    # ------------------------------------------------------------------------------- routes
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in (None, path):
                    self.faults.remove(fault)
                    return fault
        return None

    def _inputs(self, body: dict[str, Any]) -> list[str]:
        inputs = body.get("inputs")
        if isinstance(inputs, str):
            return [inputs]
        if not isinstance(inputs, list):
            raise _ApiError(422, "Failed to deserialize the JSON body into the target type: inputs: "
                                 "data did not match any variant of untagged enum Input", "Validation")
        if not inputs:
            raise _ApiError(400, "`inputs` cannot be empty", "Empty")
        if not all(isinstance(x, str) for x in inputs):
            raise _ApiError(501, "not modelled by the fake: inputs as token ids", "Validation")
        if len(inputs) > self.max_client_batch_size:
            raise _ApiError(422, f"batch size {len(inputs)} > maximum allowed batch size "
                                 f"{self.max_client_batch_size}", "Validation")
        return inputs

    def _tokenizer(self) -> Any:
        if self.reranker:
            return self.pair_tokenizer
        model = self._models[True]
        model.load()
        return model._tokenizer

    def _check_text(self, text: str, truncate: bool) -> int:
        """Refuse ``text`` as TEI would; its token count after truncation."""
        if self.poison is not None and self.poison in text:
            raise _ApiError(422, "tokenizer error Unable to tokenize the input (poisoned by the test)",
                            "Tokenizer")
        limit = self.max_input_length * MAX_CHAR_MULTIPLIER
        if len(text) > limit and not truncate:
            raise _ApiError(422, f"Input validation error: `inputs` must have less than {limit} "
                                 f"characters. Given: {len(text)}", "Validation")
        n = len(self._tokenizer().encode(text).ids)
        if n > self.max_input_length and not truncate:
            raise _ApiError(422, f"Input validation error: `inputs` must have less than "
                                 f"{self.max_input_length} tokens. Given: {n}", "Validation")
        return min(n, self.max_input_length)

    def embed(self, body: dict[str, Any]) -> list[list[float]]:
        if self.reranker:
            raise _ApiError(424, "model is not an embedding model", "Backend")
        for key in ("prompt_name", "dimensions"):
            if body.get(key) is not None:
                raise _ApiError(501, f"not modelled by the fake: {key}", "Validation")
        if str(body.get("truncation_direction", "Right")).lower() != "right":
            raise _ApiError(501, "not modelled by the fake: left truncation", "Validation")
        inputs = self._inputs(body)
        truncate = body.get("truncate")
        truncate = self.auto_truncate if truncate is None else bool(truncate)
        lengths = [self._check_text(text, truncate) for text in inputs]
        normalize = body.get("normalize")
        with self._model_lock:
            vectors = self._models[True if normalize is None else bool(normalize)].embed_documents(inputs)
            self.batch_sizes.append(len(inputs))
            self.batch_lengths.append(lengths)
            self.embedded_texts.extend(inputs)
        return [[float(x) for x in row] for row in vectors]

    def rerank(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.reranker:
            raise _ApiError(424, "model is not a re-ranker model", "Backend")
        query, texts = body.get("query"), body.get("texts")
        if not isinstance(query, str) or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _ApiError(422, "Failed to deserialize the JSON body into the target type: query and "
                                 "texts must be a string and a list of strings", "Validation")
        if not texts:
            raise _ApiError(400, "`texts` cannot be empty", "Empty")
        if str(body.get("truncation_direction", "Right")).lower() != "right":
            raise _ApiError(501, "not modelled by the fake: left truncation", "Validation")
        if len(texts) > self.max_client_batch_size:
            raise _ApiError(422, f"batch size {len(texts)} > maximum allowed batch size "
                                 f"{self.max_client_batch_size}", "Validation")
        truncate = body.get("truncate")
        truncate = self.auto_truncate if truncate is None else bool(truncate)
        for text in texts:
            if self.poison is not None and (self.poison in text or self.poison in query):
                raise _ApiError(422, "tokenizer error Unable to tokenize the input (poisoned by the test)",
                                "Tokenizer")
            n = len(self._tokenizer().encode(query, text).ids)
            if n > self.max_input_length and not truncate:
                raise _ApiError(422, f"Input validation error: `inputs` must have less than "
                                     f"{self.max_input_length} tokens. Given: {n}", "Validation")
        import numpy as np
        import torch

        raw = bool(body.get("raw_scores", False))
        with self._model_lock:
            logits = np.asarray(self.cross_encoder.predict([(query, t) for t in texts],
                                                           activation_fn=torch.nn.Identity()), dtype=np.float64)
            self.reranked.append((query, list(texts)))
        scores = logits if raw else 1 / (1 + np.exp(-logits))
        ranks = [{"index": i, "score": float(s)} | ({"text": texts[i]} if body.get("return_text") else {})
                 for i, s in enumerate(scores)]
        ranks.sort(key=lambda r: r["score"])  # TEI: a stable ascending sort, then reversed
        return ranks[::-1]

    def tokenize(self, body: dict[str, Any]) -> list[list[dict[str, Any]]]:
        if body.get("prompt_name") is not None:
            raise _ApiError(501, "not modelled by the fake: prompt_name", "Validation")
        inputs = self._inputs(body)
        special = body.get("add_special_tokens", True)
        out = []
        for text in inputs:
            if self.poison is not None and self.poison in text:
                raise _ApiError(422, "tokenizer error (poisoned by the test)", "Tokenizer")
            enc = self._tokenizer().encode(text, add_special_tokens=bool(special))
            byte_at = _byte_offsets(text)
            tokens = []
            for tid, tok, (start, stop), sp in zip(enc.ids, enc.tokens, enc.offsets,
                                                  enc.special_tokens_mask, strict=True):
                if sp:
                    tokens.append({"id": tid, "text": tok, "special": True, "start": None, "stop": None})
                else:
                    a, b = byte_at[start], byte_at[stop]
                    tokens.append({"id": tid, "text": text.encode()[a:b].decode(errors="replace"),
                                   "special": False, "start": a, "stop": b})
            out.append(tokens)
        return out


def _byte_offsets(text: str) -> list[int]:
    """Byte offset of each character index (and of the end)."""
    out, pos = [], 0
    for ch in text:
        out.append(pos)
        pos += len(ch.encode())
    out.append(pos)
    return out


class _Handler(JsonHandler):
    tei: FakeTEI

    def _handle(self, method: str) -> None:
        tei, path = self.tei, self.path.split("?", 1)[0]
        fault = tei._take_fault(path)
        if fault is not None and fault.status is None:
            self._drop()
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > tei.payload_limit:  # axum's body limit answers before the handler runs
            self.rfile.read(length)
            self._send_text(413, "Failed to buffer the request body: length limit exceeded")
            return
        raw = self.rfile.read(length) if length else b""
        with tei._lock:
            tei.requests[f"{method} {path}"] += 1
            tei.seen_auth.append(self.headers.get("Authorization"))
        if path in ("/health", "/ping", "/") and method == "GET":
            self._send(200, None)
            return
        if tei.api_key is not None and self.headers.get("Authorization") != f"Bearer {tei.api_key}":
            self._send_text(401, "")
            return
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            self._send(fault.status or 500, {"error": f"injected {fault.status}", "error_type": fault.error_type},
                       headers)
            return
        routes = {("GET", "/info"): None, ("POST", "/embed"): tei.embed, ("POST", "/tokenize"): tei.tokenize,
                  ("POST", "/rerank"): tei.rerank}
        if (method, path) not in routes:
            status = 501 if path in OTHER_ROUTES else 404
            self._send_text(status, "" if status == 404 else "not modelled by the fake")
            return
        if (method, path) == ("GET", "/info"):
            self._send(200, tei.info())
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send_text(400, "Failed to parse the request body as JSON")
            return
        if not isinstance(body, dict):
            self._send_text(422, "Failed to deserialize the JSON body into the target type")
            return
        with tei._lock:
            tei.in_flight += 1
            tei.most_in_flight = max(tei.most_in_flight, tei.in_flight)
            overloaded = tei.in_flight > tei.max_concurrent_requests
        try:
            if overloaded:
                raise _ApiError(429, "Model is overloaded", "Overloaded")
            if tei.delay:
                threading.Event().wait(tei.delay)
            result = routes[(method, path)](body)  # type: ignore[misc]
        except _ApiError as exc:
            self._send(exc.status, {"error": exc.message, "error_type": exc.error_type})
            return
        finally:
            with tei._lock:
                tei.in_flight -= 1
        self._send(200, result)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def fake_tei(model_dir: Path, **options: Any) -> Iterator[FakeTEI]:
    """A started fake, always stopped."""
    server = FakeTEI(model_dir, **options).start()
    try:
        yield server
    finally:
        server.stop()
