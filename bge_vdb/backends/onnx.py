"""ONNX Runtime backend: no torch import at run time.

It runs the model directory's own ``onnx/model.onnx`` when there is one, otherwise a model
exported once (with torch) into bge-vdb's cache: ``$BGE_VDB_CACHE/onnx/<weights hash>/``
(default ``~/.cache/bge-vdb``). Later runs find the cached file and never import torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingExtra, ModelError
from ..hub import cache_dir, weights_file, weights_sha256
from .base import Backend, TokenBatch, default_threads

log = logging.getLogger(__name__)

# Bump when the export changes (inputs, outputs, opset) so old cached files are not reused.
EXPORT_VERSION = "1"


def onnx_model_for(path: Path, *, export: bool = True) -> Path:
    """The ONNX file for a model directory: its own, a cached export, or a fresh export."""
    shipped = path / "onnx" / "model.onnx"
    if shipped.is_file():
        return shipped
    weights = weights_file(path)
    if weights is None:
        raise ModelError(f"{path} has neither onnx/model.onnx nor model.safetensors to export from")
    target = cache_dir() / "onnx" / f"{weights_sha256(weights)[:32]}-v{EXPORT_VERSION}" / "model.onnx"
    if target.is_file():
        return target
    if not export:
        raise ModelError(f"no ONNX model for {path}; run: bge-vdb export-onnx {path}")
    from .torch import export_onnx

    log.warning("exporting %s to ONNX once (needs torch); cached at %s", path, target)
    return export_onnx(path, target)


def int8_model_for(fp32_file: Path, calibration: Callable[[], list[TokenBatch]]) -> Path:
    """The cached INT8 variant of an fp32 ONNX file, built on first use (see ``int8.py``)."""
    from .int8 import INT8_VERSION, quantize_int8

    target = cache_dir() / "onnx-int8" / f"{weights_sha256(fp32_file)[:32]}-v{INT8_VERSION}" / "model.onnx"
    if target.is_file():
        return target
    log.warning("building the INT8 model for %s once (SmoothQuant + dynamic int8); cached at %s",
                fp32_file, target)
    return quantize_int8(fp32_file, target, calibration())


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 precision: str = "fp32", calibration: Callable[[], list[TokenBatch]] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingExtra("onnxruntime", "onnx", "the ONNX backend") from exc
        if device not in (None, "cpu"):
            raise ConfigError(f"the ONNX backend here runs on CPU only, not device={device!r}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, not {threads}")
        if precision not in ("fp32", "int8"):
            raise ConfigError(f"the ONNX backend runs 'fp32' or 'int8', not {precision!r}")
        if precision == "int8" and calibration is None:
            raise ConfigError("precision='int8' needs calibration batches (the Embedder passes them)")
        self.precision = precision
        self.file = onnx_model_for(path)
        if precision == "int8":
            assert calibration is not None
            self.file = int8_model_for(self.file, calibration)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        try:
            self.session: Any = ort.InferenceSession(str(self.file), options,
                                                     providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load {self.file}: {exc}") from exc
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._output = self.session.get_outputs()[0].name
        log.info("onnx backend: %s, %d threads", self.file, options.intra_op_num_threads)

    def describe(self) -> str:
        return f"onnx/cpu/{self.precision}"

    def hidden_states(self, batch: TokenBatch) -> np.ndarray:
        feed = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        (out,) = self.session.run([self._output], {k: v for k, v in feed.items() if k in self._inputs})
        return np.asarray(out, dtype=np.float32)
