"""The opt-in ONNX INT8 model: what it quantizes, that it is built once, and its refusals.
Its accuracy on real weights is guarded in test_precision.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import Embedder
from bge_vdb.backends.int8 import CALIBRATION_TEXTS, quantize_int8
from bge_vdb.backends.onnx import onnx_model_for
from bge_vdb.errors import ConfigError, ModelError

onnx = pytest.importorskip("onnx")


def _ops(file: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(file)).graph.node]


def test_int8_quantizes_the_first_ffn_matmul_of_all_but_the_last_layer(tiny_bge: Path) -> None:
    emb = Embedder(tiny_bge, backend="onnx", precision="int8").load()
    assert emb.backend.describe() == "onnx/cpu/int8"
    int8_ops, fp32_ops = _ops(emb.backend.file), _ops(onnx_model_for(tiny_bge))
    # tiny_bge has 2 layers: only layer 0's intermediate dense is int8, behind one smoothing Mul.
    assert int8_ops.count("MatMulInteger") == 1 and "MatMulInteger" not in fp32_ops
    smooth = [n for n in onnx.load(str(emb.backend.file)).graph.node if n.name.endswith("/smooth")]
    assert [(n.op_type, "layer.0/intermediate" in n.name) for n in smooth] == [("Mul", True)]
    vectors = emb.embed_documents(["the dog sat on the mat", "北京的冬天"])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    fp32 = Embedder(tiny_bge, backend="onnx").embed_documents(["the dog sat on the mat", "北京的冬天"])
    assert not np.array_equal(vectors, fp32)  # really a different model ...
    assert (vectors * fp32).sum(axis=1).min() > 0.99  # ... computing the same thing


def test_int8_model_is_built_once_and_cached(tiny_bge: Path, caplog: pytest.LogCaptureFixture) -> None:
    Embedder(tiny_bge, backend="onnx", precision="int8").load()  # built here or by another test
    with caplog.at_level(logging.WARNING, logger="bge_vdb"):
        emb = Embedder(tiny_bge, backend="onnx", precision="int8").load()
    assert "building the INT8 model" not in caplog.text
    assert emb.backend.file.parent.parent.name == "onnx-int8"
    assert [f.name for f in emb.backend.file.parent.iterdir()] == ["model.onnx"]  # no scratch left


def test_smoothing_leaves_the_float_product_unchanged(tiny_bge: Path, tmp_path: Path) -> None:
    """Before rounding to int8, X/s @ (s W) == X @ W: checked by quantizing nothing else and
    comparing the smoothed fp32 graph's output (kept by monkeypatching the quantizer away)."""
    import onnxruntime.quantization as q

    emb = Embedder(tiny_bge, backend="onnx").load()
    kept: dict[str, Path] = {}

    def keep_smoothed(src: str, dst: str, **_: object) -> None:
        Path(dst).write_bytes(Path(src).read_bytes())
        kept["file"] = Path(dst)

    monkey = pytest.MonkeyPatch()
    monkey.setattr(q, "quantize_dynamic", keep_smoothed)
    try:
        from bge_vdb.embedder import _pad

        batches = [_pad(emb._tokenizer.encode_batch(list(CALIBRATION_TEXTS[:4])))]
        out = quantize_int8(onnx_model_for(tiny_bge), tmp_path / "smoothed.onnx", batches)
    finally:
        monkey.undo()
    assert "Mul" in _ops(out) and kept
    import onnxruntime as ort

    batch = batches[0]
    feed = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids}
    smoothed = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    original = ort.InferenceSession(str(onnx_model_for(tiny_bge)), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(smoothed, original, atol=1e-4)


def test_int8_refusals(tiny_bge: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ONNX option"):
        Embedder(tiny_bge, backend="torch", precision="int8")
    from bge_vdb.backends.onnx import OnnxBackend

    with pytest.raises(ConfigError, match="calibration"):
        OnnxBackend(tiny_bge, precision="int8")
    with pytest.raises(ConfigError, match="'fp32' or 'int8'"):
        OnnxBackend(tiny_bge, precision="bf16")
    # A graph without BERT feed-forward nodes is refused by name, not quantized blindly.
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(ModelError, match="intermediate/dense"):
        quantize_int8(tmp_path / "relu.onnx", tmp_path / "out.onnx", [])
