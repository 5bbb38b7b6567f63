"""The lexical definitions (analyzer, BM25, fusion) and the memory store that implements them.

BM25 is checked against a textbook implementation written here from the formula, over random
corpora that change by random upserts, overwrites and deletes (a model-based test: the memory
store keeps term statistics incrementally, the model recomputes them from scratch each time).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import ConfigError, InputError, NotHybrid
from bge_vdb.lexical import LexicalSpec
from bge_vdb.types import Record
from tests.support.fake_embedder import HashEmbedder

# ------------------------------------------------------------------------------------ analyzer

@pytest.mark.parametrize(("text", "terms"), [
    ("The Quick-brown FOX, jumps!", ["quick", "brown", "fox", "jumps"]),
    ("ＡＢＣ café Ⅻ 2024", ["abc", "café", "xii", "2024"]),  # NFKC, case folding
    ("Straße STRASSE", ["strasse", "strasse"]),
    ("向量数据库", ["向量", "量数", "数据", "据库"]),  # CJK bigrams
    ("库", ["库"]),  # a lone CJK character is a unigram
    ("BGE模型，很好。", ["bge", "模型", "很好"]),  # punctuation ends a CJK run
    ("日本語のテキスト", ["日本", "本語", "語の", "のテ", "テキ", "キス", "スト"]),
    ("한국어 텍스트", ["한국어", "텍스트"]),  # Hangul is written with spaces: words
    ("the and of to", []),  # stopwords only
    ("", []),
])
def test_analyzer(text: str, terms: list[str]) -> None:
    assert lexical.analyze(text) == terms


# No deadlines: the test machines are shared and slow; correctness is what is asserted.
RELAXED = settings(deadline=None)

TEXT = st.text(st.characters(categories=("L", "N", "P", "Zs"), exclude_characters="\x00"), max_size=40)


@RELAXED
@given(TEXT, TEXT)
def test_terms_of_words_separated_by_a_space_are_concatenated(a: str, b: str) -> None:
    """What Milvus's and Weaviate's whitespace split relies on: terms joined by spaces and
    analyzed again are the same terms, and a text is analyzed word by word."""
    assert lexical.analyze(a + " " + b) == lexical.analyze(a) + lexical.analyze(b)
    terms = lexical.analyze(a)
    assert lexical.analyze(" ".join(terms)) == terms


@RELAXED
@given(TEXT)
def test_terms_are_normalised_words(text: str) -> None:
    for term in lexical.analyze(text):
        assert term and not any(c.isspace() for c in term)
        assert term == term.casefold() and term not in lexical.STOPWORDS


def test_term_ids_are_stable() -> None:
    """Stored sparse vectors use these numbers: they must never change between versions."""
    assert [lexical.term_id(t) for t in ("vector", "向量")] == [1348029547, 1243533038]


def test_sparse_adds_up_terms_sharing_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexical, "term_id", lambda term: {"a": 7, "b": 7, "c": 3}[term])
    assert lexical.sparse({"a": 1.0, "b": 0.5, "c": 2.0}) == ([3, 7], [2.0, 1.5])


# -------------------------------------------------------------------------------------- spec

def test_spec_checks_and_round_trips() -> None:
    spec = LexicalSpec(k1=1.5, b=0.5, avg_len=100.0)
    assert LexicalSpec.from_dict(spec.to_dict()) == spec
    for bad in ({"k1": -1}, {"b": 2}, {"avg_len": 0}, {"analyzer": "jieba"}, {"k1": True}):
        with pytest.raises(ConfigError):
            LexicalSpec(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not readable"):
        LexicalSpec.from_dict({"analyzer": "standard"})


# -------------------------------------------------------------------------------------- BM25

def textbook_bm25(docs: dict[str, str | None], query: str, spec: LexicalSpec) -> dict[str, float]:
    """BM25 straight from the formula in bge_vdb.lexical's docstring, recomputed from scratch."""
    terms = {i: lexical.analyze(t or "") for i, t in docs.items()}
    n_docs = len(docs)
    q = lexical.analyze(query)
    scores = {}
    for i, d in terms.items():
        total, hit = 0.0, False
        for t in q:  # with repetition
            tf = d.count(t)
            if not tf:
                continue
            hit = True
            n = sum(1 for other in terms.values() if t in other)
            idf = math.log(1 + (n_docs - n + 0.5) / (n + 0.5))
            total += idf * tf * (spec.k1 + 1) / (tf + spec.k1 * (1 - spec.b + spec.b * len(d) / spec.avg_len))
        if hit:
            scores[i] = total
    return scores


WORDS = ["apple", "banana", "cherry", "date", "向量", "数据库", "the", "Apple", "elder", "fig"]
TEXTS = st.one_of(st.none(), st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join))
OPS = st.lists(st.tuples(st.sampled_from(["upsert", "delete"]), st.integers(0, 11), TEXTS), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(OPS, st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), st.floats(5, 80))
def test_memory_store_bm25_follows_the_corpus(ops: list[tuple[str, int, str | None]], query: list[str],
                                              avg_len: float) -> None:
    spec = LexicalSpec(avg_len=avg_len)
    col = MemoryStore().collection("c", dim=3, hybrid=spec)
    model: dict[str, str | None] = {}
    for op, i, text in ops:
        if op == "upsert":
            col.upsert([Record(f"r{i}", [1.0, float(i), 2.0], text)])
            model[f"r{i}"] = text
        else:
            col.delete([f"r{i}"])
            model.pop(f"r{i}", None)
    want = textbook_bm25(model, " ".join(query), spec)
    if not lexical.analyze(" ".join(query)):
        assert col.search(" ".join(query), mode="lexical") == []
        return
    got = {h.id: h.score for h in col.search(" ".join(query), k=50, mode="lexical")}
    assert got.keys() == want.keys()
    for i, s in want.items():
        assert got[i] == pytest.approx(s, rel=1e-9)


