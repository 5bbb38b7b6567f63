"""The reranker of these tests: a real :class:`bge_vdb.Reranker` on a tiny random BERT
cross-encoder (tests/support/cross_encoders.py), fp32 torch, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bge_vdb import Reranker
from tests.support.cross_encoders import build_cross_encoder


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("rerank_use") / "ce", layout="bert", seed=7)


@pytest.fixture(scope="session")
def reranker(cross_encoder_dir: Path) -> Reranker:
    return Reranker(str(cross_encoder_dir), backend="torch", precision="fp32").load()
