"""The Embedder facade: BGE (or any sentence-transformers BERT) embeddings as float32 numpy.

Construction is cheap; the first embed (or :meth:`Embedder.load`) loads the weights. Inputs are
tokenized once, sorted by length and cut into batches by a token budget, and the vectors come
back in input order. Truncation is never silent: it is counted and logged once per call.

Empty or whitespace-only texts are refused (``InputError``, a ``ValueError``) by both backends:
an empty passage has no meaning to retrieve, and a silent ``[CLS][SEP]`` vector would match
every other empty record.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, TokenBatch, pick_backend
from .backends.int8 import calibration_batches
from .errors import ConfigError, InputError, ModelError
from .hub import ResolvedModel, check_model_files, read_json, resolve, weights_file, weights_sha256
from .models import PRESETS, ModelSpec, Pooling, get_preset, recognise_preset, warn_no_instruction
from .tokens import token_windows, word_continuation

log = logging.getLogger(__name__)

_POOLINGS = ("cls", "mean")
# Padded tokens per forward pass when batching by budget: long inputs go in small batches,
# short ones in large batches. Larger budgets were measured slower on CPU (32 x 256 tokens
# beat 64 x 256 and 128 x 256 in bf16; README, performance), so 8192 stays.
DEFAULT_TOKEN_BUDGET = 8192
_STREAM_CHUNK = 1024  # texts tokenized and sorted together by iter_embed


@dataclass(frozen=True)
class ModelLayout:
    """What a model directory says, merged with the preset and the caller's arguments."""

    resolved: ResolvedModel
    dim: int
    pooling: Pooling
    normalize: bool
    max_length: int
    query_instruction: str
    max_positions: int
    preset: ModelSpec | None = None  # the preset it is, given or recognised in the directory


def _check_texts(texts: Any, what: str, *, allow_empty: bool = False) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} takes a list of strings, not a single string: wrap it as [text]")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"{what} takes a list of strings, not {type(texts).__name__}") from None
    for i, text in enumerate(items):
        _check_text(text, i, allow_empty=allow_empty)
    return items


def _check_text(text: Any, position: int, *, allow_empty: bool = False) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text at position {position} is {type(text).__name__}, not str")
    if not allow_empty and not text.strip():
        raise InputError(
            f"text at position {position} is empty or whitespace only ({text!r}); "
            "bge-vdb refuses empty texts: drop them or give them content"
        )


