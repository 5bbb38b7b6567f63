"""Migration speed: Milvus Lite -> Qdrant local, 100k vectors of dimension 384 by default.

    python benchmarks/migrate.py [--n 100000] [--dim 384] [--batch-size 500] [--json]
                                 [--dst qdrant,milvus,pgvector]

Fills a Milvus Lite file with random unit vectors (short text, small metadata), then times
``migrate(..., verify=False)`` into each destination in turn (a Qdrant local-mode directory, a
second Milvus Lite file, PostgreSQL + pgvector through the embedded ``pgvector:///dir`` server;
all in one temporary directory), then times each verification pass separately. Prints vectors
per second and a JSON line per destination. Not a test: figures are noisy on shared CPUs.

The bottleneck is the destination: Qdrant local mode (qdrant-client's pure-Python engine)
commits its SQLite file once per point, so on a real disk each point costs an fsync; on tmpfs
(``--dir /dev/shm``) that cost disappears. A Qdrant server would take batches natively.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bge_vdb import Record, connect
from bge_vdb.migrate import migrate, verify_migration


def fill(url: str, n: int, dim: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with connect(url) as store:
        col = store.collection("bench", dim=dim)
        for start in range(0, n, 5000):
            vecs = rng.normal(size=(min(5000, n - start), dim)).astype(np.float32)
            col.upsert([
                Record(f"doc-{start + i:08d}", v, f"text of document {start + i}",
                       {"group": (start + i) % 17, "lang": "en" if i % 2 else "zh"})
                for i, v in enumerate(vecs)
            ])
    return time.perf_counter() - started


DESTINATIONS = {
    "qdrant": "qdrant://{tmp}/qdrant",
    "milvus": "milvus://{tmp}/dst.db",
    "pgvector": "pgvector://{tmp}/pg",
}


def run(n: int, dim: int, batch_size: int, where: str | None,
        destinations: list[str]) -> list[dict[str, float | int | bool | str]]:
    results: list[dict[str, float | int | bool | str]] = []
    with tempfile.TemporaryDirectory(prefix="bge-vdb-migrate-bench-", dir=where) as tmp:
        Path(tmp).chmod(0o755)  # as root, PostgreSQL runs as its own user and must enter it
        src_url = f"milvus://{tmp}/src.db"
        fill_s = fill(src_url, n, dim)
        for kind in destinations:
            dst_url = DESTINATIONS[kind].format(tmp=tmp)
            with connect(src_url) as src_store, connect(dst_url) as dst_store:
                src = src_store.collection("bench", create=False)
                report = migrate(src, (dst_store, "bench"), batch_size=batch_size, verify=False)
                dst = dst_store.collection("bench", create=False)
                started = time.perf_counter()
                verification = verify_migration(src, dst)
                verify_s = time.perf_counter() - started
            results.append({
                "n": n, "dim": dim, "dir": where or tempfile.gettempdir(), "batch_size": batch_size,
                "destination": kind, "fill_seconds": round(fill_s, 2),
                "migrate_seconds": round(report.seconds, 2),
                "vectors_per_second": round(report.vectors_per_second, 1),
                "failed": len(report.failed), "verify_seconds": round(verify_s, 2),
                "verified": verification.ok, "topk_overlap": verification.topk_overlap,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--dir", default=None,
                        help="where the two databases go (default: the system temp directory); "
                        "/dev/shm takes the disk's fsync cost out of the figure")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--dst", default="qdrant",
                        help="comma-separated destinations, migrated into one after the other from "
                        f"the same source: {', '.join(DESTINATIONS)}")
    args = parser.parse_args()
    destinations = [d.strip() for d in args.dst.split(",") if d.strip()]
    unknown = [d for d in destinations if d not in DESTINATIONS]
    if unknown or not destinations:
        parser.error(f"unknown destination(s) {unknown}; choose from {', '.join(DESTINATIONS)}")
    for result in run(args.n, args.dim, args.batch_size, args.dir, destinations):
        if not args.json:
            print(f"Milvus Lite -> {result['destination']}, {result['n']} x {result['dim']}-d, "
                  f"batch {result['batch_size']}, in {result['dir']} (load average {result['load_avg_1m']}):")
            print(f"  migrate  {result['migrate_seconds']:>8.1f} s  {result['vectors_per_second']:>9.0f} vectors/s"
                  f"  ({result['failed']} failed)")
            print(f"  verify   {result['verify_seconds']:>8.1f} s  ok={result['verified']} "
                  f"top-10 overlap {result['topk_overlap']:.3f}")
            print(f"  (filling the source took {result['fill_seconds']:.1f} s)")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
