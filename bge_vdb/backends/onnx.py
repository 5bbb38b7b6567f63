"""ONNX Runtime backend: no torch import at run time.

It runs the model directory's own ``onnx/model.onnx`` when there is one, otherwise a model
exported once (with torch) into bge-vdb's cache: ``$BGE_VDB_CACHE/onnx/<weights hash>/``
(default ``~/.cache/bge-vdb``). Later runs find the cached file and never import torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingExtra, ModelError
from ..hub import cache_dir, weights_file, weights_sha256
from .base import Backend, TokenBatch, default_threads, onnx_feed

log = logging.getLogger(__name__)

# Bump when the export changes (inputs, outputs, opset) so old cached files are not reused.
EXPORT_VERSION = "1"
# Bump when the fusion step or its check changes.
FUSED_VERSION = "1"


def onnx_model_for(path: Path, *, export: bool = True, head: str = "last_hidden_state") -> Path:
    """The ONNX file for a model directory: its own, a cached export, or a fresh export.

    ``head="logits"`` is the sequence-classification export a reranker runs; it is cached apart
    from the encoder's (the same weights file can be exported both ways).
    """
    shipped = path / "onnx" / "model.onnx"
    if shipped.is_file():
        return shipped
    weights = weights_file(path)
    if weights is None:
        raise ModelError(f"{path} has neither onnx/model.onnx nor model.safetensors to export from")
    suffix = "" if head == "last_hidden_state" else f"-{head}"
    target = cache_dir() / "onnx" / f"{weights_sha256(weights)[:32]}-v{EXPORT_VERSION}{suffix}" / "model.onnx"
    if target.is_file():
        return target
    if not export:
        raise ModelError(f"no ONNX model for {path}; run: bge-vdb export-onnx {path}")
    from .torch import export_onnx

    log.warning("exporting %s to ONNX once (needs torch); cached at %s", path, target)
    return export_onnx(path, target, head=head)


def fused_model_for(fp32_file: Path, model_dir: Path) -> Path | None:
    """The fp32 ONNX file with ONNX Runtime's BERT fusions applied, cached; None when they do
    not apply.

    ONNX Runtime's session-time optimizer leaves a transformers BERT export mostly unfused
    (attention stays MatMul/Softmax/Transpose chains: the exporter's mask subgraph hides the
    pattern). Its offline BERT optimizer (``onnxruntime.transformers.optimizer``) turns every
    layer's attention into one ``Attention`` kernel (packed QKV weights, the mask as lengths),
    and the residual adds and LayerNorms into ``SkipLayerNormalization``. It is used only when
    every layer's attention was fused and the fused model gives the plain one's hidden states
    on a padded probe batch; otherwise the plain file runs (the refusal is cached too).
    """
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if config.get("model_type") != "bert":  # the fusions are BERT's
        log.info("ONNX Runtime's BERT fusions not used for %s: model_type %r", fp32_file, config.get("model_type"))
        return None
    target_dir = cache_dir() / "onnx-fused" / f"{weights_sha256(fp32_file)[:32]}-v{FUSED_VERSION}"
    target, refused = target_dir / "model.onnx", target_dir / "not-fused.txt"
    if target.is_file():
        return target
    if refused.is_file():
        return None
    try:
        why = _fuse(fp32_file, target, config)
    except Exception as exc:  # an optimizer that cannot read this graph: the plain file runs
        why = f"{type(exc).__name__}: {exc}"
    if why is None:
        return target
    log.info("ONNX Runtime's BERT fusions not used for %s (%s): the plain ONNX model runs", fp32_file, why)
    with contextlib.suppress(OSError):
        target_dir.mkdir(parents=True, exist_ok=True)
        refused.write_text(why + "\n", encoding="utf-8")
    return None


def _fuse(fp32_file: Path, target: Path, config: dict[str, Any]) -> str | None:
    """Write the fused model to ``target``; the reason when it is not usable, else None."""
    import onnxruntime as ort
    from onnxruntime.transformers import optimizer

    layers = int(config["num_hidden_layers"])
    model = optimizer.optimize_model(str(fp32_file), model_type="bert", opt_level=0,
                                     num_heads=int(config["num_attention_heads"]),
                                     hidden_size=int(config["hidden_size"]))
    fused = model.get_fused_operator_statistics().get("Attention", 0)
    if fused != layers:
        return f"{fused} of {layers} attention blocks fused"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    model.save_model_to_file(str(tmp))
    try:
        # Right-padded like every batch the Embedder makes (the fused kernel reads the mask as
        # lengths); compared on real positions, where pooling reads.
        mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=np.int64)
        ids = np.random.default_rng(0).integers(1, int(config["vocab_size"]), mask.shape) * mask
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        outputs = []
        for file in (fp32_file, tmp):
            session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            outputs.append(session.run(None, {k: v for k, v in feed.items() if k in names})[0] * mask[..., None])
        if outputs[0].shape != outputs[1].shape or not np.allclose(outputs[0], outputs[1], atol=1e-4, rtol=1e-4):
            return "its hidden states differ from the plain model's"
        tmp.replace(target)  # atomic: a concurrent reader never sees half a file
    finally:
        tmp.unlink(missing_ok=True)
    return None


def int8_model_for(fp32_file: Path, calibration: Callable[[], list[TokenBatch]]) -> Path:
    """The cached INT8 variant of an fp32 ONNX file, built on first use (see ``int8.py``)."""
    from .int8 import INT8_VERSION, quantize_int8

    target = cache_dir() / "onnx-int8" / f"{weights_sha256(fp32_file)[:32]}-v{INT8_VERSION}" / "model.onnx"
    if target.is_file():
        return target
    log.warning("building the INT8 model for %s once (SmoothQuant + dynamic int8); cached at %s",
                fp32_file, target)
    return quantize_int8(fp32_file, target, calibration())


def check_cpu_options(device: str | None, threads: int | None, what: str) -> None:
    """Refuse, before anything loads, what ONNX Runtime cannot do here (``what`` names the user
    of onnxruntime in the install hint when it is missing)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("onnxruntime", "onnx", what) from exc
    if device not in (None, "cpu"):
        raise ConfigError(f"the ONNX backend here runs on CPU only, not device={device!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, not {threads}")


