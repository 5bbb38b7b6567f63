"""Parity on real weights (all-MiniLM-L6-v2): bge-vdb vs sentence-transformers, torch vs ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bge_vdb import Embedder

TEXTS = [
    "A man is eating food.",
    "BGE embeddings go into a vector database.",
    "Retrieval with dense vectors needs the same model for queries and passages.",
    "short",
    "Mixed text: 北京是中国的首都 and Paris is the capital of France.",
    "Emoji are tokens too 🙂🚀 (mostly unknown ones).",
    "The quick brown fox jumps over the lazy dog. " * 60,  # > 256 tokens: truncated by both
]


def _st_vectors(path: Path) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(path), device="cpu")
    return np.asarray(model.encode(TEXTS, batch_size=3, normalize_embeddings=True))


@pytest.mark.parametrize("layout", ["own_mean", "as_bge_cls"])
def test_torch_matches_sentence_transformers(layout: str, minilm_dir: Path, minilm_as_bge: Path) -> None:
    path = minilm_dir if layout == "own_mean" else minilm_as_bge
    emb = Embedder(str(path), backend="torch", precision="fp32", batch_size=3)
    assert emb.layout.pooling == ("mean" if layout == "own_mean" else "cls")
    ours = emb.embed_documents(TEXTS)
    ref = _st_vectors(path)
    diff = float(np.abs(ours - ref).max())
    print(f"\nmax abs diff vs sentence-transformers ({layout}, torch fp32): {diff:.3g}")
    assert diff <= 1e-5
    assert emb.last_truncated == 1


@pytest.mark.parametrize("layout", ["own_mean", "as_bge_cls"])
def test_onnx_matches_torch(layout: str, minilm_dir: Path, minilm_as_bge: Path) -> None:
    path = minilm_dir if layout == "own_mean" else minilm_as_bge
    torch_vecs = Embedder(str(path), backend="torch", precision="fp32", batch_size=4).embed_documents(TEXTS)
    onnx_vecs = Embedder(str(path), backend="onnx", batch_size=4).embed_documents(TEXTS)
    diff = float(np.abs(torch_vecs - onnx_vecs).max())
    print(f"\nmax abs diff torch vs onnx ({layout}): {diff:.3g}")
    assert diff <= 1e-4


def test_preset_id_finds_packaged_weights(minilm_dir: Path) -> None:
    emb = Embedder("sentence-transformers/all-MiniLM-L6-v2", backend="torch", precision="fp32")
    assert emb.layout.resolved.path == minilm_dir.resolve()
    assert emb.fingerprint["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert emb.max_length == 256 and emb.dim == 384
    local = Embedder(str(minilm_dir), backend="torch", precision="fp32")
    # Same weights from another path: same weights hash, so fingerprint digests agree.
    assert emb.fingerprint["weights_sha256"] == local.fingerprint["weights_sha256"]
    np.testing.assert_allclose(emb.embed_documents(TEXTS[:3]), local.embed_documents(TEXTS[:3]), atol=1e-6)
