"""The one small interface both backends implement, plus the code they share.

A backend turns a padded batch of token ids into the transformer's last hidden states; pooling
(CLS or mean) and L2 normalization happen here, once, in numpy, for every backend.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..models import Pooling


@dataclass(frozen=True)
class TokenBatch:
    """A right-padded batch: int64 arrays of shape (batch, seq_len)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    @property
    def tokens(self) -> int:
        """Padded size (what the model computes on)."""
        return int(self.input_ids.size)


class Backend(ABC):
    """Tokens in, pooled vectors out."""

    name: str = "?"

    @abstractmethod
    def hidden_states(self, batch: TokenBatch) -> np.ndarray:
        """The last hidden states, float32 of shape (batch, seq_len, hidden).

        A backend built for CLS pooling may return position 0 only: (batch, 1, hidden).
        """

    def embed(self, batch: TokenBatch, pooling: Pooling, normalize: bool) -> np.ndarray:
        return pool(self.hidden_states(batch), batch.attention_mask, pooling, normalize)

    def describe(self) -> str:
        """A short human description (backend, device, precision) for logs and benchmarks."""
        return self.name


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: Pooling, normalize: bool) -> np.ndarray:
    """CLS or masked-mean pooling, then optional L2 normalization (as sentence-transformers does)."""
    hidden = np.asarray(hidden, dtype=np.float32)
    if pooling == "cls":
        out = hidden[:, 0, :].copy()
    elif pooling == "mean":
        weights = mask.astype(np.float32)[:, :, None]
        summed = (hidden * weights).sum(axis=1)
        out = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    else:  # pragma: no cover - validated by the Embedder
        raise ValueError(f"unknown pooling {pooling!r}")
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
    return out.astype(np.float32, copy=False)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else every core this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)))


def onnx_feed(batch: TokenBatch, inputs: set[str]) -> dict[str, np.ndarray]:
    """The batch's arrays an ONNX graph with ``inputs`` takes (an export may lack token_type_ids)."""
    arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
              "token_type_ids": batch.token_type_ids}
    return {k: v for k, v in arrays.items() if k in inputs}