def cpu_session(file: Path, threads: int | None) -> Any:
    """An ONNX Runtime session on the CPU, all graph optimisations, ``threads`` or all cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    try:
        return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load {file}: {exc}") from exc


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 precision: str = "fp32", calibration: Callable[[], list[TokenBatch]] | None = None,
                 fused: bool = True) -> None:
        # fused=False runs the plain export (benchmarks compare the two).
        check_cpu_options(device, threads, "the ONNX backend")
        if precision not in ("fp32", "int8"):
            raise ConfigError(f"the ONNX backend runs 'fp32' or 'int8', not {precision!r}")
        if precision == "int8" and calibration is None:
            raise ConfigError("precision='int8' needs calibration batches (the Embedder passes them)")
        self.precision = precision
        self.file = onnx_model_for(path)
        self.fused = False
        if precision == "int8":  # built from the plain fp32 graph (its recipe reads MatMul nodes)
            assert calibration is not None
            self.file = int8_model_for(self.file, calibration)
        elif fused:
            fused_file = fused_model_for(self.file, path)
            self.file, self.fused = fused_file or self.file, fused_file is not None
        self.session: Any = cpu_session(self.file, threads)
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._output = self.session.get_outputs()[0].name
        log.info("onnx backend: %s, %d threads", self.file, threads or default_threads())

    def describe(self) -> str:
        return f"onnx/cpu/{self.precision}" + ("/fused" if self.fused else "")

    def hidden_states(self, batch: TokenBatch) -> np.ndarray:
        (out,) = self.session.run([self._output], onnx_feed(batch, self._inputs))
        return np.asarray(out, dtype=np.float32)