class Embedder:
    """BGE embeddings from a preset id, a Hugging Face id or a local model directory.

    Args:
        model: e.g. ``"BAAI/bge-small-en-v1.5"``, any sentence-transformers BERT id, or a
            directory in Hugging Face / sentence-transformers layout.
        backend: ``"torch"``, ``"onnx"`` or ``"auto"`` (torch when installed, else ONNX Runtime).
        device: torch device (``"cpu"``, ``"cuda"``); default CUDA when available.
        batch_size: most texts per forward pass (the token budget may make batches smaller).
        max_length: token limit; default the preset's, else the model's.
        query_instruction: the text put before every query; default the preset's.
        normalize: unit-length vectors; default what the model directory says (BGE: yes).
        pooling: ``"cls"`` or ``"mean"``; default what the model directory says.
        threads: CPU threads for bge-vdb's forward passes. torch: applied while they run and
            restored after (the process-wide setting is never changed); default: torch's
            own setting (the physical cores, or ``OMP_NUM_THREADS``). ONNX: the session's
            threads; default all cores (or ``OMP_NUM_THREADS``).
        precision: ``"auto"`` (torch: bf16 autocast on CPUs with AVX-512 BF16/AMX, else fp32;
            ONNX: fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU) for torch, and the
            opt-in ``"int8"`` for ONNX (built once and cached; accuracy in the README).
        token_budget: most padded tokens per forward pass (``None``: ``batch_size`` only).
        compile: run the torch model through ``torch.compile`` (opt-in: tens of seconds of
            compilation on first use for a modest gain; see the README's performance section).
    """

    #: It has its tokenizer, so ``count_tokens`` and ``split_text`` always work (protocol).
    counts_tokens: bool = True

    def __new__(cls, model: Any = None, **options: Any) -> Any:
        """``Embedder("tei+http://...")`` / ``Embedder("openai+http://.../v1?model=NAME")``
        returns a remote embedder (:mod:`bge_vdb.remote`) with the same interface, so a URL goes
        wherever a model id goes; any other model gives this local Embedder. (As ``Path(...)``
        gives a ``PosixPath``; the remote classes are not subclasses: they have no weights.)"""
        if cls is Embedder and isinstance(model, str):
            from .remote.options import is_remote_url

            if is_remote_url(model):
                from .remote import remote_embedder

                return remote_embedder(model, **options)
        return super().__new__(cls)

    def __init__(self, model: str | os.PathLike[str], *, backend: str = "auto", device: str | None = None,
                 batch_size: int = 32, max_length: int | None = None,
                 query_instruction: str | None = None, normalize: bool | None = None,
                 pooling: str | None = None, threads: int | None = None,
                 precision: str = "auto", token_budget: int | None = DEFAULT_TOKEN_BUDGET,
                 compile: bool = False, preset: str | None = None) -> None:
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty string, not {model!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 3):
            raise ConfigError(f"max_length must be an integer >= 3, not {max_length!r}")
        if pooling is not None and pooling not in _POOLINGS:
            raise ConfigError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
        if precision not in ("auto", "fp32", "bf16", "fp16", "int8"):
            raise ConfigError(
                f"precision must be 'auto', 'fp32', 'bf16', 'fp16' or 'int8', not {precision!r}")
        if token_budget is not None and token_budget < 1:
            raise ConfigError(f"token_budget must be positive or None, not {token_budget!r}")
        self.model = model
        # int8 exists only as an ONNX model, so "auto" means ONNX for it.
        self.backend_name = "onnx" if backend == "auto" and precision == "int8" else pick_backend(backend)
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self.precision = precision
        self.token_budget = token_budget
        self.compile = compile
        if self.backend_name == "onnx" and precision in ("bf16", "fp16"):
            # Not silently ignored: the ONNX model runs fp32 (or the opt-in int8).
            raise ConfigError(f"precision={precision!r} is a torch option; backend='onnx' runs "
                              "'fp32' or 'int8'")
        if self.backend_name == "torch" and precision == "int8":
            raise ConfigError("precision='int8' is an ONNX option: pass backend='onnx'")
        if compile and self.backend_name != "torch":
            raise ConfigError("compile=True needs backend='torch' (ONNX Runtime optimizes its own graph)")
        self._max_length_arg = max_length
        self._instruction_arg = query_instruction
        self._normalize_arg = normalize
        self._pooling_arg: Pooling | None = pooling  # type: ignore[assignment]
        local = Path(model).expanduser()
        self._preset: ModelSpec | None = None if local.exists() else get_preset(model)
        if preset is not None:  # "this directory is that preset": its instruction, dimension check
            self._preset = get_preset(preset)
            if self._preset is None:
                raise ConfigError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        self.query_instruction_given = query_instruction is not None
        if self._preset is None:
            from .hub import check_model_path

            check_model_path(model)  # fail at construction, not at the first embed
        self._layout: ModelLayout | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._backend: Backend | None = None
        self._load_lock = threading.Lock()
        self._tokenizer: Any = None
        self._truncating: Any = None
        self.last_truncated = 0
        self.truncated_total = 0

    def __repr__(self) -> str:
        state = self._backend.describe() if self._backend else f"{self.backend_name}, not loaded"
        return f"Embedder({self.model!r}, {state})"

    # --- what the model is (cheap) ---------------------------------------------------------

    @property
    def dim(self) -> int:
        """Vector dimension; known from the preset without loading the weights."""
        if self._preset is not None and self._layout is None:
            return self._preset.dim
        return self.layout.dim

    @property
    def max_length(self) -> int:
        """Token limit: longer inputs are truncated (and counted)."""
        if self._max_length_arg is not None and self._layout is None:
            return self._max_length_arg
        if self._preset is not None and self._layout is None:
            return self._preset.max_length
        return self.layout.max_length

    @property
    def query_instruction(self) -> str:
        """Text put before every query (empty for models without one)."""
        if self._instruction_arg is not None:
            return self._instruction_arg
        if self._preset is not None:
            return self._preset.query_instruction
        return self.layout.query_instruction

    @property
    def layout(self) -> ModelLayout:
        """The model directory's settings (resolves the model; reads JSON only, no weights)."""
        if self._layout is None:
            self._layout = self._read_layout(resolve(self.model))
        return self._layout

    def _read_layout(self, resolved: ResolvedModel) -> ModelLayout:
        path, preset = resolved.path, self._preset or resolved.preset
        config = read_json(path / "config.json")
        if not isinstance(config, dict):
            raise ModelError(f"{path} has no config.json: not a Hugging Face model directory")
        if preset is None:
            preset, where = recognise_preset(path, config)
            if preset is not None:
                log.info("%s is %s (recognised from %s)", path, preset.id, where)
        hidden = config.get("hidden_size")
        if not isinstance(hidden, int):
            raise ModelError(f"{path}/config.json has no integer hidden_size")
        if preset is not None and preset.dim != hidden:
            raise ModelError(
                f"preset {preset.id} says dimension {preset.dim} but {path}/config.json says "
                f"{hidden}: these are not that model's weights")

        pooling_dir, dir_normalize = "1_Pooling", None
        modules = read_json(path / "modules.json")
        if isinstance(modules, list):
            kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
            dir_normalize = "Normalize" in kinds
            unsupported = sorted(set(kinds) - {"Transformer", "Pooling", "Normalize"})
            if unsupported:
                raise ModelError(f"{path}/modules.json uses modules bge-vdb does not run: {unsupported}")
            pooling_dir = next((m.get("path") or pooling_dir for m, k in zip(modules, kinds, strict=True)
                                if k == "Pooling"), pooling_dir)
        dir_pooling: Pooling | None = None
        pool_cfg = read_json(path / pooling_dir / "config.json")
        if isinstance(pool_cfg, dict):
            modes = [k for k, v in pool_cfg.items() if k.startswith("pooling_mode") and v is True]
            if modes == ["pooling_mode_cls_token"]:
                dir_pooling = "cls"
            elif modes == ["pooling_mode_mean_tokens"]:
                dir_pooling = "mean"
            else:
                raise ModelError(f"{path}/{pooling_dir}/config.json asks for pooling {modes}; "
                                 "bge-vdb supports cls or mean")

        pooling: Pooling = self._pooling_arg or dir_pooling or (preset.pooling if preset else "cls")
        normalize = next(v for v in (self._normalize_arg, dir_normalize,
                                     preset.normalize if preset else None, True) if v is not None)

        max_positions = int(config.get("max_position_embeddings") or 512)
        st_config = read_json(path / "sentence_bert_config.json")
        dir_max = st_config.get("max_seq_length") if isinstance(st_config, dict) else None
        max_length = next(v for v in (self._max_length_arg, preset.max_length if preset else None,
                                      dir_max, min(max_positions, 512)) if v is not None)
        if self._max_length_arg is not None and self._max_length_arg > max_positions:
            raise ConfigError(f"max_length={max_length} exceeds the model's {max_positions} positions")
        max_length = min(max_length, max_positions)

        instruction = self._instruction_arg
        if instruction is None:
            instruction = preset.query_instruction if preset else ""
            st_meta = read_json(path / "config_sentence_transformers.json")
            prompts = st_meta.get("prompts") if isinstance(st_meta, dict) else None
            if not preset and isinstance(prompts, dict) and isinstance(prompts.get("query"), str):
                instruction = prompts["query"]
        return ModelLayout(resolved, hidden, pooling, bool(normalize), int(max_length), instruction,
                           max_positions, preset)

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What determines the vectors, stable across runs and machines for the same weights."""
        if self._fingerprint is None:
            lay = self.layout
            weights = weights_file(lay.resolved.path) or (lay.resolved.path / "onnx" / "model.onnx")
            self._fingerprint = {
                "model": lay.resolved.name,
                "revision": lay.resolved.revision,
                "weights_sha256": weights_sha256(weights) if weights.is_file() else None,
                "pooling": lay.pooling,
                "normalize": lay.normalize,
                "query_instruction": self.query_instruction,
                "preset": lay.preset.id if lay.preset else None,  # not part of the digest
                "dim": lay.dim,
                "max_length": lay.max_length,
            }
        return dict(self._fingerprint)

    # --- loading ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_load_lock"]  # a lock cannot be pickled or copied; each copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load_lock = threading.Lock()

    def check_files(self) -> Embedder:
        """Resolve the model and check the files loading needs, without loading any weights."""
        check_model_files(self.layout.resolved.path, self.backend_name)
        return self

    def load(self) -> Embedder:
        """Load tokenizer and weights now (otherwise the first embed does).

        Thread-safe: when several threads (or LangChain's async methods, which run in an
        executor) make the first call at once, one loads and the others wait for it.
        """
        if self._backend is not None:
            return self
        with self._load_lock:
            if self._backend is None:  # another thread may have loaded it while we waited
                self._load()
        return self

    def _load(self) -> None:
        lay = self.layout
        path = lay.resolved.path
        self._tokenizer, self._truncating = _load_tokenizers(path, lay.max_length)
        if self.backend_name == "torch":
            if weights_file(path) is None:
                found = sorted(p.name for p in path.glob("*.bin"))
                hint = f" (found {found}: bge-vdb loads safetensors only)" if found else ""
                raise ModelError(f"no model.safetensors weights in {path}{hint}")
            from .backends.torch import TorchBackend

            self._backend = TorchBackend(path, device=self.device, threads=self.threads,
                                         precision=self.precision, compile=self.compile,
                                         cls_only=lay.pooling == "cls")
        else:
            from .backends.onnx import OnnxBackend

            self._backend = OnnxBackend(
                path, device=self.device, threads=self.threads,
                precision="int8" if self.precision == "int8" else "fp32",
                calibration=lambda: calibration_batches(lambda texts: _pad(self._truncating.encode_batch(texts))))
        log.info("loaded %s (%s, dim %d, %s pooling, max %d tokens)", lay.resolved.name,
                 self._backend.describe(), lay.dim, lay.pooling, lay.max_length)

    @property
    def backend(self) -> Backend:
        """The loaded backend (loads the model on first access)."""
        self.load()
        assert self._backend is not None
        return self._backend

    # --- tokens ---------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Full token counts, special tokens included, without truncation."""
        items = _check_texts(texts, "count_tokens", allow_empty=True)
        if not items:
            return []
        self.load()
        return [len(e.ids) for e in self._tokenizer.encode_batch(items)]

    def split_text(self, text: str, *, window: int | None = None, overlap: int = 32) -> list[str]:
        """Cut ``text`` into pieces of at most ``window`` tokens (default: what fits the model)
        that overlap by ``overlap`` tokens, cut at token boundaries of the original text."""
        _check_text(text, 0)
        self.load()
        room = self.max_length - self._tokenizer.num_special_tokens_to_add(False)
        window = room if window is None else window
        if not 1 <= window <= room:
            raise ConfigError(f"window must be between 1 and {room} tokens, not {window}")
        if not 0 <= overlap < window:
            raise ConfigError(f"overlap must be >= 0 and smaller than window ({window}), not {overlap}")
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return token_windows(text, enc.offsets, word_continuation(enc.word_ids), window, overlap)

    # --- embedding ------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passages -> float32 array (n, dim), in input order. No instruction is added."""
        items = _check_texts(texts, "embed_documents")
        return self._embed_all(items, "")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries -> float32 array (n, dim); the query instruction is prepended (no extra space)."""
        items = _check_texts(texts, "embed_queries")
        return self._embed_all(items, self._instruction_for_queries())

    def embed_query(self, text: str) -> np.ndarray:
        """One query -> float32 vector (dim,)."""
        _check_text(text, 0)
        return self._embed_all([text], self._instruction_for_queries())[0]

    def _instruction_for_queries(self) -> str:
        instruction = self.query_instruction
        if not instruction and not self.query_instruction_given and self.layout.preset is None:
            warn_no_instruction(self.layout.resolved.name)
        return instruction

    def iter_embed(self, texts: Iterable[str], batch_size: int | None = None) -> Iterator[np.ndarray]:
        """Stream passages: yields float32 arrays for consecutive chunks of the input, in order.

        At most ``max(batch_size * 8, 1024)`` texts are held at a time, so a generator of
        millions of texts runs in bounded memory. The truncation warning comes once, at the end.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("iter_embed takes an iterable of strings, not a single string")
        chunk = max((batch_size or self.batch_size) * 8, _STREAM_CHUNK)
        iterator, position, truncated = iter(texts), 0, 0
        while True:
            items = list(islice(iterator, chunk))
            if not items:
                break
            for i, text in enumerate(items):
                _check_text(text, position + i)
            vectors, n_trunc = self._embed_sorted(items, "", batch_size)
            truncated += n_trunc
            self.last_truncated = truncated
            position += len(items)
            yield vectors
        self._note_truncation(truncated, position)

    def _embed_all(self, items: list[str], prefix: str) -> np.ndarray:
        if not items:
            self.last_truncated = 0
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors, truncated = self._embed_sorted(items, prefix, None)
        self._note_truncation(truncated, len(items))
        return vectors

    def _note_truncation(self, truncated: int, total: int) -> None:
        self.last_truncated = truncated
        if truncated:
            log.warning("%d of %d text(s) exceeded %d tokens and were truncated (use split_text or "
                        "sync's on_long='split' to keep all of them)", truncated, total, self.max_length)

    def _embed_sorted(self, items: list[str], prefix: str,
                      batch_size: int | None) -> tuple[np.ndarray, int]:
        """Tokenize, sort by length, embed batch by batch, restore input order."""
        backend, lay = self.backend, self.layout
        texts = [prefix + t for t in items] if prefix else items
        encodings = self._tokenizer.encode_batch(texts)
        long_ones = [i for i, e in enumerate(encodings) if len(e.ids) > lay.max_length]
        if long_ones:
            for i, enc in zip(long_ones, self._truncating.encode_batch([texts[i] for i in long_ones]),
                              strict=True):
                encodings[i] = enc
        self.truncated_total += len(long_ones)
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out = np.empty((len(items), lay.dim), dtype=np.float32)
        for batch in plan_batches([len(encodings[i].ids) for i in order],
                                  batch_size or self.batch_size, self.token_budget):
            rows = [order[j] for j in batch]
            out[rows] = backend.embed(_pad([encodings[i] for i in rows]), lay.pooling, lay.normalize)
        return out, len(long_ones)