# ------------------------------------------------------------------------------------ fusion

RANKED = st.lists(st.sampled_from([f"d{i}" for i in range(15)]), unique=True, max_size=10).map(
    lambda ids: [(i, 1.0 - n / 20) for n, i in enumerate(ids)])


@RELAXED
@given(RANKED, RANKED, st.floats(0, 1))
def test_rrf_is_the_documented_formula(dense: list[tuple[str, float]], lex: list[tuple[str, float]],
                                       alpha: float) -> None:
    fused = dict(lexical.fuse(dense, lex, alpha, "rrf"))
    expected: Counter[str] = Counter()
    for weight, ranked in ((alpha, dense), (1 - alpha, lex)):
        if weight > 0:
            for rank, (i, _) in enumerate(ranked, start=1):  # Cormack's rank from 1, k = 59
                expected[i] += weight / (59 + rank)
    assert fused.keys() == expected.keys()
    for i in fused:
        assert fused[i] == pytest.approx(expected[i])
    scores = [s for _, s in lexical.fuse(dense, lex, alpha, "rrf")]
    assert scores == sorted(scores, reverse=True)


@RELAXED
@given(RANKED, RANKED, st.floats(0, 1))
def test_relative_fusion_is_min_max_weighted(dense: list[tuple[str, float]], lex: list[tuple[str, float]],
                                             alpha: float) -> None:
    fused = dict(lexical.fuse(dense, lex, alpha, "relative"))
    for s in fused.values():
        assert -1e-12 <= s <= 1 + 1e-12
    if dense and alpha > 0:
        assert fused[dense[0][0]] >= alpha - 1e-12  # the best dense hit normalises to 1


@RELAXED
@given(RANKED, RANKED, st.sampled_from(["rrf", "relative"]))
def test_alpha_one_or_zero_is_one_side_alone(dense: list[tuple[str, float]], lex: list[tuple[str, float]],
                                             fusion: str) -> None:
    assert [i for i, _ in lexical.fuse(dense, lex, 1.0, fusion)] == [i for i, _ in dense]
    assert [i for i, _ in lexical.fuse(dense, lex, 0.0, fusion)] == [i for i, _ in lex]


def test_fusion_arguments_are_checked() -> None:
    assert lexical.check_fusion(None, "rrf") == 0.5
    for alpha, fusion in ((1.5, "rrf"), (-0.1, "rrf"), (True, "rrf"), ("0.5", "rrf"), (0.5, "sum")):
        with pytest.raises(InputError):
            lexical.check_fusion(alpha, fusion)


# --------------------------------------------------------------------- the Collection surface

def _hybrid_collection(embedder: Any = None) -> Any:
    col = MemoryStore().collection("h", embedder=embedder or HashEmbedder(8), hybrid=True)
    col.upsert([Record("a", np.ones(8), "red apple pie"), Record("b", -np.ones(8), "green apple")])
    return col


def test_modes_on_a_hybrid_collection() -> None:
    col = _hybrid_collection()
    assert [h.id for h in col.search("pie", mode="lexical")] == ["a"]
    hybrid = col.search("apple", mode="hybrid", alpha=0.3, fusion="relative")
    assert {h.id for h in hybrid} == {"a", "b"}
    assert col.search("the of", mode="lexical") == []  # stopwords only: nothing to match
    assert len(col.search("the of", mode="hybrid")) == 2  # the dense side alone


def test_bad_search_arguments_fail_before_the_model_runs() -> None:
    embedder = HashEmbedder(8)
    col = _hybrid_collection(embedder)
    calls = embedder.calls
    bad: list[dict[str, Any]] = [
        {"mode": "sparse"}, {"mode": "hybrid", "alpha": 2}, {"mode": "hybrid", "fusion": "max"},
        {"mode": "lexical", "alpha": 0.5}, {"alpha": 0.5}, {"fusion": "relative"},
        {"mode": "hybrid", "where": {"x": {"$bad": 1}}},
    ]
    for kwargs in bad:
        with pytest.raises(InputError):
            col.search("apple", **kwargs)
    with pytest.raises(InputError, match="text query"):
        col.search(np.ones(8), mode="lexical")
    with pytest.raises(InputError, match="empty"):
        col.search("   ", mode="hybrid")
    assert embedder.calls == calls


def test_dense_only_collections_say_so() -> None:
    store = MemoryStore()
    col = store.collection("d", embedder=HashEmbedder(8))
    with pytest.raises(NotHybrid, match=r"dense-only.*hybrid=True"):
        col.search("apple", mode="hybrid")
    with pytest.raises(NotHybrid, match="dense-only"):
        store.collection("d", embedder=HashEmbedder(8), hybrid=True)
    store.collection("h", embedder=HashEmbedder(8), hybrid=LexicalSpec(avg_len=10))
    with pytest.raises(NotHybrid, match="avg_len=10"):
        store.collection("h", hybrid=LexicalSpec(avg_len=20))
    assert store.collection("h", hybrid=True).spec.lexical == LexicalSpec(avg_len=10)


def test_a_store_without_lexical_search_refuses_hybrid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryStore, "supports_lexical", False)
    store = MemoryStore()
    with pytest.raises(NotHybrid, match="cannot hold hybrid"):
        store.collection("h", dim=4, hybrid=True)
    assert store.list_collections() == []
