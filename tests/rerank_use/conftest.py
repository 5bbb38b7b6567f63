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
    # One thread: a tiny model's forward is mostly thread start-up; with every core's threads it
    # took 100 ms a call on a loaded 2-core machine, with one 9 ms (the scores are the same).
    return Reranker(str(cross_encoder_dir), backend="torch", precision="fp32", threads=1).load()
