"""Top-10 recall of FLAT and HNSW on the real Milvus 2.3.5 standalone server, by M and ef.

10,000 random 384-d unit vectors (the hardest case for a graph index: no structure), 100 random
queries, top-10 through bge-vdb's search against exact (numpy) search. Every row is flushed,
indexed and served from sealed segments before measuring (tests/support/milvus_standalone.py:
before that, Milvus 2.3 answers through its interim IVF index of growing segments; also measured,
as "growing"). Search times are for the 100 queries and noisy on a shared machine.

    python benchmarks/milvus_recall.py [--n 10000] [--m 16 32 48] [--ef 128 256 384 512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bge_vdb.store import Collection, connect
from bge_vdb.types import Record
from tests.support.milvus_standalone import MilvusStandalone


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def recall(col: Collection, queries: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    t = time.perf_counter()
    found = sum(len({int(h.id[1:]) for h in col.search(q, k=10)} & set(want.tolist()))
                for q, want in zip(queries, exact, strict=True))
    return found / exact.size, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--m", type=int, nargs="+", default=[16, 32, 48])
    ap.add_argument("--ef", type=int, nargs="+", default=[128, 256, 384, 512])
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    data, queries = unit(rng, args.n, args.dim), unit(rng, args.queries, args.dim)
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    records = [Record(f"v{i:05d}", data[i]) for i in range(args.n)]
    server = MilvusStandalone(Path(tempfile.mkdtemp(prefix="bge-vdb-milvus-recall-")))
    server.start()
    try:
        print(f"Milvus 2.3.5, {args.n} x {args.dim}-d random unit vectors, {args.queries} queries, top-10")
        runs = [("FLAT", None, [0])] + [("HNSW", m, args.ef) for m in args.m]
        for index_type, m, efs in runs:
            options = {"index_type": index_type, **({"hnsw_m": m} if m else {})}
            with connect(server.url, **options) as store:
                col = store.collection("recall", dim=args.dim)
                col.upsert(records)
                grow, _ = recall(col, queries, exact)
                store._client.flush("recall")  # type: ignore[attr-defined]
                server.wait_served_indexed("recall", args.n)
                cells = []
                for ef in efs:
                    with connect(server.url, **options, **({"search_ef": ef} if m else {})) as reader:
                        r, secs = recall(reader.collection("recall", dim=args.dim), queries, exact)
                    cells.append(f"{'exact' if not m else f'ef {ef}'}: {r:.3f} ({secs:.1f}s)")
                print(f"{index_type}{f' M={m}' if m else ''}: growing {grow:.3f} | sealed " + ", ".join(cells),
                      flush=True)
                store.drop_collection("recall")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
