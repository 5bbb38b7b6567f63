"""Fixtures of the hardening tests: tiny random BERT directories laid out as downloads are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_384(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT of bge-small's width (384) in sentence-transformers layout (CLS pooling,
    Normalize), with nothing in it saying which model it is."""
    from tests.embedder.conftest import _build_tiny

    return _build_tiny(tmp_path_factory.mktemp("tiny") / "model", hidden=384)


@pytest.fixture
def model_copy(tiny_384: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh copy of ``tiny_384`` whose config.json / README.md a test may edit."""

    def make(name: str = "model", *, name_or_path: str | None = None, card: str | None = None) -> Path:
        root = tmp_path / name
        shutil.copytree(tiny_384, root)
        if name_or_path is not None:
            config = json.loads((root / "config.json").read_text())
            config["_name_or_path"] = name_or_path
            (root / "config.json").write_text(json.dumps(config))
        if card is not None:
            (root / "README.md").write_text(card, encoding="utf-8")
        return root

    return make
