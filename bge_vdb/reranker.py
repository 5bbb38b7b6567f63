"""The Reranker: cross-encoder relevance scores for (query, passage) pairs, and search hits
reordered by them.

A cross-encoder reads query and passage together, so it ranks far better than comparing two
independent embeddings, at the price of one forward pass per pair: it reorders the few dozen
candidates a vector search returns. BAAI's ``bge-reranker-base``, ``-large`` and ``-v2-m3`` are
presets (:mod:`bge_vdb.reranker_models`); any one-label sequence-classification model in a
directory works from its ``config.json``.

As in the :class:`~bge_vdb.embedder.Embedder`, construction is cheap and validates; the first
call (or :meth:`Reranker.load`) loads tokenizer and weights once. Pairs are tokenized once,
sorted by length and cut into token-budget batches; scores come back in input order.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .backends import pick_backend
from .backends.cross_encoder import CrossEncoderBackend
from .embedder import DEFAULT_TOKEN_BUDGET, _pad, plan_batches
from .errors import ConfigError, InputError, ModelError
from .hub import ResolvedModel, read_json, resolve, weights_file
from .reranker_models import RERANKER_PRESETS, RerankerSpec, get_reranker_preset
from .types import Hit

log = logging.getLogger(__name__)

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_OPTIONS = ("device", "batch_size")
# RoBERTa-family position tables start after the padding index: 514 positions hold 512 tokens.
_OFFSET_POSITIONS = ("xlm-roberta", "roberta", "camembert")


@dataclass(frozen=True)
class RerankerLayout:
    """What a cross-encoder directory says, merged with the preset and the caller's arguments."""

    resolved: ResolvedModel
    model_type: str
    max_length: int
    normalize: bool
    preset: RerankerSpec | None


@runtime_checkable
class RerankerProtocol(Protocol):
    """What code that reranks needs: the local :class:`Reranker` and the remote
    :class:`~bge_vdb.remote.reranker.RemoteReranker` both satisfy it."""

    @property
    def model_id(self) -> str:
        """The model's id (or directory)."""

    @property
    def max_length(self) -> int:
        """Tokens per (query, passage) pair."""

    @property
    def normalize(self) -> bool:
        """Sigmoid scores (True) or raw logits (False)."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One float32 score per pair, input order."""

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """New hits with the reranker's scores, best first, at most ``k``."""


def check_pairs(pairs: Any) -> list[tuple[str, str]]:
    """``pairs`` as a list of (query, passage) string tuples; the first bad one is named by its
    index and side (``TypeError`` for a wrong type, ``InputError`` for an empty text)."""
    if isinstance(pairs, (str, bytes)) or (isinstance(pairs, tuple) and len(pairs) == 2
                                           and all(isinstance(x, str) for x in pairs)):
        raise TypeError("score takes a list of (query, passage) pairs: wrap one pair as [(query, passage)]")
    try:
        items = list(pairs)
    except TypeError:
        raise TypeError(f"score takes a list of (query, passage) pairs, not {type(pairs).__name__}") from None
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(items):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"pair {i} is not a (query, passage) pair: {pair!r:.80}")
        for side, text in zip(("query", "passage"), pair, strict=True):
            if not isinstance(text, str):
                raise TypeError(f"pair {i}: the {side} is {type(text).__name__}, not str")
            if not text.strip():
                raise InputError(f"pair {i}: the {side} is empty or whitespace only ({text!r}); "
                                 "bge-vdb refuses empty texts")
        out.append((pair[0], pair[1]))
    return out


def order_hits(hits: Sequence[Hit], scores: np.ndarray, k: int | None) -> list[Hit]:
    """New hits carrying ``scores``, best first (ties and NaNs keep input order; NaN last), at
    most ``k``. Shared by the local and the remote rerankers."""
    keyed = [(math.isnan(s), -s if not math.isnan(s) else 0.0, i) for i, s in enumerate(scores.tolist())]
    order = [i for *_, i in sorted(keyed)]
    if k is not None:
        order = order[:k]
    return [dataclasses.replace(hits[i], score=float(scores[i])) for i in order]


def check_hits(query: Any, hits: Any, k: Any) -> list[Hit]:
    """Validate ``rerank``'s arguments before any model is touched."""
    if not isinstance(query, str):
        raise TypeError(f"query is {type(query).__name__}, not str")
    if not query.strip():
        raise InputError(f"the query is empty or whitespace only ({query!r})")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        raise ConfigError(f"k must be a non-negative integer or None, not {k!r}")
    if isinstance(hits, (str, bytes)):
        raise TypeError("rerank takes a list of Hit objects, not a string")
    items = list(hits)
    for i, hit in enumerate(items):
        if not isinstance(hit, Hit):
            raise TypeError(f"hit at position {i} is {type(hit).__name__}, not bge_vdb.Hit")
        if not isinstance(hit.text, str) or not hit.text.strip():
            raise InputError(f"hit {hit.id!r} at position {i} has no text to rerank "
                             f"(text={hit.text!r}); search with the text stored, or drop it")
    return items


