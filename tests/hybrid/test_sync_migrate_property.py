"""A property test: sync_corpus and migrate carry the lexical side along on every hybrid connector.

Hypothesis generates corpora (English, Chinese and mixed-script words, documents with no terms,
metadata for filters) and their later versions (documents changed, deleted, added), and queries
(words of the corpus and unseen ones, a filter, ``alpha``, the fusion). For each hybrid-capable
connector as the *source*, every version is synced (``sync_corpus``, small batches so statistics
change write by write) into a hybrid collection there and into the memory reference; after each
version the source's lexical and hybrid results must equal the reference's. Then the final source
is migrated into a new collection on every other hybrid connector, which must be hybrid with the
same lexical settings and answer like the reference too. So every ordered pair of connectors is
covered by every example.

"Equal" is the congruence test's (tests/conformance/test_hybrid_congruence.py), with its bounds:

* Exact connectors (:data:`EXACT`: term weights computed by bge-vdb, IDF from the current
  corpus): rankings and scores as the reference's, within the congruence test's tolerances.
  Pinecone's journaled term statistics are also compared, term by term, with a recount of the
  reference's records after each sync (deletes and overwrites included).
* Connectors whose database computes BM25 itself (:data:`OWN_BM25`): the hybrid ranking is
  bge-vdb's fusion of their own dense and lexical lists; the records they find lexically are the
  reference's (fewer than k match: the sets are equal; else both find some); and the mean share of
  the lexical top k of the reference recomputed with the corpus's real average length that they
  return is at least the congruence test's :data:`MIN_OVERLAP`.

Every document ever generated in an example has its own number of terms and ``avg_len`` is not
a round number, so BM25 scores do not tie (RRF over tied lists depends on each database's order
of the ties). Collections live in stores opened once per module and are dropped after each example.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.lexical import LexicalSpec
from bge_vdb.migrate import migrate
from bge_vdb.store import Collection, VectorStore
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Record
from tests.conformance.suite import same_ranking
from tests.conformance.test_hybrid_congruence import EXACT as CONGRUENCE_EXACT
from tests.conformance.test_hybrid_congruence import MIN_OVERLAP
from tests.conformance.test_hybrid_congruence import OWN_BM25 as CONGRUENCE_OWN_BM25
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES

DIM = 8
K = 5
SPEC = LexicalSpec(avg_len=9.87)  # not a round number: tf 1 at length L never ties tf 2 at 2L + c
EXACT = {"memory"} | CONGRUENCE_EXACT
OWN_BM25 = set(CONGRUENCE_OWN_BM25)
CONNECTORS = sorted(EXACT | OWN_BM25)
EXAMPLES = 8  # per source connector; each example syncs up to 3 versions and makes 5 collections

# Words and how many terms each makes (checked below): English, Chinese (bigrams), mixed script.
WORDS = ["vector", "database", "search", "river", "apple", "kernel", "E1234", "Café", "ＧＰＵ",
         "向量", "数据库", "检索", "中文分词", "GPU加速", "bge模型v2", "模型"]
STOP = "The of and"  # a text of no terms at all
UNSEEN = ["unseenword", "未见"]
FILTERS: list[dict[str, Any] | None] = [None, {"src": "a"}, {"n": {"$gte": 2}},
                                        {"$or": [{"src": "b"}, {"n": {"$lt": 1}}]}]
_names = itertools.count()


def n_terms(text: str) -> int:
    return len(lexical.analyze(text, SPEC))


doc_body = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6)
doc_meta = st.fixed_dictionaries({"src": st.sampled_from(["a", "b"]), "n": st.integers(0, 3)})
doc = st.tuples(doc_body, doc_meta, st.booleans())  # words, metadata, a text of no terms?
doc_ids = st.sampled_from([f"doc{i:02d}" for i in range(14)])
# The first version, then edits: for some ids a new document (changed or added) or None (deleted);
# the other documents stay as they were (unchanged: sync skips them).
first_version = st.dictionaries(doc_ids, doc, min_size=3, max_size=12)
edits = st.dictionaries(doc_ids, st.one_of(st.none(), doc), min_size=1, max_size=6)
query = st.tuples(st.lists(st.sampled_from(WORDS + UNSEEN), min_size=1, max_size=3),
                  st.sampled_from(FILTERS), st.sampled_from([0.0, 0.3, 0.5, 1.0]),
                  st.sampled_from(["rrf", "relative"]))


class Texts:
    """Texts of one example, each of its own number of terms (so BM25 scores do not tie): the
    drawn words, then a word of the document's own repeated until its length is new."""

    def __init__(self) -> None:
        self.lengths: set[int] = set()
        self.made: dict[tuple[str, tuple[str, ...], bool], str] = {}  # an unchanged body: the same text

    def make(self, doc_id: str, words: list[str], stop_only: bool) -> str:
        key = (doc_id, tuple(words), stop_only)
        if key not in self.made:
            self.made[key] = self._new(doc_id, words, stop_only)
        return self.made[key]

    def _new(self, doc_id: str, words: list[str], stop_only: bool) -> str:
        if stop_only and 0 not in self.lengths:  # at most one text of no terms per example
            self.lengths.add(0)
            return STOP
        text = " ".join(words)
        pad = f"pad{doc_id}{len(self.lengths)}"
        while n_terms(text) in self.lengths or n_terms(text) == 0:
            text += " " + pad
        self.lengths.add(n_terms(text))
        return text


