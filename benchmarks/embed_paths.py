"""The embedding paths benchmarks/embed.py compares, each served by its own worker process.

A worker builds one path, then answers JSON commands on stdin, one JSON line each on stdout:
``{"cmd": "run", "docs": FILE, "knob": N}`` (time one pass), ``{"cmd": "embed", "docs": FILE,
"out": FILE.npy}`` (save the vectors), ``{"cmd": "profile", ...}`` (where the time goes) and
``{"cmd": "ceiling", "dtype": "bf16"}`` (a matmul's GFLOP/s in this process).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# key -> label and how to build it. "knob": the batch-size setting swept for the path
# (sentence-transformers' batch_size; bge-vdb's token_budget, its inputs per batch capped high).
PATHS: dict[str, dict[str, Any]] = {
    "st": {"label": "sentence-transformers `encode` (fp32)", "kind": "st", "knob": "batch_size"},
    "default": {"label": "**bge-vdb default** (torch, precision auto: bf16, packed)", "kind": "bge",
                "backend": "torch", "precision": "auto"},
    "fp32": {"label": "bge-vdb torch fp32 (packed)", "kind": "bge", "backend": "torch", "precision": "fp32"},
    "autocast": {"label": "before: transformers + bf16 autocast", "kind": "bge", "backend": "torch",
                 "precision": "bf16", "packed": False},
    "compile": {"label": "bge-vdb torch bf16, `compile=True` (opt-in)", "kind": "bge", "backend": "torch",
                "precision": "bf16", "compile": True},
    "onnx": {"label": "bge-vdb ONNX Runtime fp32 (fused graph)", "kind": "bge", "backend": "onnx"},
    "onnx-plain": {"label": "before: ONNX Runtime fp32, plain export", "kind": "bge", "backend": "onnx",
                   "fused": False},
    "int8": {"label": "bge-vdb ONNX Runtime int8 (opt-in)", "kind": "bge", "backend": "onnx", "precision": "int8"},
    "fastembed": {"label": "fastembed, same ONNX file", "kind": "fastembed", "knob": "batch_size"},
}
CANDIDATES = {"batch_size": [8, 16, 32, 64, 128], "token_budget": [2048, 4096, 8192, 16384, 32768]}


def knob_of(key: str) -> str:
    return str(PATHS[key].get("knob", "token_budget"))


def make_path(key: str, model_dir: Path, threads: int) -> Callable[[list[str], int], np.ndarray]:
    """``fn(docs, knob) -> vectors`` for one path, loaded and ready."""
    spec = PATHS[key]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    cls = bool(pooling.get("pooling_mode_cls_token"))
    if spec["kind"] == "st":
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        st = SentenceTransformer(str(model_dir), device="cpu")  # max length: sentence_bert_config
        return lambda docs, knob: st.encode(docs, batch_size=knob, normalize_embeddings=True)
    if spec["kind"] == "fastembed":
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        name = f"local/bench-{'cls' if cls else 'mean'}"
        TextEmbedding.add_custom_model(name, pooling=PoolingType.CLS if cls else PoolingType.MEAN,
                                       normalization=True, sources=ModelSource(hf="local/none"),
                                       dim=int(pooling["word_embedding_dimension"]), model_file="onnx/model.onnx")
        fe = TextEmbedding(name, specific_model_path=str(model_dir), threads=threads)
        return lambda docs, knob: np.stack(list(fe.embed(docs, batch_size=knob)))
    from bge_vdb import Embedder

    options = {k: spec[k] for k in ("backend", "precision", "compile") if k in spec}
    emb = Embedder(model_dir, threads=threads, batch_size=4096, **options)
    if spec.get("packed") is False:
        from bge_vdb.backends.torch import TorchBackend

        emb.load()
        emb._backend = TorchBackend(emb.layout.resolved.path, threads=threads, precision=spec["precision"],
                                    cls_only=emb.layout.pooling == "cls", packed=False)
    if spec.get("fused") is False:
        from bge_vdb.backends.onnx import OnnxBackend

        emb.load()
        emb._backend = OnnxBackend(emb.layout.resolved.path, threads=threads, fused=False)

    def run(docs: list[str], knob: int) -> np.ndarray:
        emb.token_budget = knob
        return emb.embed_documents(docs)

    run.embedder = emb  # type: ignore[attr-defined]
    return run


def profile(key: str, fn: Callable[[list[str], int], np.ndarray], docs: list[str], knob: int,
            top: int = 8) -> dict[str, Any]:
    """One pass under a profiler: the operators taking the most wall time, as shares."""
    start = time.perf_counter()
    if PATHS[key].get("backend") == "onnx":
        ops = _onnx_profile(fn, docs, knob)
    else:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(docs, knob)
        ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    wall = time.perf_counter() - start
    items = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
    rest = max(0.0, wall - sum(ops.values()))
    return {"wall_s": wall, "top": [[name, secs / wall] for name, secs in items],
            "outside_ops": rest / wall}


def _onnx_profile(fn: Callable[[list[str], int], np.ndarray], docs: list[str], knob: int) -> dict[str, float]:
    import onnxruntime as ort

    backend = fn.embedder.backend  # type: ignore[attr-defined]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = backend.session.get_session_options().intra_op_num_threads
    options.enable_profiling = True
    plain, backend.session = backend.session, ort.InferenceSession(str(backend.file), options,
                                                                   providers=["CPUExecutionProvider"])
    try:
        fn(docs, knob)
        trace = Path(backend.session.end_profiling())
    finally:
        backend.session = plain
    ops: dict[str, float] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = "onnx::" + event.get("args", {}).get("op_name", "?")
            ops[op] = ops.get(op, 0.0) + event["dur"] / 1e6
    trace.unlink(missing_ok=True)
    return ops


def matmul_ceiling(dtype: str, threads: int, seconds: float = 1.5) -> float:
    """GFLOP/s of a 1024x1024 matmul (the share-of-ceiling denominator)."""
    import torch

    torch.set_num_threads(threads)
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(1024, 1024, dtype=dt), torch.randn(1024, 1024, dtype=dt)
    torch.mm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9


def high_water_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a
    worker would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(key: str, model_dir: str, threads: int) -> int:
    """The worker loop (``python benchmarks/embed.py --worker KEY MODEL_DIR THREADS``)."""
    import logging
    import warnings

    logging.basicConfig(level=logging.ERROR)  # truncation notes on the natural set are expected
    warnings.simplefilter("ignore")
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not corrupt the protocol
    fn = make_path(key, Path(model_dir), threads) if key != "ceiling" else None
    if fn is not None:
        fn(["hello world"], CANDIDATES[knob_of(key)][2])  # ready: loaded and one text embedded
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "ceiling":
            answer: dict[str, Any] = {"gflops": matmul_ceiling(cmd["dtype"], threads)}
        else:
            assert fn is not None
            docs = json.loads(Path(cmd["docs"]).read_text())
            if cmd["cmd"] == "profile":
                answer = profile(key, fn, docs, cmd["knob"])
            else:
                start = time.perf_counter()
                vectors = np.asarray(fn(docs, cmd["knob"]), dtype=np.float32)
                answer = {"seconds": time.perf_counter() - start}
                if cmd["cmd"] == "embed":
                    np.save(cmd["out"], vectors)
        answer["peak_rss_mb"] = high_water_rss_mb()
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - started by benchmarks/embed.py
    sys.exit(serve(sys.argv[1], sys.argv[2], int(sys.argv[3])))
