"""Cross-encoder backends for the Reranker: a token batch of (query, passage) pairs in, one
relevance logit per pair out.

A cross-encoder is a sequence-classification model with one label (``num_labels=1``): the
encoder reads query and passage together and a small head turns the first token's state into
one number. The torch backend runs transformers' ``AutoModelForSequenceClassification``; the
ONNX backend runs the same model exported with a ``logits`` output (``export_onnx(head=
"logits")``), cached apart from the encoder exports. Loading, precision, thread and export
machinery is the embedder backends' own (``torch.py``, ``onnx.py``), not a copy of it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingExtra, ModelError
from .base import TokenBatch, default_threads

log = logging.getLogger(__name__)

SEQUENCE_CLASSIFICATION = "AutoModelForSequenceClassification"


class CrossEncoderBackend(ABC):
    """Pairs' tokens in, one float32 logit per pair out."""

    name: str = "?"
    precision: str = "fp32"

    @abstractmethod
    def logits(self, batch: TokenBatch) -> np.ndarray:
        """The model's single logit for each row of ``batch``: float32 of shape (batch,)."""

    def describe(self) -> str:
        """A short human description (backend, device, precision) for logs and benchmarks."""
        return f"{self.name}/{self.precision}"


def _single_logit(out: np.ndarray, rows: int) -> np.ndarray:
    """(batch, 1) -> (batch,); anything else means the model is not a one-label cross-encoder."""
    out = np.asarray(out, dtype=np.float32)
    if out.shape not in ((rows, 1), (rows,)):
        raise ModelError(f"the model returned logits of shape {out.shape} for {rows} pairs; a "
                         "cross-encoder reranker has one label (num_labels=1)")
    return out.reshape(rows)


class TorchCrossEncoder(CrossEncoderBackend):
    """transformers ``AutoModelForSequenceClassification`` (SDPA attention), inference mode."""

    name = "torch"

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 precision: str = "auto") -> None:
        try:
            import torch
            import transformers  # noqa: F401  (imported here so a missing one names the extra)
        except ImportError as exc:
            raise MissingExtra(exc.name or "torch", "torch", "the torch reranker") from exc
        from .torch import load_model, resolve_precision

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={self.device!r} but torch sees no CUDA GPU "
                              f"(torch {torch.__version__}); use device='cpu'")
        self.precision = resolve_precision(precision, self.device)
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, not {threads}")
        self.threads = threads if self.device == "cpu" else None
        try:
            model = load_model(path, attn_implementation="sdpa", auto_class=SEQUENCE_CLASSIFICATION)
        except Exception as exc:  # transformers raises OSError/ValueError/...: one clear message
            raise ModelError(f"cannot load the cross-encoder in {path} with transformers: {exc}") from exc
        self.model: Any = model.eval().to(self.device)
        log.info("torch reranker: %s on %s, %s, %d threads", path, self.device, self.precision,
                 self.threads or torch.get_num_threads())

    def describe(self) -> str:
        return f"torch/{self.device}/{self.precision}"

    def logits(self, batch: TokenBatch) -> np.ndarray:
        from .torch import autocast_for, run_threads

        torch = self._torch
        inputs = {
            "input_ids": torch.from_numpy(batch.input_ids).to(self.device),
            "attention_mask": torch.from_numpy(batch.attention_mask).to(self.device),
            "token_type_ids": torch.from_numpy(batch.token_type_ids).to(self.device),
        }
        with run_threads(self.threads), torch.inference_mode(), autocast_for(self.precision, self.device):
            out = self.model(**inputs).logits
        return _single_logit(out.float().cpu().numpy(), len(batch.input_ids))


class OnnxCrossEncoder(CrossEncoderBackend):
    """ONNX Runtime on CPU, fp32, running the ``logits`` export of the model."""

    name = "onnx"

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 precision: str = "fp32") -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingExtra("onnxruntime", "onnx", "the ONNX reranker") from exc
        from .onnx import onnx_model_for

        if device not in (None, "cpu"):
            raise ConfigError(f"the ONNX backend here runs on CPU only, not device={device!r}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, not {threads}")
        if precision != "fp32":
            raise ConfigError(f"the ONNX reranker runs 'fp32', not {precision!r}")
        self.precision = precision
        self.file = onnx_model_for(path, head="logits")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        try:
            self.session: Any = ort.InferenceSession(str(self.file), options,
                                                     providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load {self.file}: {exc}") from exc
        self._inputs = {i.name for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if "logits" not in outputs:  # e.g. a directory's own onnx/model.onnx of the bare encoder
            raise ModelError(f"{self.file} has outputs {outputs}, not the 'logits' of a "
                             "sequence-classification (cross-encoder) export")
        log.info("onnx reranker: %s, %d threads", self.file, options.intra_op_num_threads)

    def logits(self, batch: TokenBatch) -> np.ndarray:
        feed = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        (out,) = self.session.run(["logits"], {k: v for k, v in feed.items() if k in self._inputs})
        return _single_logit(out, len(batch.input_ids))