def documents(first: dict[str, Any], later: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The documents of each version: ``first``, then ``first`` with each of ``later`` applied."""
    texts = Texts()
    current = dict(first)
    out = []
    for step in [{}, *later]:
        current = {i: body for i, body in (current | step).items() if body is not None}
        out.append([{"id": i, "text": texts.make(i, body[0], body[2]), "metadata": body[1]}
                    for i, body in sorted(current.items())])
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(STORE_FACTORIES[name](tmp_path_factory.mktemp(name)))
               for name in CONNECTORS if name != "memory"} | {"memory": MemoryStore()}


def real_average(ref: Collection) -> Collection:
    """The reference with avg_len set to the corpus's real mean number of terms per record."""
    records = [r for page in ref.scroll(with_vectors=True) for r in page]
    if not records:
        return ref
    lengths = [n_terms(r.text or "") for r in records]
    col = MemoryStore().collection("real", dim=DIM, hybrid=LexicalSpec(avg_len=max(sum(lengths), 1) / len(lengths)))
    col.upsert([Record(r.id, r.vector, r.text, r.metadata) for r in records])
    return col


def check(name: str, col: Collection, ref: Collection, queries: list[Any]) -> None:
    """``col`` (on connector ``name``) answers like the reference (see the module docstring)."""
    assert col.store.describe_collection(col.name).lexical == SPEC  # type: ignore[union-attr]
    assert col.count() == ref.count()
    shares = []
    real = real_average(ref) if name in OWN_BM25 else None
    for words, where, alpha, fusion in queries:
        text = " ".join(words)
        got_lex = col.search(text, k=K, mode="lexical", where=where)
        got_hyb = col.search(text, k=K, mode="hybrid", where=where, alpha=alpha, fusion=fusion)
        want_lex = ref.search(text, k=K, mode="lexical", where=where)
        if name in EXACT:
            want_hyb = ref.search(text, k=K, mode="hybrid", where=where, alpha=alpha, fusion=fusion)
            same_ranking(got_lex, want_lex, tol=1e-4 * max(1.0, abs(want_lex[0].score)) if want_lex else 1e-4)
            same_ranking(got_hyb, want_hyb, tol=1e-5)
            continue
        depth = lexical.fusion_depth(K)
        dense = col.search(text, k=depth, where=where) if alpha > 0 else []
        lex = col.search(text, k=depth, mode="lexical", where=where)
        assert [h.id for h in got_lex] == [h.id for h in lex[:K]]
        same_ranking(got_hyb, lexical.fuse_hits(dense, lex, alpha, fusion, K), tol=1e-5)
        if len(want_lex) < K:
            assert {h.id for h in got_lex} == {h.id for h in want_lex}, text
        else:
            assert len(got_lex) == K, text
        assert real is not None
        want_real = {h.id for h in real.search(text, k=K, mode="lexical", where=where)}
        if want_real:
            shares.append(len(want_real & {h.id for h in got_lex}) / len(want_real))
    if shares:
        assert sum(shares) / len(shares) >= MIN_OVERLAP, (name, shares)


def check_pinecone_statistics(col: Collection, ref: Collection) -> None:
    """The journaled N and document frequencies equal a recount of the reference's records."""
    records = [r for page in ref.scroll() for r in page]
    df = Counter(lexical.term_id(t) for r in records for t in set(lexical.analyze(r.text or "", SPEC)))
    vocab = {lexical.term_id(t) for w in WORDS + UNSEEN for t in lexical.analyze(w, SPEC)} | set(df)
    hybrid = col.store._hybrid(col.name)  # type: ignore[attr-defined]
    n_docs, got = hybrid[1].lookup(vocab)
    assert n_docs == len(records)
    assert {t: c for t, c in got.items() if c} == dict(df)


@pytest.mark.parametrize("source", CONNECTORS)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=first_version, later=st.lists(edits, max_size=2), queries=st.lists(query, min_size=2, max_size=3),
       mirror=st.booleans(), batch=st.integers(2, 4))
