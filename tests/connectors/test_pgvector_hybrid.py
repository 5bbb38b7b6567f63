"""pgvector hybrid collections on the real server (PostgreSQL 18 + pgvector 0.8): what is stored,
IDF that follows the rows however they change, and the limits said by name.

The congruence with the memory reference over many queries is in
tests/conformance/test_hybrid_congruence.py, and through sync and migrate in
tests/hybrid/test_sync_migrate_property.py; here are the things particular to PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bge_vdb.connectors import pgvector_lexical as lex
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.connectors.pgvector import PgVectorStore
from bge_vdb.lexical import LexicalSpec
from bge_vdb.store import VectorStore
from bge_vdb.types import Document
from tests.conformance.suite import same_ranking
from tests.support.fake_embedder import HashEmbedder
from tests.support.pg_server import fresh_database
from tests.support.stores import STORE_FACTORIES

SPEC = LexicalSpec(avg_len=7.31)
DOCS = [Document(f"d{i}", text, {"n": i}) for i, text in enumerate([
    "apple river", "apple apple kernel 向量数据库", "river river 检索 kernel", "The of and",
    "GPU加速 apple", "kernel kernel kernel river apple", "向量 检索 数据库 river"])]
QUERIES = ["apple", "river kernel", "向量数据库", "gpu apple river", "检索"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    with STORE_FACTORIES["pgvector"](tmp_path) as s:
        yield s


def sql(store: VectorStore, statement: str, params: Any = None, write: bool = False) -> Any:
    run = store._write if write else store._read  # type: ignore[attr-defined]
    return run("test", lambda cur: cur.execute(statement, params).fetchall() if not write
               else cur.execute(statement, params))


def test_each_record_stores_its_term_weights_at_their_slots(store: VectorStore) -> None:
    col = store.collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)
    col.upsert(DOCS)
    rows = dict(sql(store, "SELECT id, bm25::text FROM hyb"))
    terms = dict(sql(store, "SELECT id, bm25_terms FROM hyb"))
    for doc in DOCS:
        weights, slots = lex.record_terms(col.fetch([doc.id])[0], SPEC)
        if weights is None:  # no terms: NULL, and the record still counts in N
            assert rows[doc.id] is None and terms[doc.id] is None
            continue
        text = rows[doc.id]  # pgvector's text form: {index:value,...}/dim, indices from 1
        body, dim = text.rsplit("/", 1)
        stored = {int(k) - 1: float(v) for k, v in (p.split(":") for p in body.strip("{}").split(","))}
        assert int(dim) == lex.SLOTS and terms[doc.id] == slots
        assert stored.keys() == weights.keys()
        assert all(abs(stored[s] - w) <= 1e-6 * w for s, w in weights.items())


def test_idf_follows_the_rows_however_they_change(store: VectorStore) -> None:
    """Statistics are counted from the rows: a delete by filter, a delete made with plain SQL
    outside bge-vdb and an overwrite all leave lexical search equal to the reference's."""
    col = store.collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)
    ref = MemoryStore().collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)

    def agree() -> None:
        for q in QUERIES:
            want = ref.search(q, k=5, mode="lexical")
            same_ranking(col.search(q, k=5, mode="lexical"), want, tol=1e-4 * max(1.0, want[0].score) if want else 1e-4)
            same_ranking(col.search(q, k=5, mode="hybrid", alpha=0.3), ref.search(q, k=5, mode="hybrid", alpha=0.3),
                         tol=1e-5)

    for c in (col, ref):
        c.upsert(DOCS)
    agree()
    for c in (col, ref):
        c.delete(where={"n": {"$gte": 5}})
    agree()
    sql(store, "DELETE FROM hyb WHERE id = 'd1'", write=True)
    ref.delete(["d1"])
    agree()
    for c in (col, ref):
        c.upsert([Document("d0", "kernel 向量 kernel river river", {"n": 0}), Document("d9", "apple", {"n": 9})])
    agree()


def test_a_text_of_too_many_terms_is_refused_by_record(store: VectorStore) -> None:
    col = store.collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)
    huge = " ".join(f"w{i}" for i in range(lex.MAX_NONZERO + 1))
    result = col.upsert([Document("ok", "apple"), Document("huge", huge)], raise_on_error=False)
    assert [f.id for f in result.failed] == ["huge"] and result.written == 1
    assert "16,001 distinct terms" in result.failed[0].reason and "at most 16,000" in result.failed[0].reason
    assert sorted(r.id for page in col.scroll() for r in page) == ["ok"]


def test_dense_and_hybrid_collections_share_one_catalogue(store: VectorStore) -> None:
    """A catalogue made by dense collections (no lexical column yet) takes a hybrid one; each
    keeps what it is."""
    store.collection("dense", embedder=HashEmbedder(8)).upsert(DOCS[:2])
    store.collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC).upsert(DOCS[:2])
    store.collection("dense2", embedder=HashEmbedder(8))
    assert store.describe_collection("dense").lexical is None  # type: ignore[union-attr]
    assert store.describe_collection("dense2").lexical is None  # type: ignore[union-attr]
    assert store.describe_collection("hyb").lexical == SPEC  # type: ignore[union-attr]
    store.drop("hyb")
    store.collection("hyb", embedder=HashEmbedder(8))  # the name again, dense-only this time
    assert store.describe_collection("hyb").lexical is None  # type: ignore[union-attr]


def test_concurrent_writers_leave_the_statistics_right() -> None:
    """Four stores (four connections) write, overwrite and delete records of one hybrid
    collection at once; afterwards lexical search equals the reference built from the final
    records. Kept statistics updated by each writer (Pinecone's way) could lose updates here."""
    words = ["apple", "river", "kernel", "向量", "检索", "数据库", "gpu", "cache"]

    def text(w: int, i: int, v: int) -> str:
        return " ".join(words[(w + i * j + v) % len(words)] for j in range(2 + (i + v + w) % 7))

    with fresh_database() as url:
        setup = PgVectorStore.from_url(url)
        setup.collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)
        stores = [PgVectorStore.from_url(url) for _ in range(4)]
        try:
            def work(w: int) -> None:
                col = stores[w].collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)
                for v in range(3):  # versions: every record rewritten, some deleted
                    col.upsert([Document(f"w{w}-{i}", text(w, i, v)) for i in range(12)])
                    col.delete([f"w{w}-{i}" for i in range(v, 12, 4)])

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(work, range(4)))
            col = setup.collection("hyb", embedder=HashEmbedder(8))
            final = [r for page in col.scroll(with_vectors=True) for r in page]
            assert len(final) == 4 * 9
            ref = MemoryStore().collection("hyb", embedder=HashEmbedder(8), hybrid=SPEC)
            ref.upsert(final)
            for q in ["apple", "river 检索", "向量数据库 gpu", "cache kernel apple"]:
                want = ref.search(q, k=10, mode="lexical")
                same_ranking(col.search(q, k=10, mode="lexical"), want, tol=1e-4 * max(1.0, want[0].score))
        finally:
            for s in [setup, *stores]:
                s.close()
