"""``col.search(query, k, rerank=reranker, candidates=N)`` with the real Reranker on a tiny random
cross-encoder: for generated corpora, filters, modes, k and candidates the result is the
independent computation of oracle.py; on the memory store, Qdrant local mode and Milvus Lite."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bge_vdb import Document, Reranker
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.rerank_search import DEFAULT_CANDIDATES, candidate_count
from bge_vdb.store import Collection, VectorStore
from tests.rerank_use.oracle import (
    assert_same_ranking,
    corpora,
    dense_candidates,
    expected,
    texts,
    wheres,
)
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES

MODES = ("dense", "hybrid", "lexical")
_names = itertools.count()


def fill(store: VectorStore, corpus: list[tuple[str, int]]) -> tuple[Collection, list[tuple[str, str, int]]]:
    """A new hybrid collection holding ``corpus`` as documents d0, d1, ... with metadata g."""
    col = store.collection(f"rr{next(_names)}", embedder=HashEmbedder(dim=16), hybrid=True)
    docs = [(f"d{i}", text, g) for i, (text, g) in enumerate(corpus)]
    col.upsert([Document(i, t, {"g": g}) for i, t, g in docs])
    return col, docs


def check_reranked_search(col: Collection, docs: list[tuple[str, str, int]], reranker: Reranker,
                          query: str, k: int, candidates: int | None, where: Any, mode: str) -> None:
    """col.search(rerank=) against oracle.py: the first stage's top candidates (numpy brute force
    for dense; the same search without rerank= for hybrid and lexical, whose congruence with the
    memory store's definition is tested in tests/model_based and tests/conformance), then
    Reranker.score on each (query, text), sorted."""
    depth = candidate_count(candidates, k)
    if mode == "dense":
        first = dense_candidates(col.embedder, docs, query, where, depth)
        assume(first is not None)  # a tie at the candidates boundary has no single answer
        pairs = [(i, t) for i, t, _ in first]  # type: ignore[union-attr]
    else:
        pairs = [(h.id, h.text or "") for h in col.search(query, depth, where=where, mode=mode)]
    want, scores = expected(reranker, query, pairs, k)
    got = col.search(query, k, where=where, mode=mode, rerank=reranker, candidates=candidates)
    assert_same_ranking(got, want, scores)
    by_id = {i: (t, g) for i, t, g in docs}
    for h in got:  # the hits are the records: text and metadata as stored
        assert (h.text, dict(h.metadata)) == (by_id[h.id][0], {"g": by_id[h.id][1]})


@given(corpus=corpora, query=texts, k=st.integers(1, 8), extra=st.one_of(st.none(), st.integers(0, 25)),
       where=wheres, mode=st.sampled_from(MODES))
def test_reranked_search_is_the_first_stage_reranked_memory(reranker: Reranker, corpus: list[tuple[str, int]],
                                                            query: str, k: int, extra: int | None,
                                                            where: Any, mode: str) -> None:
    col, docs = fill(MemoryStore(), corpus)
    check_reranked_search(col, docs, reranker, query, k, None if extra is None else k + extra, where, mode)


@pytest.fixture(scope="module", params=["qdrant-local", "milvus-lite"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorStore]:
    with STORE_FACTORIES[request.param](tmp_path_factory.mktemp(request.param)) as store:
        yield store


@settings(max_examples=50)
@given(corpus=corpora, query=texts, k=st.integers(1, 8), extra=st.one_of(st.none(), st.integers(0, 25)),
       where=wheres, mode=st.sampled_from(MODES))
def test_reranked_search_is_the_first_stage_reranked_on_engines(
        engine: VectorStore, reranker: Reranker, corpus: list[tuple[str, int]], query: str, k: int,
        extra: int | None, where: Any, mode: str) -> None:
    col, docs = fill(engine, corpus)
    try:
        check_reranked_search(col, docs, reranker, query, k, None if extra is None else k + extra, where, mode)
    finally:
        engine.drop(col.name)


# ------------------------------------------------------------------------------------- examples

class CountingStore(MemoryStore):
    """The memory store, counting the searches that reach it (nothing else changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.searches = 0

    def query(self, *args: Any) -> Any:
        self.searches += 1
        return super().query(*args)

    def lexical_query(self, *args: Any) -> Any:
        self.searches += 1
        return super().lexical_query(*args)

    def hybrid_query(self, *args: Any) -> Any:
        self.searches += 1
        return super().hybrid_query(*args)


@pytest.mark.parametrize(("call", "message"), [
    (dict(query=np.ones(16, dtype=np.float32)), "needs a text query"),
    (dict(candidates=3), "candidates=3 is less than k=5"),
    (dict(candidates=0), "candidates must be a positive int, got 0"),
    (dict(candidates=2.5), "candidates must be a positive int, got 2.5"),
    (dict(candidates=True), "candidates must be a positive int, got True"),
    (dict(rerank="BAAI/bge-reranker-base"), "rerank= takes a bge_vdb.Reranker"),
    (dict(rerank=object()), "got object"),
    (dict(rerank=None, candidates=10), "candidates= applies to reranked search only"),
    (dict(query="   "), "query: text is empty"),
    (dict(mode="fuzzy"), "mode must be one of"),
    (dict(where={"g": {"$bogus": 1}}), "$bogus"),
    (dict(k=0), "k must be a positive int"),
])
def test_bad_arguments_are_refused_before_any_search_or_embedding(reranker: Reranker, call: dict[str, Any],
                                                                  message: str) -> None:
    from bge_vdb.errors import InputError

    store = CountingStore()
    col, _ = fill(store, [("vector database search", 0), ("river city", 1)])
    embedder = col.embedder
    assert isinstance(embedder, HashEmbedder)
    before = embedder.calls, len(embedder.embedded_texts)
    args: dict[str, Any] = {"query": "vector search", "k": 5, "rerank": reranker, **call}
    with pytest.raises(InputError) as err:
        col.search(args.pop("query"), args.pop("k"), **args)
    assert message in str(err.value)
    assert store.searches == 0 and (embedder.calls, len(embedder.embedded_texts)) == before


def test_a_record_without_text_is_named(reranker: Reranker) -> None:
    from bge_vdb.errors import InputError
    from bge_vdb.types import Record

    col, _ = fill(MemoryStore(), [("vector database", 0)])
    vector = HashEmbedder(dim=16).embed_documents(["vector database search"])[0]
    col.upsert([Record("bare", vector=vector)])  # stored without its text
    with pytest.raises(InputError, match=r"record 'bare' .* has no text"):
        col.search("vector database search", 2, rerank=reranker)
    # Filtered out of the candidates, it is no obstacle.
    assert [h.id for h in col.search("vector database search", 2, rerank=reranker, where={"g": 0})] == ["d0"]


class Spy:
    """The real reranker, recording how many hits each rerank call received."""

    def __init__(self, inner: Reranker) -> None:
        self.inner, self.seen = inner, []  # type: ignore[var-annotated]

    def score(self, pairs: Any) -> np.ndarray:
        return self.inner.score(pairs)

    def rerank(self, query: str, hits: Any, k: int | None = None) -> Any:
        self.seen.append(len(hits))
        return self.inner.rerank(query, hits, k)


@pytest.mark.parametrize(("k", "candidates", "seen"), [
    (5, None, DEFAULT_CANDIDATES), (60, None, 60), (5, 7, 7), (5, 5, 5), (5, 500, 80)])
def test_candidates_is_how_many_hits_the_reranker_reads(reranker: Reranker, k: int, candidates: int | None,
                                                        seen: int) -> None:
    corpus = [(f"{a} {b} {c}", 0) for a, b, c in itertools.islice(
        itertools.product(["vector", "river", "city", "book"], ["fox", "dog", "cat", "panda", "water"],
                          ["long", "short", "quick", "lazy"]), 80)]
    col, _ = fill(MemoryStore(), corpus)
    spy = Spy(reranker)
    hits = col.search("quick brown fox", k, rerank=spy, candidates=candidates)
    assert spy.seen == [seen] and len(hits) == k


def test_empty_results_do_not_call_the_reranker(reranker: Reranker) -> None:
    col, _ = fill(MemoryStore(), [("vector database", 0)])
    spy = Spy(reranker)
    assert col.search("vector", 3, rerank=spy, where={"g": 2}) == []
    assert col.search("panda", 3, rerank=spy, mode="lexical") == []  # no term matches
    assert spy.seen == []


def test_equal_scores_keep_the_first_stage_order(reranker: Reranker) -> None:
    """Records with the same text get the same reranker score: they come back in the order the
    first stage ranked them (here BM25, where the shorter record ranks first)."""
    col, _ = fill(MemoryStore(), [("river", 0), ("river", 1), ("river city", 0)])
    lexical = [h.id for h in col.search("river", 3, mode="lexical")]
    got = col.search("river", 3, mode="lexical", rerank=reranker)
    same = [h for h in got if h.text == "river"]
    assert same[0].score == same[1].score
    assert [h.id for h in same] == [i for i in lexical if i in ("d0", "d1")]


def test_vectors_come_back_when_asked(reranker: Reranker) -> None:
    col, _ = fill(MemoryStore(), [("vector database", 0), ("river city", 0)])
    hits = col.search("vector", 2, rerank=reranker, with_vectors=True)
    assert all(h.vector is not None and len(h.vector) == 16 for h in hits)
    assert all(h.vector is None for h in col.search("vector", 2, rerank=reranker))


def test_normalized_scores_are_the_sigmoid_of_the_raw_ones(cross_encoder_dir: Path, reranker: Reranker) -> None:
    col, _ = fill(MemoryStore(), [("vector database", 0), ("river city", 0), ("lazy dog", 1)])
    raw = {h.id: h.score for h in col.search("city", 3, rerank=reranker)}
    sig = Reranker(str(cross_encoder_dir), backend="torch", precision="fp32", normalize=True)
    for h in col.search("city", 3, rerank=sig):
        assert h.score == pytest.approx(1 / (1 + np.exp(-raw[h.id])), abs=1e-6)
