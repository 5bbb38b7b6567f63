"""PyTorch backend: transformers ``AutoModel`` in inference mode with SDPA attention.

Weights load from safetensors only and ``trust_remote_code`` stays off. On CPUs with native
bf16 matmuls (AVX-512 BF16 / AMX) ``precision="auto"`` runs under bf16 autocast; see
``cpu_has_bf16`` and the README's performance section for the accuracy this keeps.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingExtra, ModelError
from .base import Backend, TokenBatch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU flags list native bf16 matmul support (avx512_bf16 or amx_bf16)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(precision: str, device: str, *, cpuinfo: str | None = None) -> str:
    """The precision to run: "auto" becomes bf16 on capable CPUs / GPUs, fp32 otherwise."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision != "auto":
        if precision == "fp16" and device.startswith("cpu"):
            raise ConfigError("precision='fp16' is for GPUs; on CPU use 'bf16' or 'fp32'")
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.startswith("cpu") and cpu_has_bf16(cpuinfo) else "fp32"


def autocast_for(precision: str, device: str) -> contextlib.AbstractContextManager[Any]:
    """The mixed-precision context a resolved ``precision`` runs in (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def run_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the duration, then restored.

    The setting is process-wide, so the set-run-restore is done under one lock: two threads
    embedding with an explicit ``threads`` at once take turns (they would compete for the
    same cores anyway) and neither can restore the other's value. ``None`` changes nothing.
    """
    if threads is None:
        yield
        return
    import torch

    with _THREADS_LOCK:
        before = torch.get_num_threads()
        if before != threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if before != threads:
                torch.set_num_threads(before)


def torch_runtime(device: str | None, threads: int | None, precision: str,
                  what: str) -> tuple[Any, str, str, int | None]:
    """``(torch, device, precision, threads)`` for a torch model, checked before it loads.

    ``what`` names the user of torch in the install hint when torch or transformers is missing.
    """
    try:
        import torch
        import transformers  # noqa: F401  (imported here so a missing one names the extra)
    except ImportError as exc:
        raise MissingExtra(exc.name or "torch", "torch", what) from exc
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch sees no CUDA GPU "
                          f"(torch {torch.__version__}); use device='cpu'")
    precision = resolve_precision(precision, device)
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, not {threads}")
    # torch's thread count is one process-wide setting: bge-vdb never changes it for the
    # process. threads=N applies to bge-vdb's own forward passes only (see run_threads);
    # without it they run with the caller's setting (torch's default: the physical cores,
    # or OMP_NUM_THREADS).
    return torch, device, precision, threads if device == "cpu" else None


