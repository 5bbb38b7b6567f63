"""Fixtures for the reranker tests: tiny random cross-encoders in the BERT and XLM-RoBERTa
layouts (tests/support/cross_encoders.py), built once per session, and seeded pair sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.cross_encoders import WORDS, build_cross_encoder

LAYOUTS = ("bert", "xlm-roberta")
CHINESE_TEXTS = ["北京是中国的首都", "熊猫吃竹子", "向量数据库检索相关文章"]


@pytest.fixture(scope="session")
def bert_ce(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("ce") / "bert", layout="bert", seed=0)


@pytest.fixture(scope="session")
def xlmr_ce(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("ce") / "xlmr", layout="xlm-roberta", seed=1)


@pytest.fixture(params=LAYOUTS)
def cross_encoder(request: pytest.FixtureRequest, bert_ce: Path, xlmr_ce: Path) -> Path:
    """Each layout in turn."""
    return bert_ce if request.param == "bert" else xlmr_ce


def seeded_pairs(n: int, seed: int = 0, *, longest: int = 40) -> list[tuple[str, str]]:
    """``n`` (query, passage) pairs of varied length (1..``longest`` words), English and Chinese."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        query = " ".join(rng.choice(WORDS, int(rng.integers(1, 8))))
        passage = " ".join(rng.choice(WORDS, int(rng.integers(1, longest))))
        if rng.random() < 0.2:
            passage += " " + str(rng.choice(CHINESE_TEXTS))
        pairs.append((query, passage))
    return pairs


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny embedding model (not a reranker), for servers that serve the wrong kind of model."""
    from tests.embedder.conftest import _build_tiny

    return _build_tiny(tmp_path_factory.mktemp("embedder") / "bge", layout="bge")
