"""The opt-in ``cjk-unigram`` analyzer: its definition, that every hybrid connector stores it and
scores by it, and that a collection keeps the analyzer it was created with.

The connectors and their bounds are the hybrid congruence test's (tests/conformance/
test_hybrid_congruence.py): exact connectors equal the memory reference; Milvus and Weaviate,
which compute BM25 themselves, fuse their own lists as bge-vdb does and keep the stated top-10
overlap with the reference at the corpus's real average length.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import NotHybrid
from bge_vdb.lexical import LexicalSpec
from bge_vdb.store import Collection
from tests.conformance import test_hybrid_congruence as congruence
from tests.conformance.suite import same_ranking
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES

UNIGRAM = LexicalSpec(analyzer="cjk-unigram", avg_len=40.0)
N_CASES = 12
K = congruence.K


PIECES = [*"向量数据库検索かなab Z1.-—Ｖ", "the ", "GPU", "é", "e\u0301"]


@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_unigram_is_the_standard_analyzer_with_each_cjk_character_apart(text: str) -> None:
    spaced = lexical._CJK.sub(lambda m: f" {m.group()} ", text)
    assert lexical.analyze(text, UNIGRAM) == lexical.analyze(spaced)
    # Outside Chinese and Japanese script the two analyzers agree term for term.
    assert ([t for t in lexical.analyze(text, UNIGRAM) if not lexical._CJK.match(t[0])]
            == [t for t in lexical.analyze(text) if not lexical._CJK.match(t[0])])


def test_unigram_terms_of_an_example() -> None:
    assert lexical.analyze("向量数据库 and GPU加速", UNIGRAM) == ["向", "量", "数", "据", "库", "gpu", "加", "速"]
    assert lexical.analyze("向量数据库 and GPU加速") == ["向量", "量数", "数据", "据库", "gpu", "加速"]


def _query(case: int) -> tuple[str, dict[str, Any] | None, float, str]:
    """The congruence test's queries, each with one Chinese character added (the terms only the
    unigram analyzer makes)."""
    text, where, alpha, fusion = congruence._case(case)
    char = random.Random(case).choice("".join(congruence.ZH))
    return f"{text} {char}", where, alpha, fusion


@pytest.fixture(scope="module")
def reference() -> Collection:
    col = MemoryStore().collection("uni", embedder=HashEmbedder(congruence.DIM), hybrid=UNIGRAM)
    congruence.fill(col)
    return col


@pytest.fixture(scope="module", params=congruence.CONNECTORS)
def filled(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Collection]]:
    name = request.param
    with STORE_FACTORIES[name](tmp_path_factory.mktemp(name.replace("+", "_"))) as store:
        col = store.collection("uni", embedder=HashEmbedder(congruence.DIM), hybrid=UNIGRAM)
        congruence.fill(col)
        yield name, store, col


def test_the_analyzer_is_stored_with_the_collection(filled: tuple[str, Any, Collection]) -> None:
    _, store, _ = filled
    reopened = store.collection("uni", embedder=HashEmbedder(congruence.DIM))
    assert reopened.spec.lexical == UNIGRAM
    assert store.collection("uni", embedder=HashEmbedder(congruence.DIM), hybrid=True).spec.lexical == UNIGRAM
    with pytest.raises(NotHybrid, match="created with"):
        store.collection("uni", embedder=HashEmbedder(congruence.DIM), hybrid=LexicalSpec(avg_len=40.0))


@pytest.mark.parametrize("case", range(N_CASES))
def test_unigram_search_congruent_with_memory(filled: tuple[str, Any, Collection], reference: Collection,
                                              case: int) -> None:
    name, _, col = filled
    text, where, alpha, fusion = _query(case)
    if name in congruence.OWN_BM25:  # its own BM25 over the unigram terms bge-vdb stored
        depth = lexical.fusion_depth(K)
        dense = col.search(text, k=depth, where=where) if alpha > 0 else []
        lex = col.search(text, k=depth, mode="lexical", where=where)
        got = col.search(text, k=K, mode="hybrid", where=where, alpha=alpha, fusion=fusion)
        same_ranking(got, lexical.fuse_hits(dense, lex, alpha, fusion, K), tol=1e-5)
        return
    want_lex = reference.search(text, k=K, mode="lexical", where=where)
    got_lex = col.search(text, k=K, mode="lexical", where=where)
    same_ranking(got_lex, want_lex, tol=1e-4 * max(1.0, abs(want_lex[0].score)) if want_lex else 1e-4)
    same_ranking(col.search(text, k=K, mode="hybrid", where=where, alpha=alpha, fusion=fusion),
                 reference.search(text, k=K, mode="hybrid", where=where, alpha=alpha, fusion=fusion), tol=1e-5)


@pytest.mark.parametrize("filled", sorted(congruence.OWN_BM25), indirect=True)
def test_own_bm25_over_unigrams_is_close(filled: tuple[str, Any, Collection], reference: Collection) -> None:
    """The congruence test's bound, with the reference at the corpus's real average length."""
    name, _, col = filled
    lengths = [len(lexical.analyze(r.text or "", UNIGRAM)) for page in reference.scroll() for r in page]
    spec = LexicalSpec(analyzer="cjk-unigram", avg_len=sum(lengths) / len(lengths))
    real = MemoryStore().collection("uni", embedder=HashEmbedder(congruence.DIM), hybrid=spec)
    congruence.fill(real)
    shares = []
    for case in range(N_CASES):
        text = _query(case)[0]
        want = {h.id for h in real.search(text, k=K, mode="lexical")}
        got = {h.id for h in col.search(text, k=K, mode="lexical")}
        assert bool(got) == bool(want), text
        if want:
            shares.append(len(want & got) / len(want))
    overlap = sum(shares) / len(shares)
    print(f"{name}: mean top-{K} overlap with bge-vdb's BM25 over unigrams {overlap:.3f}")
    assert overlap >= congruence.MIN_OVERLAP, overlap


def test_the_two_analyzers_rank_differently_here(reference: Collection) -> None:
    """Guard: the corpus and queries exercise what differs (else the tests above prove nothing new)."""
    standard = MemoryStore().collection("std", embedder=HashEmbedder(congruence.DIM),
                                        hybrid=LexicalSpec(avg_len=40.0))
    congruence.fill(standard)
    differ = sum([h.id for h in reference.search(_query(c)[0], k=K, mode="lexical")]
                 != [h.id for h in standard.search(_query(c)[0], k=K, mode="lexical")] for c in range(N_CASES))
    assert differ >= N_CASES // 2, differ
