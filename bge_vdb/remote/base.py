"""What the remote embedders share: options, the embed calls, tokens, the fingerprint.

A remote embedder satisfies :class:`~bge_vdb.types.EmbedderProtocol` like the local
:class:`~bge_vdb.embedder.Embedder`: documents and queries (the query instruction is applied
here, client-side, never by the server), ``dim``, ``fingerprint``, ``max_length``, token counts,
``split_text`` and truncation counts. Construction contacts nothing; the server is asked what it
serves on first use (or :meth:`RemoteEmbedder.load`).

Subclasses (:mod:`.tei`, :mod:`.openai`) say how to describe the server, embed one request and,
when the server can, tokenize.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..embedder import DEFAULT_TOKEN_BUDGET, _check_text, _check_texts
from ..errors import ConfigError, EmbedderServerError, ModelError, TokenCountUnavailable
from ..models import PRESETS, ModelSpec, get_preset, warn_no_instruction
from ..retry import DEFAULT_POLICY, RetryPolicy
from ..tokens import token_windows
from .fingerprint import ProbeMixin
from .http import ServerClient
from .options import merge_options, parse_remote_url, positive
from .requests import RequestRunner
from .tokenizer import ServerTokens, TokenSource, find_local_tokenizer

log = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 4
DEFAULT_BATCH_SIZE = 32
_DIM_PROBE = "bge-vdb dimension probe"


@dataclass(frozen=True)
class ServerInfo:
    """What a server says about what it serves (None: it does not say)."""

    model: str
    revision: str | None = None
    pooling: str | None = None
    max_length: int | None = None  # longest input in tokens (TEI: max_input_length)
    max_batch: int | None = None  # most texts per request (TEI: max_client_batch_size)
    max_batch_tokens: int | None = None
    tokenize: bool = False  # has a tokenize endpoint
    version: str | None = None


class RemoteEmbedder(ProbeMixin, ABC):
    """Embeddings from a server, with the local Embedder's interface. See :mod:`bge_vdb.remote`.

    Args:
        url: ``tei+http(s)://...`` or ``openai+http(s)://...`` (options may ride in its query).
        model: the served model (OpenAI servers: required; TEI: checked against ``/info``).
        preset: the preset the served model is, when its name does not say (its instruction,
            dimension and token limit).
        tokenizer: a directory (or Hugging Face id in the local cache) with the model's
            tokenizer.json, for token counts and splitting without asking the server.
        query_instruction: prefix for queries (default: the preset's, else none).
        concurrency: requests in flight at once (default 4).
        batch_size: most texts per request (default 32, never over the server's limit); with token
            counts, a request also holds at most the server's max_batch_tokens (TEI), else 8192
            padded tokens.
        max_length: the model's token limit, when the server does not say it.
        timeout: seconds to connect and for each answer (default 60).
        normalize: L2-normalize the vectors (default True, as BGE needs).
        retry: the retry policy for 429/5xx/connection errors (default: bge-vdb's).
        probe_tolerance: how close the vectors of stored records must be re-embedded for a
            collection written by another embedder of this model to be accepted.
        backend / precision: accepted as ``"auto"`` only (the server decides), so code and
            commands written for the local Embedder pass them unchanged.
    """

    kind: ClassVar[str]
    secret_env: ClassVar[str]

    def __init__(self, url: str, *, secret: str | None = None, model: str | None = None,
                 preset: str | None = None, tokenizer: str | None = None,
                 query_instruction: str | None = None, concurrency: int | None = None,
                 batch_size: int | None = None, max_length: int | None = None,
                 timeout: float | None = None, normalize: bool | None = None,
                 retry: RetryPolicy | None = None, probe_tolerance: float | None = None,
                 backend: str = "auto", precision: str = "auto") -> None:
        parsed = parse_remote_url(url)
        if parsed.kind != self.kind:
            raise ConfigError(f"{type(self).__name__} takes {self.kind}+ URLs, not {parsed.display!r}")
        given = {"model": model, "preset": preset, "tokenizer": tokenizer,
                 "query_instruction": query_instruction, "concurrency": concurrency,
                 "batch_size": batch_size, "max_length": max_length, "timeout": timeout,
                 "normalize": normalize}
        opts = merge_options(parsed.options, {k: v for k, v in given.items() if v is not None})
        for name in ("backend", "precision"):
            value = backend if name == "backend" else precision
            if value != "auto":
                raise ConfigError(f"{name}={value!r} is an option of the local Embedder; a remote "
                                  f"embedder runs the model on the server (leave {name} at 'auto')")
        self.url = parsed.display
        self.base_url = parsed.base_url
        self.model: str | None = opts.get("model")
        self.concurrency = positive(opts.get("concurrency", DEFAULT_CONCURRENCY), "concurrency")
        self._batch_size_arg = positive(opts["batch_size"], "batch_size") if "batch_size" in opts else None
        self._max_length_arg = positive(opts["max_length"], "max_length") if "max_length" in opts else None
        self.timeout = float(opts.get("timeout", 60.0))
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        self.normalize = bool(opts.get("normalize", True))
        self._instruction_arg: str | None = opts.get("query_instruction")
        self.query_instruction_given = self._instruction_arg is not None
        self._tokenizer_arg: str | None = opts.get("tokenizer")
        self._preset_arg: ModelSpec | None = None
        if "preset" in opts:
            self._preset_arg = get_preset(opts["preset"])
            if self._preset_arg is None:
                raise ConfigError(f"unknown preset {opts['preset']!r}; presets: {', '.join(PRESETS)}")
        self.retry = retry if retry is not None else DEFAULT_POLICY
        self._init_probe(probe_tolerance)
        self._secret = secret if secret is not None else (os.environ.get(self.secret_env) or None)
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._lock = threading.RLock()  # re-entered: the token lookup may open the client
        self._client: ServerClient | None = None
        self._info: ServerInfo | None = None
        self._tokens: TokenSource | None = None
        self._tokens_looked = False
        self._dim: int | None = None
        self.runner = RequestRunner(self.concurrency)
        self.last_truncated = 0
        self.truncated_total = 0
        self._warned_uncounted = False

    # --- plumbing -------------------------------------------------------------------------------

    def __repr__(self) -> str:  # never the secret; the URL holds none (refused there)
        model = f", model={self.model!r}" if self.model else ""
        return f"{type(self).__name__}({self.url!r}{model}, concurrency={self.concurrency})"

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_lock", "_client", "runner", "_tokens", "_tokens_looked")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        info, dim = state.pop("_info", None), state.pop("_dim", None)
        self.__dict__.update(state)
        self._reset_runtime()
        self._info, self._dim = info, dim

    def close(self) -> None:
        """Close connections and the request threads (a later call opens them again)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.runner.close()

    def __enter__(self) -> RemoteEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> ServerClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = ServerClient(
                        self.base_url, secret=self._secret, timeout=self.timeout,
                        connections=self.concurrency + 1, policy=self.retry,
                        secret_hint=f"set {self.secret_env} or pass the {self._secret_arg}= option")
        return self._client

    _secret_arg: ClassVar[str] = "token"

    # --- what the subclasses say ----------------------------------------------------------------

    @abstractmethod
    def _describe(self) -> ServerInfo:
        """Ask the server what it serves (and check it serves ``self.model``)."""

    @abstractmethod
    def _request(self, texts: list[str], stop: threading.Event) -> np.ndarray:
        """Embed one request's texts (already within the server's limits): (n, dim) floats.
        ``stop`` goes to :meth:`ServerClient.post`: set, the request is not sent (again)."""

    def _tokenize(self, texts: list[str], special: bool) -> list[list[tuple[int, int] | None]]:
        raise TokenCountUnavailable(f"{self.url} has no tokenize endpoint")  # pragma: no cover

    # --- what the server serves -----------------------------------------------------------------

    @property
    def server(self) -> ServerInfo:
        """What the server serves (asked once)."""
        if self._info is None:
            info = self._describe()
            if self._max_length_arg is not None and info.max_length is not None \
                    and self._max_length_arg != info.max_length:
                raise ConfigError(f"max_length={self._max_length_arg}, but the server truncates at "
                                  f"{info.max_length} tokens; leave max_length out")
            self._info = info
        return self._info

    def load(self) -> RemoteEmbedder:
        """Ask the server what it serves and the vectors' dimension now (otherwise first use does)."""
        _ = self.server
        if self._dim is None:
            self._embed([_DIM_PROBE], "")
        return self

    def check_files(self) -> RemoteEmbedder:
        """Check what can be checked locally (an explicit ``tokenizer=``), contacting nothing."""
        if self._tokenizer_arg is not None:
            self._token_source()
        return self

    @property
    def preset(self) -> ModelSpec | None:
        if self._preset_arg is not None:
            return self._preset_arg
        return get_preset(self.model) if self.model else get_preset(self.server.model)

    @property
    def dim(self) -> int:
        if self._dim is None:
            preset = self.preset
            if preset is not None:
                return preset.dim  # no request needed; the first answer is checked against it
            self.load()
        assert self._dim is not None
        return self._dim

    @property
    def max_length(self) -> int:
        if self._max_length_arg is not None:
            return self._max_length_arg
        preset = self.preset
        return self.server.max_length or (preset.max_length if preset else 512)

    @property
    def query_instruction(self) -> str:
        if self._instruction_arg is not None:
            return self._instruction_arg
        preset = self._adopted_preset() or self.preset
        return preset.query_instruction if preset else ""

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The served model's id and revision, pooling and normalization, dimension and token
        limit; after a collection's probe succeeded (see :meth:`adopt_fingerprint`), the
        identity recorded there."""
        info, preset = self.server, self.preset
        fp = {"model": info.model, "revision": info.revision, "weights_sha256": None,
              "pooling": info.pooling or (preset.pooling if preset else None),
              "normalize": self.normalize, "query_instruction": self.query_instruction,
              "preset": preset.id if preset else None, "dim": self.dim,
              "max_length": self.max_length, "served_by": self.kind}
        return self._with_adopted(fp)

    # --- tokens ---------------------------------------------------------------------------------

    def _token_source(self) -> TokenSource | None:
        if not self._tokens_looked:
            with self._lock:
                if not self._tokens_looked:
                    self._tokens = self._find_tokens()
                    self._tokens_looked = True
            log.info("%s counts tokens with %s", self.url, self._tokens.where if self._tokens else "nothing")
        return self._tokens

    def _find_tokens(self) -> TokenSource | None:
        if self._tokenizer_arg is not None:  # checked without contacting the server
            return find_local_tokenizer(self._tokenizer_arg, None, None, None)
        info = self.server
        local = find_local_tokenizer(None, self.model or info.model, info.revision, self.preset)
        if local is None and info.tokenize:
            return ServerTokens(self._tokenize, f"{self.url} (its tokenize endpoint)")
        return local

    @property
    def counts_tokens(self) -> bool:
        return self._token_source() is not None

    @property
    def tokens_from(self) -> str:
        """Where token counts come from (a local tokenizer, the server), or why there are none."""
        source = self._token_source()
        return source.where if source is not None else self._no_tokens_reason()

    def _no_tokens_reason(self) -> str:
        return (f"token counts are unknown: no tokenizer for {self.server.model!r} on this machine "
                f"(pass tokenizer=DIR, a directory with its tokenizer.json) and {self.url} has no "
                f"tokenize endpoint")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Full token counts, special tokens included, without truncation."""
        items = _check_texts(texts, "count_tokens", allow_empty=True)
        if not items:
            return []
        source = self._token_source()
        if source is None:
            raise TokenCountUnavailable(self._no_tokens_reason())
        return source.count(items)

    def split_text(self, text: str, *, window: int | None = None, overlap: int = 32) -> list[str]:
        """Token windows of ``text`` (as :meth:`bge_vdb.Embedder.split_text` cuts them)."""
        _check_text(text, 0)
        source = self._token_source()
        if source is None:
            raise TokenCountUnavailable(self._no_tokens_reason())
        room = self.max_length - source.special_tokens()
        window = room if window is None else window
        if not 1 <= window <= room:
            raise ConfigError(f"window must be between 1 and {room} tokens, not {window}")
        if not 0 <= overlap < window:
            raise ConfigError(f"overlap must be >= 0 and smaller than window ({window}), not {overlap}")
        offsets, continues = source.spans(text)
        return token_windows(text, offsets, continues, window, overlap)

    # --- embedding ------------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passages -> float32 array (n, dim), in input order. No instruction is added."""
        return self._embed(_check_texts(texts, "embed_documents"), "")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries -> float32 array (n, dim); the query instruction is prepended here."""
        return self._embed(_check_texts(texts, "embed_queries"), self._instruction_for_queries())

    def embed_query(self, text: str) -> np.ndarray:
        """One query -> float32 vector (dim,)."""
        _check_text(text, 0)
        return self._embed([text], self._instruction_for_queries())[0]

    def _instruction_for_queries(self) -> str:
        instruction = self.query_instruction
        if not instruction and not self.query_instruction_given and self.preset is None \
                and self._adopted_preset() is None:
            warn_no_instruction(self.server.model)
        return instruction

    def _embed(self, items: list[str], prefix: str) -> np.ndarray:
        if not items:
            self.last_truncated = 0
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [prefix + t for t in items] if prefix else items
        info, lengths, truncated = self.server, None, 0
        if not self.counts_tokens and not self._warned_uncounted:
            self._warned_uncounted = True
            log.warning("%s; texts over the model's limit are truncated by the server without "
                        "being counted", self._no_tokens_reason())
        elif self.counts_tokens:
            limit = self.max_length
            counts = self.count_tokens(texts)
            truncated = sum(1 for c in counts if c > limit)
            lengths = [min(c, limit) for c in counts]
        rows = self.runner.embed(texts, self._checked_request, batch_size=self._batch_size(info),
                                 batch_tokens=info.max_batch_tokens or DEFAULT_TOKEN_BUDGET,
                                 lengths=lengths)
        out = np.stack(rows).astype(np.float32, copy=False)
        self.truncated_total += truncated
        self.last_truncated = truncated
        if truncated:
            log.warning("%d of %d text(s) exceeded %d tokens and were truncated by the server (use "
                        "split_text or sync's on_long='split' to keep all of them)",
                        truncated, len(texts), self.max_length)
        return out

    def _batch_size(self, info: ServerInfo) -> int:
        """Texts per request: ``batch_size``, else 32 (TEI's default client limit; small requests
        keep several in flight and a slow one under the timeout), never over the server's."""
        wanted = self._batch_size_arg or DEFAULT_BATCH_SIZE
        return min(wanted, info.max_batch) if info.max_batch else wanted

    def _checked_request(self, texts: list[str], stop: threading.Event) -> np.ndarray:
        vectors = np.asarray(self._request(texts, stop), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise EmbedderServerError(f"{self.url} returned an array of shape {vectors.shape} for "
                                      f"{len(texts)} texts")
        if not np.isfinite(vectors).all():
            raise EmbedderServerError(f"{self.url} returned vectors with NaN or infinite values")
        self._check_dim(vectors.shape[1])
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            if (norms == 0).any():
                raise EmbedderServerError(f"{self.url} returned an all-zero vector")
            if not np.allclose(norms, 1.0, atol=1e-6):
                vectors = vectors / norms
        return vectors

    def _check_dim(self, dim: int) -> None:
        with self._lock:
            if self._dim == dim:
                return
            if self._dim is not None:
                raise EmbedderServerError(f"{self.url} returned {dim}-d vectors after {self._dim}-d ones")
            preset = self.preset
            if preset is not None and preset.dim != dim:
                raise ModelError(f"{self.url} serves {self.server.model!r}, which makes {dim}-d "
                                 f"vectors, but preset {preset.id} is {preset.dim}-d: it is not that model")
            self._dim = dim
