"""Tables made by other tools as collections, the catalogue, and names PostgreSQL cannot take."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from bge_vdb.connectors.pgvector import CATALOGUE, PgVectorStore
from bge_vdb.errors import CollectionError, InputError, WriteError
from bge_vdb.migrate import migrate
from bge_vdb.store import connect
from bge_vdb.types import Distance, Record
from tests.support.pg_server import fresh_database


@pytest.fixture
def pg() -> Iterator[tuple[str, PgVectorStore]]:
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        store = PgVectorStore.from_url(url)
        try:
            yield url, store
        finally:
            store.close()


def _sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt)  # type: ignore[arg-type]


def test_a_langchain_like_table_with_a_uuid_id(pg: tuple[str, PgVectorStore]) -> None:
    """uuid primary key, `document` text, `cmetadata` jsonb: read, searched, filtered, written."""
    url, store = pg
    _sql(url, "CREATE TABLE lc (id uuid PRIMARY KEY, embedding vector(3), document varchar, cmetadata jsonb)",
         "INSERT INTO lc VALUES ('00000000-0000-0000-0000-000000000001', '[1,0,0]', 'one', '{\"k\": 1}'), "
         "('00000000-0000-0000-0000-000000000002', '[0,1,0]', 'two', '{\"k\": 2.0}')")
    spec = store.describe_collection("lc")
    assert spec is not None and (spec.dim, spec.distance, spec.fingerprint) == (3, Distance.COSINE, None)
    col = store.collection("lc", dim=3)
    (hit,) = col.search([1, 0.1, 0], k=1)
    assert (hit.id, hit.text, hit.metadata) == ("00000000-0000-0000-0000-000000000001", "one", {"k": 1})
    assert [r.id for p in col.scroll(1, where={"k": 2}) for r in p] == ["00000000-0000-0000-0000-000000000002"]
    # Writes go through the per-row path (the id is not text) and PostgreSQL parses the uuid.
    col.upsert([Record("00000000-0000-0000-0000-000000000003", [0, 0, 1], "three", {"k": 3})])
    assert col.count() == 3 and col.fetch(["00000000-0000-0000-0000-000000000003"])[0].text == "three"
    with pytest.raises(WriteError, match="uuid"):
        col.upsert([Record("not-a-uuid", [0, 0, 1])])
    col.delete(ids=["00000000-0000-0000-0000-000000000001", "not-a-uuid"])
    assert col.count() == 2


def test_a_llamaindex_like_table_with_a_bigint_id_and_json_metadata(pg: tuple[str, PgVectorStore]) -> None:
    url, store = pg
    _sql(url, "CREATE TABLE data_docs (id bigserial PRIMARY KEY, text varchar NOT NULL, metadata_ json, "
              "node_id varchar, embedding vector(2), created timestamptz NOT NULL DEFAULT now())",
         "INSERT INTO data_docs (text, metadata_, embedding) VALUES ('a', '{\"lang\": \"en\", \"n\": 1.0}', '[1,0]'), "
         "('b', '{\"lang\": \"zh\"}', '[0,1]'), ('c', NULL, '[1,1]')")
    col = store.collection("data_docs", dim=2)
    assert {r.id: r.metadata for p in col.scroll(2) for r in p} == {"1": {"lang": "en", "n": 1.0}, "2": {"lang": "zh"}, "3": {}}
    assert col.count(where={"lang": {"$ne": "en"}}) == 2 and col.count(where={"n": 1}) == 1
    col.upsert([Record("10", [1, 0], "ten", {"lang": "fr"})])  # the default fills `created`
    assert col.fetch(["10"])[0].metadata == {"lang": "fr"}


def test_migrate_out_of_a_foreign_table_into_another_store(pg: tuple[str, PgVectorStore]) -> None:
    url, store = pg
    _sql(url, "CREATE TABLE items (id text PRIMARY KEY, embedding vector(3), content text, meta jsonb)",
         "INSERT INTO items SELECT 'i' || g, l2_normalize(('[' || g || ',1,0]')::vector), 'item ' || g, "
         "jsonb_build_object('g', g) FROM generate_series(1, 30) g")
    src = store.collection("items", dim=3)
    with connect("memory://") as dst:
        report = migrate(src, (dst, "items"), batch_size=7)
        assert report.ok and report.written == 30 and report.normalized == 0
        (rec,) = dst.collection("items", dim=3).fetch(["i7"])
        assert (rec.text, rec.metadata) == ("item 7", {"g": 7})


def test_what_cannot_be_a_collection(pg: tuple[str, PgVectorStore]) -> None:
    url, store = pg
    _sql(url, "CREATE TABLE novec (id text PRIMARY KEY, body text)",
         "CREATE TABLE twovec (id text PRIMARY KEY, a vector(2), b vector(2))",
         "CREATE TABLE nokey (id text, embedding vector(2))",
         "CREATE TABLE nodim (id text PRIMARY KEY, embedding vector, body text)",
         "CREATE TABLE l2 (id text PRIMARY KEY, embedding vector(2))",
         "CREATE INDEX ON l2 USING hnsw (embedding vector_l2_ops)")
    for name, message in (("novec", "exactly one"), ("twovec", "exactly one"), ("nokey", "primary key")):
        with pytest.raises(CollectionError, match=message):
            store.describe_collection(name)
    spec = store.describe_collection("nodim")  # `vector` without a dimension: takes the one asked
    assert spec is not None and spec.dim == 0
    assert store.collection("nodim", dim=2).dim == 2
    spec = store.describe_collection("l2")
    assert spec is not None and spec.distance == Distance.EUCLID
    assert "novec" not in store.list_collections() and CATALOGUE not in store.list_collections()


def test_records_a_foreign_table_cannot_hold_are_refused_by_id(pg: tuple[str, PgVectorStore]) -> None:
    url, store = pg
    _sql(url, "CREATE TABLE bare (id text PRIMARY KEY, embedding vector(2))")
    col = store.collection("bare", dim=2)
    res = col.upsert([Record("plain", [1, 0]), Record("texty", [0, 1], "some text"),
                      Record("meta", [1, 1], None, {"k": 1})], raise_on_error=False)
    assert res.written == 1 and {f.id: f.reason.split(" (")[0] for f in res.failed} == {
        "texty": "the table has no text column", "meta": "the table has no json/jsonb metadata column"}
    assert [r.id for p in col.scroll() for r in p] == ["plain"]
    assert col.count(where={"k": {"$exists": False}}) == 1  # no metadata column: every key is missing


def test_names_postgresql_cannot_take(pg: tuple[str, PgVectorStore]) -> None:
    _, store = pg
    for name in ("x" * 64, "é" * 32, "nul\x00byte", CATALOGUE):
        with pytest.raises(InputError):
            store.collection(name, dim=2)
    store.collection("x" * 63, dim=2)  # 63 bytes is PostgreSQL's limit, and fits
    assert store.list_collections() == ["x" * 63]


def test_the_catalogue(pg: tuple[str, PgVectorStore]) -> None:
    url, store = pg
    with connect(url, index="hnsw", m=8, ef_construction=32) as indexed:
        indexed.collection("docs", dim=4)
    with psycopg.connect(url) as conn:
        row: Any = conn.execute(f"SELECT dim, distance, index FROM {CATALOGUE} WHERE name = 'docs'").fetchone()
    assert row == (4, "cosine", {"method": "hnsw", "m": 8, "ef_construction": 32})
    _sql(url, "DROP TABLE docs")  # dropped by hand: the stale catalogue row does not resurrect it
    assert store.describe_collection("docs") is None and store.list_collections() == []
    store.collection("docs", dim=6)
    spec = store.describe_collection("docs")
    assert spec is not None and spec.dim == 6


def test_read_only_calls_create_nothing() -> None:
    with fresh_database() as url, connect(url) as store:
        assert store.list_collections() == [] and store.describe_collection("docs") is None
        with pytest.raises(Exception, match="does not exist"):
            store.collection("docs", dim=2, create=False)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (0,)
            assert conn.execute("SELECT to_regclass(%s)", (CATALOGUE,)).fetchone() == (None,)


def test_vectors_round_trip_bit_for_bit(pg: tuple[str, PgVectorStore]) -> None:
    _, store = pg
    col = store.collection("bits", dim=16)
    vecs = np.random.default_rng(5).normal(size=(50, 16))
    col.upsert([Record(f"v{i}", v) for i, v in enumerate(vecs)])
    want = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    got = {r.id: r.vector for r in col.fetch([f"v{i}" for i in range(50)], with_vectors=True)}
    for i in range(50):
        assert got[f"v{i}"].dtype == np.float32 and np.array_equal(got[f"v{i}"], want[i])