def plan_batches(sorted_lengths: Sequence[int], batch_size: int,
                 token_budget: int | None) -> Iterator[range]:
    """Cut positions of length-sorted (longest first) inputs into batches.

    A batch holds at most ``batch_size`` inputs and, with a budget, at most ``token_budget``
    padded tokens (its first, longest input times its size), but always at least one input.
    """
    start, n = 0, len(sorted_lengths)
    while start < n:
        size = batch_size
        if token_budget is not None:
            size = max(1, min(batch_size, token_budget // max(1, sorted_lengths[start])))
        yield range(start, min(n, start + size))
        start += size


def _pad(encodings: Sequence[Any]) -> TokenBatch:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = 1
        types[row, :n] = enc.type_ids
    return TokenBatch(ids, mask, types)


def _load_tokenizers(path: Path, max_length: int) -> tuple[Any, Any]:
    """The fast tokenizer twice: untruncated (to count) and truncating at ``max_length``.

    A saved tokenizer.json may carry fixed padding/truncation (e.g. 128 tokens): both are
    always reset explicitly.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - tokenizers comes with both extras
        from .errors import MissingExtra

        raise MissingExtra("tokenizers", "onnx", "tokenizing text") from exc
    file = path / "tokenizer.json"
    if not file.is_file():
        raise ModelError(f"{path} has no tokenizer.json (a fast tokenizer is required)")
    try:
        full = Tokenizer.from_file(str(file))
    except Exception as exc:
        raise ModelError(f"cannot read {file}: {exc}") from exc
    full.no_padding()
    full.no_truncation()
    truncating = Tokenizer.from_str(full.to_str())
    truncating.enable_truncation(max_length)
    return full, truncating