def test_sync_then_migrate_to_every_connector(stores: dict[str, VectorStore], source: str,
                                             first: dict[str, Any], later: list[dict[str, Any]], queries: list[Any],
                                             mirror: bool, batch: int) -> None:
    embedder = HashEmbedder(DIM)
    n = next(_names)
    made: list[tuple[VectorStore, str]] = []
    try:
        ref = MemoryStore().collection("ref", embedder=embedder, hybrid=SPEC)
        src = stores[source].collection(f"s{n}", embedder=embedder, hybrid=SPEC)
        made.append((stores[source], f"s{n}"))
        for docs in documents(first, later):
            for col in (src, ref):
                report = sync_corpus(col, docs, mirror=mirror, batch_size=batch)
                assert report.ok, report
            check(source, src, ref, queries)
            if source == "pinecone-fake":
                check_pinecone_statistics(src, ref)
        for dest in CONNECTORS:
            if dest == source:
                continue
            made.append((stores[dest], f"d{n}"))
            report = migrate(src, (stores[dest], f"d{n}"), batch_size=batch + 1)
            assert report.ok and report.written == ref.count(), report
            dst = stores[dest].collection(f"d{n}", embedder=embedder)
            assert dst.spec.lexical == SPEC
            check(dest, dst, ref, queries)
            if dest == "pinecone-fake":
                check_pinecone_statistics(dst, ref)
    finally:
        for store, name in made:
            store.drop(name)


def test_the_words_make_the_terms_the_test_needs() -> None:
    """Guard the generator: mixed-script words make English and Chinese terms, the stopword text
    none, and padded texts get lengths of their own."""
    terms = {w: lexical.analyze(w, SPEC) for w in WORDS}
    assert terms["GPU加速"] == ["gpu", "加速"] and terms["bge模型v2"] == ["bge", "模型", "v2"]
    assert terms["ＧＰＵ"] == ["gpu"] and terms["中文分词"] == ["中文", "文分", "分词"]
    assert n_terms(STOP) == 0
    texts = Texts()
    made = [texts.make(f"doc{i}", ["apple", "向量"], i == 3) for i in range(6)]
    assert len({n_terms(t) for t in made}) == 6 and made[3] == STOP
