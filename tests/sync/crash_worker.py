"""Child process of the crash-safety test: syncs a fixed corpus, printing a line per batch.

Usage: python crash_worker.py STORE_URL OUT_JSON. Writes the report, the texts embedded and the
text of every record id to OUT_JSON when it finishes (a killed run writes nothing).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bge_vdb.store import connect
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder


def corpus() -> list[Document]:
    out = []
    for i in range(240):
        words = 90 if i % 9 == 0 else 6  # every 9th document is split into chunks
        out.append(Document(f"doc-{i}", " ".join(f"d{i}w{j}" for j in range(words)), {"i": i}))
    return out


def main() -> None:
    url, out = sys.argv[1], Path(sys.argv[2])
    emb = HashEmbedder(dim=16, max_length=40)
    with connect(url) as store:
        col = store.collection("crash", embedder=emb)
        rep = sync_corpus(col, corpus(), batch_size=12, on_long="split", overlap=4,
                          progress=lambda n: print(f"batch {n}", flush=True))
        texts = {r.id: r.text for p in col.scroll(500) for r in p}
    out.write_text(json.dumps({"report": rep.to_dict(), "embedded": emb.embedded_texts, "texts": texts}))


if __name__ == "__main__":
    main()
