"""Remote rerankers: the cross-encoder runs on a server, bge-vdb calls its ``/rerank``.

``Reranker("tei+http://host:8080")`` or ``Reranker("openai+http://host:7997/v1?model=NAME")``
returns a :class:`RemoteReranker` with the local Reranker's interface (``score``, ``rerank``,
``model_id``, ``max_length``, ``normalize``). The same URLs, secrets, HTTP client, retries
(tenacity), error mapping and secret redaction as the remote embedders (:mod:`bge_vdb.remote`).

* TEI (``tei+``): ``GET /info`` must say ``model_type.reranker``; ``POST /rerank``
  ``{"query", "texts", "raw_scores", "truncate": true, "return_text": false}`` -> ``[{"index",
  "score"}]`` sorted by score. ``truncate`` is always sent: TEI cuts a long pair longest-first
  at its ``max_input_length`` (the local Reranker cuts as FlagEmbedding does: see its docs).
* Infinity and Cohere-style servers (``openai+``): ``POST {base}/rerank`` ``{"model", "query",
  "documents", "raw_scores", "return_documents": false}`` -> ``{"results": [{"index",
  "relevance_score"}]}``.

``raw_scores`` is sent as ``not normalize``: both servers then return the logit, or their
sigmoid of it, which is what the local Reranker returns for the same ``normalize``.
Pairs are grouped by query (one request per query holds up to ``batch_size`` passages, never
more than TEI's ``max_client_batch_size``) and sent ``concurrency`` at a time; a passage the
server refuses for its content (400/413/422) is found by bisection and named by pair index.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, EmbedderServerError, TextsRefused
from ..reranker import check_hits, check_pairs, order_hits
from ..reranker_models import get_reranker_preset
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..types import Hit
from .http import RequestRefused, ServerClient
from .options import merge_options, parse_remote_url, positive
from .requests import RequestRunner

DEFAULT_BATCH_SIZE = 32
DEFAULT_CONCURRENCY = 4
_SECRETS = {"tei": ("token", "HF_TOKEN"), "openai": ("api_key", "OPENAI_API_KEY")}


class RemoteReranker:
    """A reranker served by TEI (``tei+http(s)://``) or Infinity (``openai+http(s)://...?model=``).

    Args:
        url: the server (options may ride in its query: ``model``, ``normalize``,
            ``max_length``, ``batch_size``, ``concurrency``, ``timeout``).
        normalize: ``True``: sigmoid scores in (0, 1); ``False`` (default, as FlagEmbedding):
            raw logits.
        max_length: the pair token limit to report when the server does not say it (TEI says it).
        model: the served model (``openai+``: required; TEI: checked against ``/info``).
        batch_size: most passages per request (default 32).
        concurrency: requests in flight at once (default 4).
        timeout: seconds to connect and for each answer (default 60).
        retry: the retry policy for 429/5xx/connection errors (default: bge-vdb's).
        token / api_key: the bearer secret (TEI: ``token`` or ``HF_TOKEN``; ``openai+``:
            ``api_key`` or ``OPENAI_API_KEY``); never shown or logged.
        backend / precision / threads / batch_tokens: the local Reranker's; accepted at their
            defaults only (the server decides), so code written for it passes them unchanged.
    """

    def __init__(self, url: str, *, normalize: bool | None = None, max_length: int | None = None,
                 model: str | None = None, batch_size: int | None = None, concurrency: int | None = None,
                 timeout: float | None = None, retry: RetryPolicy | None = None,
                 token: str | None = None, api_key: str | None = None, backend: str = "auto",
                 precision: str = "auto", threads: int | None = None,
                 batch_tokens: int | None = None) -> None:
        parsed = parse_remote_url(url)
        self.kind = parsed.kind
        for name, value, default in (("backend", backend, "auto"), ("precision", precision, "auto"),
                                     ("threads", threads, None), ("batch_tokens", batch_tokens, None)):
            if value != default:
                raise ConfigError(f"{name}={value!r} is an option of the local Reranker; a remote "
                                  f"reranker runs the model on the server (leave {name} unset)")
        secret_arg, secret_env = _SECRETS[self.kind]
        other = api_key if self.kind == "tei" else token
        if other is not None:
            raise ConfigError(f"a {self.kind}+ reranker takes its secret as {secret_arg}=..., not "
                              f"{'api_key' if self.kind == 'tei' else 'token'}=...")
        given = {"normalize": normalize, "max_length": max_length, "model": model,
                 "batch_size": batch_size, "concurrency": concurrency, "timeout": timeout}
        opts = merge_options(parsed.options, {k: v for k, v in given.items() if v is not None})
        unknown = sorted(set(opts) - set(given))
        if unknown:
            raise ConfigError(f"a remote reranker does not take {unknown} in its URL; it takes "
                              f"{', '.join(given)}")
        self.url, self.base_url = parsed.display, parsed.base_url
        self.model: str | None = opts.get("model")
        if self.kind == "openai" and not self.model:
            raise ConfigError(f"an openai+ reranker needs the served model: {self.url}?model=NAME")
        if "normalize" in opts and not isinstance(opts["normalize"], bool):
            raise ConfigError(f"normalize must be True or False, not {opts['normalize']!r}")
        self._normalize: bool = bool(opts.get("normalize", False))
        self._max_length_arg = positive(opts["max_length"], "max_length") if "max_length" in opts else None
        self.batch_size = positive(opts.get("batch_size", DEFAULT_BATCH_SIZE), "batch_size")
        self.concurrency = positive(opts.get("concurrency", DEFAULT_CONCURRENCY), "concurrency")
        self.timeout = float(opts.get("timeout", 60.0))
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        self.retry = retry if retry is not None else DEFAULT_POLICY
        secret = token if self.kind == "tei" else api_key
        self._secret = secret if secret is not None else (os.environ.get(secret_env) or None)
        self._secret_hint = f"set {secret_env} or pass the {secret_arg}= option"
        self._lock = threading.Lock()
        self._client: ServerClient | None = None
        self._info: dict[str, Any] | None = None
        self.runner = RequestRunner(self.concurrency)

    def __repr__(self) -> str:  # never the secret; the URL holds none (refused there)
        model = f", model={self.model!r}" if self.model else ""
        return f"RemoteReranker({self.url!r}{model})"

    def __getstate__(self) -> dict[str, Any]:  # a copy opens its own connections and threads
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_client", "runner")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._client = None
        self.runner = RequestRunner(self.concurrency)

    def close(self) -> None:
        """Close connections and request threads (a later call opens them again)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.runner.close()

    def __enter__(self) -> RemoteReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> ServerClient:
        with self._lock:
            if self._client is None:
                self._client = ServerClient(self.base_url, secret=self._secret, timeout=self.timeout,
                                            connections=self.concurrency + 1, policy=self.retry,
                                            secret_hint=self._secret_hint)
            return self._client

    # --- what the server serves -----------------------------------------------------------------

    def _tei_info(self) -> dict[str, Any]:
        """TEI's ``/info``, asked once; refuses a server that serves no reranker."""
        if self._info is None:
            try:
                info = self.client.get("/info")
            except RequestRefused as exc:
                raise EmbedderServerError(f"{self.base_url} does not answer as TEI does (GET /info: "
                                          f"HTTP {exc.status}): {exc.reason}") from None
            if not isinstance(info, Mapping) or not isinstance(info.get("model_id"), str):
                raise EmbedderServerError(f"{self.base_url}/info has no model_id: not a TEI server?")
            model_type = info.get("model_type")
            if not (isinstance(model_type, Mapping) and isinstance(model_type.get("reranker"), Mapping)):
                kind = next(iter(model_type), "unknown") if isinstance(model_type, Mapping) else model_type
                raise ConfigError(f"{self.base_url} serves a {kind} model ({info['model_id']}), not a "
                                  "reranker (TEI's model_type.reranker)")
            if self.model is not None and self.model not in (info["model_id"], info.get("served_model_name")):
                raise ConfigError(f"model={self.model!r}, but {self.base_url} serves {info['model_id']!r}")
            self._info = dict(info)
        return self._info

    def _check_server(self) -> None:
        """Once: TEI's ``/info`` says it serves a reranker; an ``openai+`` server's ``/models``
        lists the model (and, where it lists capabilities, as Infinity does, ``rerank``). A
        server without ``/models`` (404/405) is trusted to serve the model asked for."""
        if self.kind == "tei":
            self._tei_info()
            return
        if self._info is not None:
            return
        try:
            listing = self.client.get("/models")
        except RequestRefused as exc:
            if exc.status not in (404, 405):
                raise
            listing = {"data": [{"id": self.model}]}
        entries = listing.get("data") if isinstance(listing, Mapping) else None
        if not isinstance(entries, list):
            raise EmbedderServerError(f"{self.base_url}/models answered without a 'data' list: not an "
                                      "OpenAI-compatible server?")
        served = {e.get("id"): e for e in entries if isinstance(e, Mapping)}
        if self.model not in served:
            raise ConfigError(f"{self.base_url} does not serve model {self.model!r}; it serves "
                              f"{', '.join(repr(n) for n in served) or 'nothing'}")
        capabilities = served[self.model].get("capabilities")
        if isinstance(capabilities, list) and "rerank" not in capabilities:
            raise ConfigError(f"{self.base_url} serves {self.model!r} for {sorted(map(str, capabilities))}, "
                              "not for rerank: it is not a reranker")
        self._info = dict(served[self.model])

    @property
    def model_id(self) -> str:
        """The served model: TEI's ``/info`` ``model_id``, or the ``model`` option."""
        if self.kind == "tei":
            return str(self._tei_info()["model_id"])
        assert self.model is not None
        return self.model

    @property
    def max_length(self) -> int:
        """Pair token limit: the option, else TEI's ``max_input_length``, else the preset's (512)."""
        if self._max_length_arg is not None:
            return self._max_length_arg
        if self.kind == "tei":
            value = self._tei_info().get("max_input_length")
            if isinstance(value, int) and value > 0:
                return value
        preset = get_reranker_preset(self.model_id)
        return preset.max_length if preset else 512

    @property
    def normalize(self) -> bool:
        """Whether scores are sigmoid probabilities (True) or raw logits (False)."""
        return self._normalize

    # --- scoring --------------------------------------------------------------------------------

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One score per (query, passage) pair, float32 of shape (n,), in input order."""
        items = check_pairs(pairs)
        out = np.zeros(len(items), dtype=np.float32)
        if not items:
            return out
        self._check_server()
        groups: dict[str, list[int]] = {}
        for i, (query, _) in enumerate(items):
            groups.setdefault(query, []).append(i)
        refused: dict[int, str] = {}
        for query, rows in groups.items():
            passages = [items[i][1] for i in rows]
            try:
                scores = self.runner.embed(passages, functools.partial(self._request, query),
                                           batch_size=self._request_size(), batch_tokens=None, lengths=None)
            except TextsRefused as exc:  # positions within the group -> pair indices
                refused.update({rows[j]: why for j, why in exc.refused.items()})
                continue
            out[rows] = np.asarray(scores, dtype=np.float32).reshape(len(rows))
        if refused:
            raise TextsRefused(refused, len(items))
        return out

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """``hits`` reordered by the server's score of (query, hit.text), best first; as
        :meth:`bge_vdb.Reranker.rerank`."""
        items = check_hits(query, hits, k)
        if not items:
            return []
        scores = self.score([(query, hit.text or "") for hit in items])
        return order_hits(items, scores, k)

    def _request_size(self) -> int:
        if self.kind == "tei":
            limit = self._tei_info().get("max_client_batch_size")
            if isinstance(limit, int) and limit > 0:
                return min(self.batch_size, limit)
        return self.batch_size

    def _request(self, query: str, texts: list[str], stop: threading.Event) -> np.ndarray:
        if self.kind == "tei":
            body: dict[str, Any] = {"query": query, "texts": texts, "raw_scores": not self._normalize,
                                    "truncate": True, "return_text": False}
            data = self.client.post("/rerank", body, stop=stop)
            ranks, field = data, "score"
        else:
            body = {"model": self.model, "query": query, "documents": texts,
                    "raw_scores": not self._normalize, "return_documents": False}
            data = self.client.post("/rerank", body, stop=stop)
            ranks, field = data.get("results") if isinstance(data, Mapping) else None, "relevance_score"
        return _by_index(ranks, field, len(texts), f"{self.base_url}/rerank")


def _by_index(ranks: Any, field: str, n: int, where: str) -> np.ndarray:
    """The scores of a ``[{"index": i, field: s}, ...]`` answer, in index order; each index
    0..n-1 exactly once, else the answer is not what was asked for."""
    if not isinstance(ranks, list):
        raise EmbedderServerError(f"{where} answered {type(ranks).__name__}, not a list of ranks")
    out = np.full(n, np.nan, dtype=np.float32)
    seen: set[int] = set()
    for rank in ranks:
        index = rank.get("index") if isinstance(rank, Mapping) else None
        score = rank.get(field) if isinstance(rank, Mapping) else None
        if (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n or index in seen
                or not isinstance(score, (int, float)) or isinstance(score, bool)):
            raise EmbedderServerError(f"{where} answered a rank that is not {{index, {field}}} for one "
                                      f"of the {n} passages sent: {rank!r:.120}")
        seen.add(index)
        out[index] = float(score)
    if len(seen) != n:
        raise EmbedderServerError(f"{where} ranked {len(seen)} of the {n} passages sent")
    return out