def load_model(path: Path, *, attn_implementation: str, auto_class: str = "AutoModel") -> Any:
    """transformers ``AutoModel`` (or another ``auto_class``, e.g. the reranker's
    ``AutoModelForSequenceClassification``) from safetensors, no remote code, no progress bar.

    transformers 5 draws a "Loading weights" bar on stderr for every load: noise in logs and
    in a CLI that draws its own progress. It is switched off for this load, then restored.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        loader = getattr(transformers, auto_class)
        return loader.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False,
                                      attn_implementation=attn_implementation)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 precision: str = "auto", compile: bool = False, cls_only: bool = False,
                 packed: bool = True) -> None:
        # packed=False keeps transformers' own forward on the CPU too (benchmarks compare them).
        torch, self.device, self.precision, self.threads = torch_runtime(
            device, threads, precision, "the torch backend")
        self._torch = torch
        try:
            model = load_model(path, attn_implementation="sdpa")
        except Exception as exc:  # transformers raises OSError/ValueError/...: one clear message
            raise ModelError(f"cannot load the model in {path} with transformers: {exc}") from exc
        self.model: Any = model.eval().to(self.device)
        self.packed = False
        if packed and self.device == "cpu" and not compile:
            # The CPU forward of packed_bert.py (README, performance); None for models it
            # does not run exactly, which stay with transformers.
            from .packed_bert import build_packed_bert

            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
            fast = build_packed_bert(self.model, dtype=dtype, cls_only=cls_only)
            if fast is not None:
                self.model, self.packed = fast, True  # transformers' copy of the weights is freed
        # CLS pooling reads position 0 only, so the last layer need not compute the others.
        self.cls_only = cls_only and (self.packed or install_cls_only_last_layer(self.model))
        self.compiled = compile
        if compile:
            # Opt-in: 15-30 s of compilation on a 2-core CPU for a measured 1.1-1.25x (README).
            # dynamic=True so every (batch, length) shape reuses one graph.
            self.model = torch.compile(self.model, dynamic=True)
        log.info("torch backend: %s on %s, %s, %d threads", path, self.device, self.precision,
                 self.threads or torch.get_num_threads())

    def describe(self) -> str:
        return (f"torch/{self.device}/{self.precision}" + ("/compiled" if self.compiled else "")
                + (f"/{self.model.describe()}" if self.packed else "")
                + ("/cls-only-last-layer" if self.cls_only else ""))

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The mixed-precision context forward passes run in (a no-op for fp32)."""
        return autocast_for(self.precision, self.device)

    def hidden_states(self, batch: TokenBatch) -> np.ndarray:
        torch = self._torch
        inputs = {
            "input_ids": torch.from_numpy(batch.input_ids).to(self.device),
            "attention_mask": torch.from_numpy(batch.attention_mask).to(self.device),
            "token_type_ids": torch.from_numpy(batch.token_type_ids).to(self.device),
        }
        if self.packed:  # bf16 where it pays is decided inside; no autocast around it
            with run_threads(self.threads), torch.inference_mode():
                out = self.model(**inputs)
            return out.numpy()
        with run_threads(self.threads), torch.inference_mode(), self.autocast():
            out = self.model(**inputs).last_hidden_state
        result: np.ndarray = out.float().cpu().numpy()
        return result


def install_cls_only_last_layer(model: Any) -> bool:
    """Make a BERT model's last layer compute position 0 (the CLS token) only.

    Nothing a CLS-pooled embedding reads depends on the last layer's other positions: the CLS
    row still attends over every position's keys and values, so its vector is the same (up to
    float rounding) while the last layer skips ~5/6 of its linear work (keys and values are
    still computed for every position) and most of its attention. The output becomes
    (batch, 1, hidden).

    The replacement re-implements one BERT layer from the model's own submodules, so it relies
    on how the installed transformers builds and calls them (transformers 4.x layers return a
    tuple and have no ``scaling`` attribute, 5.x layers return a tensor). Rather than trusting
    a version number, it is checked once on a tiny padded batch against the whole layer; a
    model not built like transformers' BERT, or one where the check fails, keeps its whole
    last layer (False).
    """
    import torch

    config = model.config
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if (config.model_type != "bert" or config.is_decoder or not layers
            or getattr(config, "position_embedding_type", "absolute") != "absolute"):
        return False
    last = layers[-1]
    if getattr(last, "cls_only", False):
        return True
    attention = getattr(last, "attention", None)
    if not (hasattr(attention, "self") and hasattr(attention, "output") and hasattr(last, "feed_forward_chunk")):
        return False

    # What the whole layer returns (tensor or tuple) and the CLS vectors it leads to.
    from .packed_bert import probe_batch

    probe = probe_batch(config, next(model.parameters()).device)
    seen: dict[str, bool] = {}

    def note_form(_module: Any, _args: Any, out: Any) -> None:  # returns None: output unchanged
        seen["tuple"] = isinstance(out, tuple)

    hook = last.register_forward_hook(note_form)
    training = model.training
    model.eval()  # dropout off for the comparison
    try:
        with torch.inference_mode():
            expected = model(**probe).last_hidden_state[:, 0]
        hook.remove()
        layers[-1] = _cls_only_layer_class()(last, returns_tuple=seen.get("tuple", False))
        try:
            with torch.inference_mode():
                got = model(**probe).last_hidden_state
            same = got.shape[1] == 1 and bool(torch.allclose(got[:, 0], expected, atol=1e-4, rtol=1e-4))
            why = "" if same else "its CLS vectors differ from the whole layer's"
        except Exception as exc:  # the submodules are not called the way this transformers expects
            same, why = False, f"{type(exc).__name__}: {exc}"
    finally:
        hook.remove()
        model.train(training)
    if not same:
        layers[-1] = last
        log.info("CLS-only last layer not used with transformers %s (%s): running the whole layer",
                 _transformers_version(), why)
    return same


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)


