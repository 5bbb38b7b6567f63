"""The ranking arithmetic of the Weaviate fake, written from the server's source (v1.32.5).

* distances (``adapters/repos/db/vector``): cosine ``1 - cos``, dot ``-a·b``, l2-squared,
  manhattan, hamming; certainty ``1 - distance/2``, defined for cosine only;
* tokenization (``adapters/repos/db/helpers/tokenizer.go``) and the ``en`` stopword preset, which
  is removed from *queries* only;
* BM25F as the block-max WAND searcher scores it (``bm25_searcher_block.go``,
  ``lsmkv/segment_blockmax.go``): per property ``idf · tf / (tf + k1 · (1 - b + b · len / avglen))
  · boost``, summed over properties, ``idf = ln(1 + (N - n + 0.5) / (n + 0.5))`` with ``n`` the
  average (integer division) over the properties holding the term, times the query's repeat count;
* hybrid fusion (``usecases/traverser/hybrid``): relativeScoreFusion (min-max normalised, weighted
  sum) and rankedFusion (``weight / (rank + 60)``), and their tie-breaking;
* autocut (``entities/autocut``): cut before the ``n``-th jump of the normalised curve.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STOPWORDS_EN = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "will", "with"))
HYBRID_MAX_RESULTS = 100  # QUERY_HYBRID_MAXIMUM_RESULTS
RANKED_FUSION_K = 60


def distance(metric: str, stored: np.ndarray, query: np.ndarray) -> float:
    a, q = stored.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        na, nq = np.linalg.norm(a), np.linalg.norm(q)
        return float(1.0 - (a @ q) / (na * nq)) if na and nq else 1.0
    if metric == "dot":
        return float(-(a @ q))
    if metric == "l2-squared":
        return float(np.sum((a - q) ** 2))
    if metric == "manhattan":
        return float(np.sum(np.abs(a - q)))
    return float(np.count_nonzero(a != q))  # hamming


def certainty(dist: float) -> float:
    return 1.0 - dist / 2.0


def _is_word_rune(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("L", "N")  # Go's unicode.IsLetter || unicode.IsNumber


def tokenize(tokenization: str, text: str) -> list[str]:
    if tokenization == "field":
        stripped = text.strip()
        return [stripped]
    if tokenization == "whitespace":
        return text.split()
    if tokenization == "lowercase":
        return [t.lower() for t in text.split()]
    if tokenization in ("word", "word_wildcards"):  # the latter keeps * and ? (Like filters)
        wild = tokenization == "word_wildcards"
        words, cur = [], []
        for ch in text:
            if _is_word_rune(ch) or (wild and ch in "*?"):
                cur.append(ch)
            elif cur:
                words.append("".join(cur))
                cur = []
        if cur:
            words.append("".join(cur))
        return [w.lower() for w in words]
    raise ValueError(f"tokenization {tokenization!r}")


def stopwords(inverted: dict[str, Any]) -> frozenset[str]:
    config = inverted.get("stopwords") or {}
    words = set(STOPWORDS_EN if config.get("preset", "en") == "en" else ())
    words |= set(config.get("additions") or ())
    words -= set(config.get("removals") or ())
    return frozenset(words)


def prop_tokens(tokenization: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [] if value is None else [value]
    return [t for v in values for t in tokenize(tokenization, v)]


@dataclass
class Doc:
    """What BM25 needs of one object: a stable position (the server's doc id) and properties."""

    order: int
    uid: str
    props: dict[str, Any]


def bm25(docs: Sequence[Doc], allowed: set[str] | None, query: str, props: Sequence[dict[str, Any]],
         boosts: dict[str, float], inverted: dict[str, Any], operator_and: bool = False,
         minimum_match: int = 0) -> list[tuple[Doc, float]]:
    """Score ``docs`` (the whole shard; ``allowed`` the ids a filter admits) for ``query`` over the
    text properties ``props``; best first, ties in insertion order."""
    k1, b = float(inverted["bm25"]["k1"]), float(inverted["bm25"]["b"])
    stop = stopwords(inverted)
    n_docs = len(docs)
    totals: dict[int, float] = {}
    by_order = {d.order: d for d in docs}
    for tokenization in ("word", "lowercase", "whitespace", "field"):
        group = [p for p in props if p["tokenization"] == tokenization]
        if not group:
            continue
        counts: dict[str, int] = {}
        for term in tokenize(tokenization, query):
            counts[term] = counts.get(term, 0) + 1
        if tokenization == "word":
            counts = {t: c for t, c in counts.items() if t not in stop}
        if not counts:
            continue
        per_prop = []
        doc_freq: dict[str, list[int]] = {t: [] for t in counts}
        for p in group:
            tokens = {d.order: prop_tokens(tokenization, d.props.get(p["name"])) for d in docs}
            lengths = [len(t) for t in tokens.values() if t]
            avg = sum(lengths) / len(lengths) if lengths else 0.0
            for term in counts:
                n = sum(1 for t in tokens.values() if term in t)
                if n:
                    doc_freq[term].append(n)
            per_prop.append((p, tokens, avg))
        idf = {t: math.log(1 + (n_docs - sum(ns) // len(ns) + 0.5) / (sum(ns) // len(ns) + 0.5)) * counts[t]
               for t, ns in doc_freq.items() if ns}
        needed = len(counts) if operator_and else minimum_match
        for p, tokens, avg in per_prop:
            boost = boosts.get(p["name"], 1.0)
            for order, toks in tokens.items():
                if allowed is not None and by_order[order].uid not in allowed:
                    continue
                matched = [t for t in idf if t in toks]
                if not matched or len(matched) < needed:
                    continue
                score = 0.0
                for t in matched:
                    tf = float(toks.count(t))
                    score += idf[t] * tf / (tf + k1 * (1 - b + b * len(toks) / avg)) * boost
                totals[order] = totals.get(order, 0.0) + float(np.float32(score))
    ranked = sorted(totals.items(), key=lambda kv: (-np.float32(kv[1]), kv[0]))
    return [(by_order[o], float(np.float32(s))) for o, s in ranked]


@dataclass
class Fused:
    uid: str
    score: float
    secondary: float  # the sub-search's own score (bm25) or 1 - distance, used to break ties


def fuse_relative_score(weights: Sequence[float], sets: Sequence[Sequence[tuple[str, float]]]) -> list[Fused]:
    """relativeScoreFusion: each set's scores min-max normalised, times its weight, summed."""
    out: dict[str, Fused] = {}
    for weight, results in zip(weights, sets, strict=True):
        if not results:
            continue
        values = [np.float32(v) for _, v in results]
        lo, hi = min(values), max(values)
        for uid, v in results:
            score = np.float32(weight)
            if hi != lo:
                score = np.float32(score * (np.float32(v) - lo) / (hi - lo))
            prev = out.get(uid)
            total = np.float32(score + np.float32(prev.score)) if prev else score
            out[uid] = Fused(uid, float(total), float(np.float32(v)))
    return _fusion_order(out.values())


def fuse_ranked(weights: Sequence[float], sets: Sequence[Sequence[tuple[str, float]]]) -> list[Fused]:
    """rankedFusion (reciprocal rank): ``weight / (rank + 60)`` summed over the sets."""
    out: dict[str, Fused] = {}
    for weight, results in zip(weights, sets, strict=True):
        for rank, (uid, v) in enumerate(results):
            score = np.float32(weight / (rank + RANKED_FUSION_K))
            prev = out.get(uid)
            out[uid] = Fused(uid, float(np.float32(score + np.float32(prev.score)) if prev else score),
                             float(np.float32(v)))
    return _fusion_order(out.values())


def _fusion_order(results: Any) -> list[Fused]:
    import functools

    def cmp(a: Fused, b: Fused) -> int:  # the server's comparator: score, then secondary, then id
        if (b.score - a.score) ** 2 < 1e-14:
            if (b.secondary - a.secondary) ** 2 < 1e-14:
                return -1 if a.uid > b.uid else 1
            return -1 if a.secondary > b.secondary else 1
        return -1 if a.score > b.score else 1

    return sorted(results, key=functools.cmp_to_key(cmp))


def autocut(values: Sequence[float], cut_off: int) -> int:
    """How many of ``values`` (distances ascending or scores descending) autocut keeps."""
    y = np.asarray(values, dtype=np.float32)
    if len(y) <= 1:
        return len(y)
    step = np.float32(1.0) / np.float32(len(y) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = [np.float32((y[i] - y[0]) / (y[-1] - y[0])) - np.float32(i) * step for i in range(len(y))]
    found = 0
    for i in range(1, len(diff)):
        last = i == len(diff) - 1
        if (diff[i] > diff[i - 1] and diff[i] > diff[i - 2]) if last else (
                diff[i] > diff[i - 1] and diff[i] > diff[i + 1]):
            found += 1
            if found >= cut_off:
                return i
    return len(y)


def like(pattern: str, text: str) -> bool:
    """The Like filter: ``*`` any run, ``?`` one character, everything else literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None
