"""The lexical side of hybrid search, defined once: analyzer, BM25 and rank fusion.

Every connector implements exactly these definitions (the memory store literally calls them);
where a database's own machinery differs by design, the connector's docstring says how and the
congruence test bounds it.

**Analyzer** (``"standard"``, version 1), the same for documents and queries, on every database:

1. NFKC normalisation, then case folding (``"ＡＢＣ"`` and ``"abc"`` are one term);
2. words are maximal runs of letters, digits and combining marks (Unicode categories L, N, M);
   everything else separates words;
3. Chinese and Japanese script (Han ideographs, Hiragana, Katakana), which is written without
   spaces, is cut into overlapping character bigrams (``"向量数据库"`` -> ``向量 量数 数据 据库``),
   and a run of one such character is a unigram: the classic dictionary-free CJK analyzer
   (the approach of Lucene's CJKBigramFilter). It needs no dictionary and no model, so every
   database sees the same terms. Measured (benchmarks/retrieval.py, docs/hybrid.md): on English
   sets BM25 on all-MiniLM-L6-v2's WordPiece tokens is close to it; on a Chinese set character
   unigrams beat these bigrams (0.449 against 0.248 nDCG@10), so the opt-in analyzer
   ``"cjk-unigram"`` below exists; this one stays the default, because changing it would change
   the meaning of every stored term weight (a new version, a migration);
4. the 33 English stopwords of Lucene's ``EnglishAnalyzer`` (also Weaviate's ``en`` preset) are
   dropped.

**Analyzer** ``"cjk-unigram"`` (version 1, opt-in: ``hybrid=LexicalSpec(analyzer="cjk-unigram")``):
the same, except step 3: every Chinese or Japanese character is a term of its own
(``"向量数据库"`` -> ``向 量 数 据 库``), as Elasticsearch's and Milvus's standard tokenizers
cut them. It matches across word boundaries the bigrams cannot see and scores the characters a
gloss shares with its text; it is also less precise, since single characters are common.

**BM25** with ``k1 = 1.2`` and ``b = 0.75`` (Lucene's and every database's default)::

    score(q, d) = sum over terms t of q, counted with repetition, of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avg_len))
    idf(t)      = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

``N`` is the number of records in the collection, with or without text, and ``n(t)`` those
containing ``t``, both counted over the whole collection (a filter restricts which records are
ranked, not the statistics), at query time. ``|d|`` is the number of terms of the document.
``avg_len`` is a constant of the collection (:class:`LexicalSpec`), not the running average:
a document's term weights then depend on that document alone, so they are computed once, on the
client, when it is written, and never go stale as a corpus is synced incrementally; only IDF
moves with the corpus, and it is applied at query time (Qdrant's ``modifier=IDF`` does that
server-side; Pinecone and the memory store do it from term statistics). Milvus and Weaviate
compute BM25 themselves with the corpus's real average length: the one by-design difference.

**Fusion** of the dense list and the lexical list (each the top ``fusion_depth(k)`` of its own
search, filtered the same way), with ``alpha`` the weight of the dense side (default 0.5):

* ``"rrf"`` (reciprocal rank fusion)::

      score(d) = alpha / (60 + r_dense(d)) + (1 - alpha) / (60 + r_lexical(d))

  ``r`` counted from 0 (the best hit has rank 0), a missing term is 0. That is Weaviate's
  ``rankedFusion`` and Qdrant's ``Rrf(k=60)``; it equals Cormack et al.'s ``1 / (k + rank)`` with
  rank counted from 1 and ``k = 59``.
* ``"relative"`` (relative score fusion): each list's scores min-max normalised to [0, 1] over
  the list (all 1 when they are equal), then ``alpha * dense + (1 - alpha) * lexical``: Weaviate's
  ``relativeScoreFusion``.

Ties are broken by the better dense rank, then the better lexical rank.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, InputError, NotHybrid

if TYPE_CHECKING:
    from .types import CollectionSpec, Hit

K1 = 1.2
B = 0.75
RRF_K = 60
#: Each side of a hybrid search contributes its best max(FUSION_DEPTH, k) hits (Weaviate's
#: QUERY_HYBRID_MAXIMUM_RESULTS default, so its native hybrid search agrees with this one).
FUSION_DEPTH = 100
DEFAULT_AVG_LEN = 64.0
DEFAULT_ALPHA = 0.5
ANALYZERS = ("standard", "cjk-unigram")
FUSIONS = ("rrf", "relative")
MODES = ("dense", "hybrid", "lexical")

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the same 33 words as Weaviate's "en" preset).
STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"]
)
_CJK = re.compile(
    "[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
)


@dataclass(frozen=True)
class LexicalSpec:
    """How a collection's lexical side is defined; stored with the collection.

    Changing any of these changes stored term weights, so a collection keeps the spec it was
    created with and a mismatching one is refused when it is opened.
    """

    analyzer: str = "standard"
    version: int = 1
    k1: float = K1
    b: float = B
    avg_len: float = DEFAULT_AVG_LEN

    def __post_init__(self) -> None:
        if self.analyzer not in ANALYZERS or self.version != 1:
            raise ConfigError(f"unknown analyzer {self.analyzer!r} version {self.version}; "
                              f"known: {', '.join(ANALYZERS)} (version 1)")
        for name, value, low, high in (("k1", self.k1, 0.0, 10.0), ("b", self.b, 0.0, 1.0),
                                       ("avg_len", self.avg_len, 1e-9, 1e9)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"LexicalSpec.{name} must be a number in [{low:g}, {high:g}], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-compatible data (what a hybrid collection records)."""
        return {"analyzer": self.analyzer, "version": self.version, "k1": self.k1, "b": self.b,
                "avg_len": self.avg_len}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LexicalSpec:
        """The settings a collection recorded; ``ConfigError`` when they cannot be read."""
        try:
            return cls(analyzer=str(data["analyzer"]), version=int(data["version"]), k1=float(data["k1"]),
                       b=float(data["b"]), avg_len=float(data["avg_len"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the stored lexical settings {dict(data)!r} are not readable: {exc}") from None


def as_spec(hybrid: bool | LexicalSpec | None) -> LexicalSpec | None:
    """The spec asked for by ``collection(..., hybrid=...)``: True means the defaults."""
    if hybrid is None or hybrid is False:
        return None
    if hybrid is True:
        return LexicalSpec()
    if isinstance(hybrid, LexicalSpec):
        return hybrid
    raise ConfigError(f"hybrid= takes True, False or a LexicalSpec, got {hybrid!r}")


# ---------------------------------------------------------------------------------- analyzer

def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


def analyze(text: str, spec: LexicalSpec | None = None) -> list[str]:
    """The terms of ``text`` (see the module docstring), in order, with repetitions."""
    unigrams = spec is not None and spec.analyzer == "cjk-unigram"
    norm = unicodedata.normalize("NFKC", text).casefold()
    terms: list[str] = []
    word: list[str] = []
    cjk: list[str] = []

    def flush_word() -> None:
        if word:
            w = "".join(word)
            if w not in STOPWORDS:
                terms.append(w)
            word.clear()

    def flush_cjk() -> None:
        if not cjk:
            return
        if len(cjk) == 1 or unigrams:
            terms.extend(cjk)
        else:
            terms.extend(cjk[i] + cjk[i + 1] for i in range(len(cjk) - 1))
        cjk.clear()

    for ch in norm:
        if _CJK.match(ch):
            flush_word()
            cjk.append(ch)
        elif _is_word_char(ch):
            flush_cjk()
            word.append(ch)
        else:
            flush_word()
            flush_cjk()
    flush_word()
    flush_cjk()
    return terms


def term_id(term: str) -> int:
    """The 32-bit index of a term in a sparse vector (Qdrant's and Pinecone's are uint32).

    The first 4 bytes of BLAKE2b: stable across processes, machines and Python versions (unlike
    ``hash()``). Two terms can share an index; for a vocabulary of V terms about V**2 / 2**33
    pairs do (12 among 100,000 terms), and such a pair then counts as one term.
    """
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big")


def sparse(weights: Mapping[str, float]) -> tuple[list[int], list[float]]:
    """Term weights as a sparse vector: sorted unique :func:`term_id` indices and their values
    (terms sharing an index add up, so the database sees them as one term)."""
    merged: dict[int, float] = {}
    for term, w in weights.items():
        tid = term_id(term)
        merged[tid] = merged.get(tid, 0.0) + w
    indices = sorted(merged)
    return indices, [merged[i] for i in indices]


# --------------------------------------------------------------------------------------- BM25

def idf(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def term_weights(terms: Sequence[str], spec: LexicalSpec) -> dict[str, float]:
    """A document's BM25 term weights without IDF (what is stored per term)."""
    counts = Counter(terms)
    norm = spec.k1 * (1.0 - spec.b + spec.b * len(terms) / spec.avg_len)
    return {t: tf * (spec.k1 + 1.0) / (tf + norm) for t, tf in counts.items()}


@dataclass(frozen=True)
class LexicalQuery:
    """An analyzed query: its text (what Milvus and Weaviate are sent, re-joined) and terms."""

    text: str
    terms: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def joined(self) -> str:
        """The terms separated by spaces: what a whitespace analyzer on the server splits again."""
        return " ".join(self.terms)


def analyze_query(text: str, spec: LexicalSpec) -> LexicalQuery:
    terms = tuple(analyze(text, spec))
    return LexicalQuery(text, terms, dict(Counter(terms)))


def bm25(query: LexicalQuery, weights: Mapping[str, float], n_docs: int, df: Mapping[str, int]) -> float:
    """One document's score from its stored weights and the collection's statistics."""
    return sum(idf(n_docs, df[t]) * c * weights[t] for t, c in query.counts.items() if t in weights)


# ------------------------------------------------------------------------------------- fusion

def fusion_depth(k: int) -> int:
    return max(FUSION_DEPTH, k)


def check_fusion(alpha: Any, fusion: Any) -> float:
    """``alpha`` as a float in [0, 1] (None: the default), after checking ``fusion``."""
    if fusion not in FUSIONS:
        raise InputError(f"fusion must be one of {', '.join(map(repr, FUSIONS))}, got {fusion!r}")
    if alpha is None:
        return DEFAULT_ALPHA
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be a number in [0, 1] (the weight of the dense side), got {alpha!r}")
    return float(alpha)


def fuse(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]], alpha: float,
         fusion: str) -> list[tuple[str, float]]:
    """Fuse two ranked lists of ``(id, score)`` (best first) into one, best first.

    A side of weight 0 contributes nothing, not even candidates (as in Weaviate, where alpha 0 or
    1 skips that search).
    """
    fused: dict[str, float] = {}
    for weight, ranked in ((alpha, dense), (1.0 - alpha, lexical)):
        if weight <= 0.0:
            continue
        if fusion == "rrf":
            parts: Iterable[tuple[str, float]] = (
                (i, weight / (RRF_K + rank)) for rank, (i, _) in enumerate(ranked))
        else:
            values = [s for _, s in ranked]
            lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
            parts = ((i, weight * ((s - lo) / (hi - lo) if hi > lo else 1.0)) for i, s in ranked)
        for i, s in parts:
            fused[i] = fused.get(i, 0.0) + s
    big = len(dense) + len(lexical) + 1
    d_rank = {i: r for r, (i, _) in enumerate(dense)}
    l_rank = {i: r for r, (i, _) in enumerate(lexical)}
    return sorted(fused.items(), key=lambda kv: (-kv[1], d_rank.get(kv[0], big), l_rank.get(kv[0], big)))


def check_opened(spec: CollectionSpec, hybrid: bool | LexicalSpec | None) -> None:
    """Refuse opening an existing collection with ``hybrid=`` it was not created with."""
    wanted = as_spec(hybrid)
    if wanted is None:
        return
    if spec.lexical is None:
        raise NotHybrid(
            f"collection {spec.name!r} exists dense-only (it was created without hybrid=True), so "
            f"it has no lexical index; create a new collection with hybrid=True and sync or "
            f"migrate into it"
        )
    if isinstance(hybrid, LexicalSpec) and spec.lexical != hybrid:
        raise NotHybrid(f"collection {spec.name!r} was created with {spec.lexical}, not {hybrid}: "
                        f"its stored term weights follow the settings it was created with")


def fuse_hits(dense: Sequence[Hit], lex: Sequence[Hit], alpha: float, fusion: str, k: int) -> list[Hit]:
    """The fused top ``k`` of two hit lists (see :func:`fuse`), scored by fusion."""
    by_id = {h.id: h for h in lex}
    by_id.update((h.id, h) for h in dense)
    fused = fuse([(h.id, h.score) for h in dense], [(h.id, h.score) for h in lex], alpha, fusion)
    return [replace(by_id[i], score=score) for i, score in fused[:k]]
