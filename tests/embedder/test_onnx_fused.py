"""The ONNX backend's fused graph (ONNX Runtime's offline BERT fusions, bge_vdb/backends/onnx.py).

It must give the plain export's vectors (both layouts, padded batches), and fall back to the
plain file, once and for all, when the fusions do not apply, raise, or change the result.
Parity on real weights: test_parity.py (ONNX against torch fp32) runs the fused graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime.transformers.optimizer")
pytest.importorskip("torch")  # the tiny models are exported once

from bge_vdb import Embedder
from bge_vdb.backends import onnx as onnx_backend
from bge_vdb.backends.onnx import OnnxBackend

TEXTS = ["a dog", "the cat sat on the mat " * 6, "hello world, once more", "北京的冬天", "x " * 40, "river"]


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of its own, so the fused file (or its refusal) is built in this test."""
    monkeypatch.setenv("BGE_VDB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("layout", ["tiny_bge", "tiny_mean"])
def test_fused_graph_gives_the_plain_graphs_vectors(layout: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(layout)
    emb = Embedder(path, backend="onnx", batch_size=4).load()
    assert emb.backend.describe() == "onnx/cpu/fp32/fused"
    fused = emb.embed_documents(TEXTS)
    emb._backend = OnnxBackend(path, fused=False)
    assert emb.backend.describe() == "onnx/cpu/fp32"
    np.testing.assert_allclose(fused, emb.embed_documents(TEXTS), atol=1e-5)


def _count_fuse_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = onnx_backend._fuse

    def counted(fp32_file: Path, target: Path, config: dict[str, Any]) -> str | None:
        calls.append(target)
        return real(fp32_file, target, config)

    monkeypatch.setattr(onnx_backend, "_fuse", counted)
    return calls


def test_a_fused_graph_that_changes_the_result_is_refused_once(
        tiny_bge: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The optimizer's output is altered (one LayerNorm scale changed): the probe comparison,
    run for real, must catch it, and the plain file runs; a second load does not retry."""
    from onnx import numpy_helper
    from onnxruntime.transformers import optimizer

    real = optimizer.optimize_model

    def altered(*args: Any, **kwargs: Any) -> Any:
        model = real(*args, **kwargs)
        init = next(i for i in model.model.graph.initializer if np.asarray(numpy_helper.to_array(i)).ndim == 1
                    and "layernorm" in i.name.lower() and "weight" in i.name.lower())
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
        return model

    monkeypatch.setattr(optimizer, "optimize_model", altered)
    calls = _count_fuse_calls(monkeypatch)
    with caplog.at_level(logging.INFO, logger="bge_vdb"):
        backend = OnnxBackend(tiny_bge)
    assert backend.describe() == "onnx/cpu/fp32" and "differ from the plain model" in caplog.text
    assert OnnxBackend(tiny_bge).describe() == "onnx/cpu/fp32"
    assert len(calls) == 1  # the refusal is cached next to where the fused file would be
    assert not list(own_cache.rglob("*.onnx.*.tmp"))


def test_an_optimizer_that_raises_leaves_the_plain_graph(tiny_bge: Path, own_cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxruntime.transformers import optimizer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot fuse this graph")

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    emb = Embedder(tiny_bge, backend="onnx").load()
    assert emb.backend.describe() == "onnx/cpu/fp32"
    assert "cannot fuse" in next(own_cache.rglob("not-fused.txt")).read_text()
    assert emb.embed_documents(["hello world"]).shape == (1, 32)


def test_non_bert_models_are_not_fused(tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fusions are BERT's: another model type keeps the plain file (not even tried)."""
    calls = _count_fuse_calls(monkeypatch)
    for config in ('{"model_type": "xlm-roberta"}', "not json"):
        (tmp_path / "config.json").write_text(config)
        assert onnx_backend.fused_model_for(tmp_path / "model.onnx", tmp_path) is None
    assert not calls and not own_cache.exists()


def test_int8_is_built_from_the_plain_graph(tiny_bge: Path) -> None:
    """int8's recipe rewrites MatMul nodes the fusions would have folded away."""
    import onnx

    emb = Embedder(tiny_bge, backend="onnx", precision="int8").load()
    ops = {n.op_type for n in onnx.load(str(emb.backend.file)).graph.node}
    assert "Attention" not in ops and emb.backend.describe() == "onnx/cpu/int8"