class Reranker:
    """Cross-encoder relevance scores from a preset id, a Hugging Face id or a local directory.

    Args:
        model: e.g. ``"BAAI/bge-reranker-base"``, another Hugging Face id, a directory
            holding a one-label sequence-classification model (safetensors) and its
            ``tokenizer.json``, or a server URL (``tei+http://host:8080``,
            ``openai+http://host:7997/v1?model=NAME``: a remote reranker).
        backend: ``"torch"``, ``"onnx"`` or ``"auto"`` (torch when installed, else ONNX Runtime).
        precision: as the Embedder's: ``"auto"`` (torch: bf16 autocast on CPUs with AVX-512
            BF16/AMX, else fp32; ONNX: fp32), ``"fp32"``, ``"bf16"``, ``"fp16"`` (GPU).
        normalize: ``True`` gives ``sigmoid(logit)`` in (0, 1); ``False`` the raw logit;
            ``None`` the preset's default (BAAI's rerankers: raw, as FlagEmbedding).
        max_length: tokens per pair; default the preset's, else the tokenizer's limit.
        batch_tokens: most padded tokens per forward pass (default 8192).
        threads: CPU threads for the forward passes (see ``Embedder``).
        **options: ``device`` (torch: ``"cpu"``, ``"cuda"``), ``batch_size`` (most pairs per
            forward pass, default 32). A remote URL takes the remote options instead
            (:class:`~bge_vdb.remote.reranker.RemoteReranker`: ``model``, ``token``/``api_key``,
            ``concurrency``, ``timeout``, ``retry``...).
    """

    def __new__(cls, model: Any = None, **options: Any) -> Any:
        """``Reranker("tei+http://...")`` / ``Reranker("openai+http://.../v1?model=NAME")``
        returns a :class:`~bge_vdb.remote.reranker.RemoteReranker` with the same interface (the
        model runs on the server); any other model gives this local Reranker."""
        if cls is Reranker and isinstance(model, str):
            from .remote.options import is_remote_url

            if is_remote_url(model):
                from .remote.reranker import RemoteReranker

                return RemoteReranker(model, **options)
        return super().__new__(cls)

    def __init__(self, model: str | os.PathLike[str], *, backend: str = "auto", precision: str = "auto",
                 normalize: bool | None = None, max_length: int | None = None,
                 batch_tokens: int | None = None, threads: int | None = None, **options: Any) -> None:
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty string, not {model!r}")
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown Reranker option(s) {unknown}; known: backend, precision, "
                              f"normalize, max_length, batch_tokens, threads, {', '.join(_OPTIONS)}")
        if precision not in _PRECISIONS:
            raise ConfigError(f"precision must be one of {_PRECISIONS}, not {precision!r}")
        if normalize is not None and not isinstance(normalize, bool):
            raise ConfigError(f"normalize must be True, False or None, not {normalize!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 4):
            raise ConfigError(f"max_length must be an integer >= 4, not {max_length!r}")
        if batch_tokens is not None and (isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int)
                                         or batch_tokens < 1):
            raise ConfigError(f"batch_tokens must be a positive integer or None, not {batch_tokens!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, not {threads!r}")
        batch_size = options.get("batch_size", 32)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
        self.backend_name = pick_backend(backend)
        if self.backend_name == "onnx" and precision in ("bf16", "fp16"):
            raise ConfigError(f"precision={precision!r} is a torch option; backend='onnx' runs 'fp32'")
        self.model = model
        self.precision = precision
        self.threads = threads
        self.device: str | None = options.get("device")
        self.batch_size = batch_size
        self.batch_tokens = DEFAULT_TOKEN_BUDGET if batch_tokens is None else batch_tokens
        self._normalize_arg = normalize
        self._max_length_arg = max_length
        local = Path(model).expanduser()
        self._preset = None if local.exists() else get_reranker_preset(model)
        if self._preset is None:
            from .hub import check_model_path

            check_model_path(model)
        self._layout: RerankerLayout | None = None
        self._backend: CrossEncoderBackend | None = None
        self._load_lock = threading.Lock()
        self._tokenizer: Any = None
        self.last_truncated = 0

    def __repr__(self) -> str:
        state = self._backend.describe() if self._backend else f"{self.backend_name}, not loaded"
        return f"Reranker({self.model!r}, {state})"

    # --- what the model is (cheap) ---------------------------------------------------------

    @property
    def model_id(self) -> str:
        """The preset / Hugging Face id, or the model directory's absolute path."""
        if self._preset is not None:
            return self._preset.id
        return self.layout.resolved.name

    @property
    def max_length(self) -> int:
        """Tokens per (query, passage) pair; longer pairs are truncated (and counted)."""
        if self._layout is None and self._max_length_arg is not None:
            return self._max_length_arg
        if self._layout is None and self._preset is not None:
            return self._preset.max_length
        return self.layout.max_length

    @property
    def normalize(self) -> bool:
        """Whether scores are ``sigmoid(logit)`` (True) or raw logits (False)."""
        if self._normalize_arg is not None:
            return self._normalize_arg
        if self._preset is not None:
            return self._preset.normalize
        return self.layout.normalize

    @property
    def layout(self) -> RerankerLayout:
        """The model directory's settings (resolves the model; reads JSON only, no weights)."""
        if self._layout is None:
            try:
                resolved = resolve(self.model)
            except ModelError as exc:  # resolve's hint names the Embedder: point at the Reranker
                raise ModelError(str(exc).replace("Embedder('DIR')", "Reranker('DIR')")) from None
            self._layout = self._read_layout(resolved)
        return self._layout

    def _read_layout(self, resolved: ResolvedModel) -> RerankerLayout:
        path, preset = resolved.path, self._preset
        config = read_json(path / "config.json")
        if not isinstance(config, dict):
            raise ModelError(f"{path} has no config.json: not a Hugging Face model directory")
        if "auto_map" in config:
            raise ModelError(f"{path}/config.json asks for custom code (auto_map); bge-vdb never "
                             "runs remote code: use a model transformers implements")
        id2label = config.get("id2label")
        # transformers writes no id2label for its default of 2 labels, and builds 2 without one.
        labels = config.get("num_labels", len(id2label) if isinstance(id2label, dict) else 2)
        if labels != 1:
            raise ModelError(f"{path} is not a cross-encoder reranker: it has {labels} labels "
                             "(config.json num_labels / id2label; none means transformers' "
                             "default of 2); a reranker has exactly 1")
        model_type = str(config.get("model_type", ""))
        if preset is not None and preset.model_type != model_type:
            raise ModelError(f"preset {preset.id} is a {preset.model_type} model but {path}/config.json "
                             f"says {model_type!r}: these are not that model's weights")
        positions = int(config.get("max_position_embeddings") or 512)
        if model_type in _OFFSET_POSITIONS:
            positions -= int(config.get("pad_token_id", 1)) + 1
        tok_config = read_json(path / "tokenizer_config.json")
        tok_max = tok_config.get("model_max_length") if isinstance(tok_config, dict) else None
        if not isinstance(tok_max, int) or tok_max > positions:  # transformers' "no limit" is 1e30
            tok_max = None
        max_length = next(v for v in (self._max_length_arg, preset.max_length if preset else None,
                                      tok_max, min(positions, 512)) if v is not None)
        if max_length > positions:
            raise ConfigError(f"max_length={max_length} exceeds the model's {positions} positions")
        normalize = next(v for v in (self._normalize_arg, preset.normalize if preset else None, False)
                         if v is not None)
        return RerankerLayout(resolved, model_type, int(max_length), bool(normalize), preset)

    # --- loading ----------------------------------------------------------------------------

    def load(self) -> Reranker:
        """Load tokenizer and weights now (otherwise the first call does); thread-safe, once."""
        if self._backend is not None:
            return self
        with self._load_lock:
            if self._backend is None:
                self._load()
        return self

    def _load(self) -> None:
        lay = self.layout
        path = lay.resolved.path
        self._tokenizer = _load_tokenizer(path, lay.max_length)
        if self.backend_name == "torch":
            if weights_file(path) is None:
                found = sorted(p.name for p in path.glob("*.bin"))
                hint = f" (found {found}: bge-vdb loads safetensors only)" if found else ""
                raise ModelError(f"no model.safetensors weights in {path}{hint}")
            from .backends.cross_encoder import TorchCrossEncoder

            self._backend = TorchCrossEncoder(path, device=self.device, threads=self.threads,
                                              precision=self.precision)
        else:
            from .backends.cross_encoder import OnnxCrossEncoder

            self._backend = OnnxCrossEncoder(path, device=self.device, threads=self.threads)
        log.info("loaded reranker %s (%s, max %d tokens, %s scores)", lay.resolved.name,
                 self._backend.describe(), lay.max_length, "sigmoid" if lay.normalize else "raw")

    @property
    def backend(self) -> CrossEncoderBackend:
        """The loaded backend (loads the model on first access)."""
        self.load()
        assert self._backend is not None
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        # A copy (another process, a Ray worker) loads its own model on its first call.
        state = self.__dict__.copy()
        del state["_load_lock"]
        state["_backend"] = state["_tokenizer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load_lock = threading.Lock()

    # --- scoring ----------------------------------------------------------------------------

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One relevance score per (query, passage) pair, float32 of shape (n,), input order.

        Higher is more relevant: the raw logit, or its sigmoid with ``normalize=True``.
        """
        items = check_pairs(pairs)
        if not items:
            self.last_truncated = 0
            return np.zeros(0, dtype=np.float32)
        # Equal pairs are scored once: less work, and they get exactly equal scores (a batched
        # forward pass can differ in the last bits between identical rows), so ties are ties.
        slot = {pair: n for n, pair in enumerate(dict.fromkeys(items))}
        logits = self._logits(list(slot))[[slot[pair] for pair in items]]
        if self.layout.normalize:
            return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        return logits

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """``hits`` reordered by the cross-encoder's score of (query, hit.text), best first.

        Returns new :class:`~bge_vdb.Hit` objects whose ``score`` is the reranker's (raw logit
        or sigmoid, as :attr:`normalize`); at most ``k`` (all when None); equal scores keep
        their input order. A hit without text is an ``InputError`` naming its id and position.
        """
        items = check_hits(query, hits, k)
        if not items:
            return []
        scores = self.score([(query, hit.text or "") for hit in items])
        return order_hits(items, scores, k)

    def _logits(self, items: list[tuple[str, str]]) -> np.ndarray:
        """Tokenize the pairs, sort by length, run token-budget batches, restore input order."""
        backend, lay, tok = self.backend, self.layout, self._tokenizer
        encodings = tok.encode_batch(items)
        queries = list(dict.fromkeys(q for q, _ in items))
        query_tokens = dict(zip(queries, (len(e.ids) for e in tok.encode_batch(queries, add_special_tokens=False)),
                                strict=True))
        most = self._query_tokens()
        cut = [i for i, e in enumerate(encodings)
               if len(e.ids) > lay.max_length or query_tokens[items[i][0]] > most]
        for i in cut:
            encodings[i] = self._truncated_pair(*items[i])
        if cut:
            log.warning("%d of %d pair(s) were truncated to %d tokens (a query keeps at most %d, the "
                        "passage the rest)", len(cut), len(items), lay.max_length, most)
        self.last_truncated = len(cut)
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out = np.empty(len(items), dtype=np.float32)
        for batch in plan_batches([len(encodings[i].ids) for i in order], self.batch_size,
                                  self.batch_tokens):
            rows = [order[j] for j in batch]
            out[rows] = backend.logits(_pad([encodings[i] for i in rows]))
        return out

    def _query_tokens(self) -> int:
        """Most query tokens a pair keeps: 3/4 of ``max_length`` (FlagEmbedding's
        ``query_max_length``), leaving room for at least one passage token."""
        room = self.layout.max_length - self._tokenizer.num_special_tokens_to_add(True)
        return min(self.layout.max_length * 3 // 4, room - 1)

    def _truncated_pair(self, query: str, passage: str) -> Any:
        """A pair cut as FlagEmbedding cuts it: the query to at most 3/4 of ``max_length``
        tokens (even when the pair would fit), then the passage's end to fill what is left."""
        tok = self._tokenizer
        room = self.layout.max_length - tok.num_special_tokens_to_add(True)
        q = tok.encode(query, add_special_tokens=False)
        q.truncate(self._query_tokens())
        p = tok.encode(passage, add_special_tokens=False)
        p.truncate(room - len(q.ids))
        return tok.post_process(q, p, add_special_tokens=True)


def _load_tokenizer(path: Path, max_length: int) -> Any:
    """The model's fast tokenizer, untruncated (pairs are cut by ``_truncated_pair``)."""
    from .embedder import _load_tokenizers

    full, _ = _load_tokenizers(path, max_length)
    if max_length < full.num_special_tokens_to_add(True) + 2:
        raise ConfigError(f"max_length={max_length} leaves no room for a query and a passage "
                          f"beside the {full.num_special_tokens_to_add(True)} special tokens of a pair")
    return full


__all__ = ["RERANKER_PRESETS", "Reranker", "RerankerProtocol", "RerankerSpec", "check_hits", "check_pairs", "order_hits"]
