"""Inference backends: PyTorch (``torch.py``) and ONNX Runtime (``onnx.py``), imported lazily."""

from __future__ import annotations

import importlib.util

from .base import Backend, TokenBatch, pool

__all__ = ["Backend", "TokenBatch", "pick_backend", "pool"]


def pick_backend(choice: str) -> str:
    """Resolve ``"auto"``: torch (with transformers) when installed, else ONNX Runtime."""
    if choice in ("torch", "onnx"):
        return choice
    if choice != "auto":
        from ..errors import ConfigError

        raise ConfigError(f"backend must be 'auto', 'torch' or 'onnx', not {choice!r}")
    have_torch = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    return "torch" if have_torch else "onnx"
