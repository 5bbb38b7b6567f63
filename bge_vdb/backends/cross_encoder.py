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

from ..errors import ConfigError, ModelError
from .base import TokenBatch, default_threads, onnx_feed

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
        from .torch import load_model, torch_runtime

        torch, self.device, self.precision, self.threads = torch_runtime(
            device, threads, precision, "the torch reranker")
        self._torch = torch
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
        from .onnx import check_cpu_options, cpu_session, onnx_model_for

        check_cpu_options(device, threads, "the ONNX reranker")
        if precision != "fp32":
            raise ConfigError(f"the ONNX reranker runs 'fp32', not {precision!r}")
        self.precision = precision
        self.file = onnx_model_for(path, head="logits")
        self.session: Any = cpu_session(self.file, threads)
        self._inputs = {i.name for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if "logits" not in outputs:  # e.g. a directory's own onnx/model.onnx of the bare encoder
            raise ModelError(f"{self.file} has outputs {outputs}, not the 'logits' of a "
                             "sequence-classification (cross-encoder) export")
        log.info("onnx reranker: %s, %d threads", self.file, threads or default_threads())

    def logits(self, batch: TokenBatch) -> np.ndarray:
        (out,) = self.session.run(["logits"], onnx_feed(batch, self._inputs))
        return _single_logit(out, len(batch.input_ids))