@functools.cache
def _cls_only_layer_class() -> Any:
    """The layer class, defined on first use so that importing this module needs no torch."""
    import torch
    import torch.nn.functional as F

    class ClsOnlyLayer(torch.nn.Module):
        """BertSelfAttention + BertLayer for the CLS query row; the submodules are the model's own."""

        cls_only = True

        def __init__(self, layer: Any, *, returns_tuple: bool) -> None:
            super().__init__()
            self.layer = layer
            self.returns_tuple = returns_tuple  # transformers 4.x: (hidden,); 5.x: hidden

        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            sa = self.layer.attention.self
            batch, length, _ = hidden_states.shape
            heads, size = sa.num_attention_heads, sa.attention_head_size
            cls = hidden_states[:, :1]
            query = sa.query(cls).view(batch, 1, heads, size).transpose(1, 2)
            key = sa.key(hidden_states).view(batch, length, heads, size).transpose(1, 2)
            value = sa.value(hidden_states).view(batch, length, heads, size).transpose(1, 2)
            if attention_mask is not None and attention_mask.dim() == 4:
                attention_mask = attention_mask[:, :, :1, :]  # the CLS query's row of the mask
            elif attention_mask is not None:  # a plain (batch, length) 1/0 mask
                attention_mask = attention_mask[:, None, None, :].bool()
            # transformers 4.x has no `scaling` attribute: SDPA's default 1/sqrt(size) is BERT's.
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                     scale=getattr(sa, "scaling", None))
            context = context.transpose(1, 2).reshape(batch, 1, heads * size)
            out = self.layer.feed_forward_chunk(self.layer.attention.output(context, cls))
            return (out,) if self.returns_tuple else out

    return ClsOnlyLayer


def export_onnx(path: Path, out_file: Path, *, opset: int = 17, head: str = "last_hidden_state") -> Path:
    """Export the model in ``path`` to ONNX (inputs: ids, mask, types; output: ``head``).

    ``head="last_hidden_state"`` exports the encoder (``AutoModel``); ``head="logits"`` the
    sequence-classification model a cross-encoder is (the reranker's).
    """
    try:
        import torch
        import transformers  # noqa: F401  (imported here so a missing one names the extra)
    except ImportError as exc:
        raise MissingExtra(exc.name or "torch", "torch", "exporting a model to ONNX") from exc
    try:
        auto_class = "AutoModelForSequenceClassification" if head == "logits" else "AutoModel"
        model = load_model(path, attn_implementation="eager", auto_class=auto_class)
    except Exception as exc:
        raise ModelError(f"cannot load the model in {path} for ONNX export: {exc}") from exc

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids)
            return getattr(out, head)

    # A fresh nn.Module starts in training mode: without .eval() dropout is exported live.
    wrapper = _LastHidden(model).eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.{os.getpid()}.tmp")
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[head] = {0: "batch"} if head == "logits" else {0: "batch", 1: "sequence"}
    # The legacy (TorchScript) exporter is chosen on purpose: it handles BERT's dynamic axes
    # reliably; its deprecation and tracer warnings are noise for users, so they are muted.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (sample, sample, torch.zeros_like(sample)), str(tmp), input_names=names,
            output_names=[head], dynamic_axes=axes, opset_version=opset, dynamo=False,
        )
    tmp.replace(out_file)  # atomic: a concurrent reader never sees half a file
    return out_file
