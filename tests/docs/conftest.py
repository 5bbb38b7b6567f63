"""The world the documentation's code blocks run in: offline, a fresh directory per page, and
``BAAI/bge-small-en-v1.5`` served from a fake Hugging Face cache by a tiny random BERT of the
same width (384), so every block that names the default model runs without its weights.
Scores printed by the blocks are therefore meaningless here; shapes, ids and counts are not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.embedder.conftest import _build_tiny, fake_hf_cache
from tests.support.cross_encoders import build_cross_encoder

#: What ``docs.jsonl`` holds in every page's directory (the pages' examples read it).
DOCS_JSONL = [
    {"id": "moon", "text": "The Moon orbits the Earth and causes the tides.", "source": "wiki"},
    {"id": "sun", "text": "The Sun is the star at the centre of the solar system.", "source": "wiki"},
    {"id": "paris", "text": "Paris is the capital of France.", "source": "wiki", "year": 2024},
    {"id": "notes", "text": "A note that is not from the wiki.", "source": "notes"},
]


@pytest.fixture(scope="session")
def docs_world_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the fake model cache once for all documentation blocks."""
    root = tmp_path_factory.mktemp("docs_world")
    model = _build_tiny(root / "tiny384", hidden=384, layout="bge", seed=3, max_positions=512)
    fake_hf_cache(root / "hf_cache", "BAAI/bge-small-en-v1.5", model)
    # docs/rerank.md's blocks name BAAI/bge-reranker-base: a tiny XLM-RoBERTa cross-encoder (its
    # architecture) stands in for it, so they run.
    reranker = build_cross_encoder(root / "tiny-reranker", layout="xlm-roberta", max_positions=512)
    fake_hf_cache(root / "hf_cache", "BAAI/bge-reranker-base", reranker)
    return root


@pytest.fixture
def docs_world(docs_world_files: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment of one block, undone after it: a session-wide change would hand the fake
    model cache to every later test of this worker (one of them proves a model that cannot be
    had is refused)."""
    import huggingface_hub.constants as hf

    root = docs_world_files
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(root / "hf_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BGE_VDB_CACHE", str(root / "bge_vdb_cache"))
    return root
