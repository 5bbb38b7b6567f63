"""docs/s of ``sync_dataset`` (Ray Data, N workers) vs ``sync_corpus`` on the same corpus and machine.

Both write into Milvus Lite served on a loopback port (the store that takes writers from several
processes) with the same model; each into its own fresh collection. sync_corpus gets every core
(torch threads = cores); each Ray worker gets cores / workers threads, so the two use the same CPU.
Ray's own start-up (actors importing torch, loading the model) is inside the sync_dataset time,
and reported apart as the time of a re-sync of unchanged documents (0 embedded).

    python benchmarks/ray_sync.py --docs 400 --workers 2 --json /tmp/ray_sync.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from benchmarks.corpus import wiki_passages
from bge_vdb.distributed import sync_dataset
from bge_vdb.embedder import Embedder
from bge_vdb.store import connect
from bge_vdb.sync import sync_corpus
from tests.support.milvus_server import server_port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import ray

    cores = os.cpu_count() or 1
    passages = wiki_passages(args.docs)
    docs = [{"id": f"p{i}", "text": t, "metadata": {"i": i}} for i, t in enumerate(passages)]
    url = f"milvus://127.0.0.1:{server_port()}"
    out: dict[str, Any] = {"docs": len(docs), "workers": args.workers, "cores": cores, "model": args.model,
                           "note": "2-core CPU box shared with other jobs: noisy"}

    with connect(url) as store:
        for name in ("bench_corpus", "bench_ray"):
            if name in store.list_collections():
                store.drop(name)
        col = store.collection("bench_corpus", embedder=Embedder(args.model, threads=cores))
        t = time.perf_counter()
        rep = sync_corpus(col, docs, batch_size=args.batch_size)
        out["sync_corpus_s"] = time.perf_counter() - t
        assert rep.ok and rep.added == len(docs), rep

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    try:
        options = {"threads": max(1, cores // args.workers)}
        runs = []
        for _ in range(2):  # first sync, then an unchanged re-sync (Ray overhead alone)
            t = time.perf_counter()
            rep = sync_dataset(ray.data.from_items(docs), store_url=url, collection="bench_ray",
                               model=args.model, embedder_options=options, num_workers=args.workers,
                               num_cpus=cores / args.workers, batch_size=args.batch_size)
            runs.append((time.perf_counter() - t, rep))
        (first, rep1), (again, rep2) = runs
        assert rep1.ok and rep1.added == len(docs) and rep2.embedded == 0, (rep1, rep2)
        out["sync_dataset_s"], out["sync_dataset_unchanged_s"] = first, again
    finally:
        ray.shutdown()
        with connect(url) as store:
            for name in ("bench_corpus", "bench_ray"):
                if name in store.list_collections():
                    store.drop(name)
    out["sync_corpus_docs_per_s"] = len(docs) / out["sync_corpus_s"]
    out["sync_dataset_docs_per_s"] = len(docs) / out["sync_dataset_s"]
    print(f"{len(docs)} docs, {args.model}, {cores} cores (shared, noisy)")
    print(f"  sync_corpus                  {out['sync_corpus_s']:7.1f} s  {out['sync_corpus_docs_per_s']:7.1f} docs/s")
    print(f"  sync_dataset ({args.workers} workers)     {first:7.1f} s  {out['sync_dataset_docs_per_s']:7.1f} docs/s")
    print(f"  sync_dataset unchanged re-run {again:6.1f} s  (Ray start-up + one fetch per batch)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
