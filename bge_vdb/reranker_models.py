"""The reranker catalogue: BAAI's cross-encoders as data, so their settings are known before
any weights load (the embedder presets are in :mod:`bge_vdb.models`).

What FlagEmbedding does, which these presets follow: the score is the model's single logit,
raw by default; ``normalize=True`` maps it through a sigmoid to (0, 1). Query and passage are
encoded together as one pair of at most ``max_length`` tokens, cut as FlagEmbedding cuts it:
the query keeps at most 3/4 of ``max_length`` tokens, the passage is cut to fill the rest. bge-reranker-base and -large are XLM-RoBERTa models of 512 positions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RerankerSpec:
    """What we know about a cross-encoder reranker before loading it.

    Attributes:
        id: Hugging Face id.
        max_length: tokens per (query, passage) pair; longer pairs are truncated (counted).
        normalize: sigmoid the logit by default (FlagEmbedding: no, raw logits).
        model_type: the transformers architecture family (``config.json`` ``model_type``);
            a loaded config that disagrees is an error.
        languages: ISO codes the model is made for.
    """

    id: str
    max_length: int
    normalize: bool
    model_type: str
    languages: tuple[str, ...]


RERANKER_PRESETS: dict[str, RerankerSpec] = {
    spec.id: spec
    for spec in (
        RerankerSpec("BAAI/bge-reranker-base", 512, False, "xlm-roberta", ("en", "zh")),
        RerankerSpec("BAAI/bge-reranker-large", 512, False, "xlm-roberta", ("en", "zh")),
        # 8192 positions (it is fine-tuned from bge-m3), but BAAI fine-tuned it on 1024-token
        # pairs and recommends max_length=1024 (model card discussion #9); FlagEmbedding's
        # generic default would be 512. Longer pairs: pass max_length= (up to 8192).
        RerankerSpec("BAAI/bge-reranker-v2-m3", 1024, False, "xlm-roberta", ("multilingual",)),
    )
}

DEFAULT_RERANKER = "BAAI/bge-reranker-base"


def get_reranker_preset(model: str) -> RerankerSpec | None:
    """The preset for a Hugging Face id (case-insensitive), or None."""
    lowered = model.lower()
    return next((spec for key, spec in RERANKER_PRESETS.items() if key.lower() == lowered), None)
