"""Hybrid asked of what cannot give it: the error is NotHybrid, says why and how to fix it, and
changes nothing, on every connector.

* A dense-only collection opened with ``hybrid=True``, searched with ``mode="hybrid"`` or
  ``"lexical"``, or named as the destination of a hybrid migration: every connector refuses,
  saying the collection is dense-only and how to get a hybrid one.
* A database that cannot hold a hybrid collection (the Milvus 2.3 server; see
  :data:`CANNOT` for what each lacks): creating one, opening a dense-only one with
  ``hybrid=True`` and searching one in hybrid mode all say what the database lacks (not
  "create it with hybrid=True", which would fail again), and create nothing. A pgvector older
  than 0.7 (no ``sparsevec``) cannot run here (the embedded servers ship 0.8): the decision and
  its message are tested on the version strings PostgreSQL reports.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bge_vdb.connectors import pgvector_lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import NotHybrid
from bge_vdb.migrate import migrate
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES

DIM = 8
# What a database that cannot hold hybrid collections must name (a regular expression).
CANNOT = {"milvus-standalone": r"version v?2\.3\.\d.*no BM25 function \(use Milvus 2\.5 or newer, or Milvus Lite\)"}
HYBRID = sorted(set(STORE_FACTORIES) - set(CANNOT))


@pytest.mark.parametrize("connector", sorted(STORE_FACTORIES))
def test_a_dense_only_collection_refuses_hybrid_and_says_how(connector: str, tmp_path: Path) -> None:
    with STORE_FACTORIES[connector](tmp_path) as store:
        col = store.collection("dense", embedder=HashEmbedder(DIM))
        col.upsert([Document("a", "apple river"), Document("b", "向量 检索")])
        fix = "hybrid=True" if connector in HYBRID else CANNOT[connector]
        with pytest.raises(NotHybrid) as opened:
            store.collection("dense", embedder=HashEmbedder(DIM), hybrid=True)
        assert re.search(fix, str(opened.value)), opened.value
        assert connector in CANNOT or "dense-only" in str(opened.value)
        for mode in ("hybrid", "lexical"):
            with pytest.raises(NotHybrid, match="dense-only") as searched:
                col.search("apple", mode=mode)
            assert re.search(fix, str(searched.value)), searched.value

        src = MemoryStore().collection("src", embedder=HashEmbedder(DIM), hybrid=True)
        src.upsert([Document("c", "cherry")])
        with pytest.raises(NotHybrid):
            migrate(src, (store, "dense"))
        assert sorted(r.id for page in col.scroll() for r in page) == ["a", "b"]  # nothing written
        assert store.list_collections() == ["dense"]


@pytest.mark.parametrize("connector", sorted(CANNOT))
def test_a_database_without_hybrid_names_what_it_lacks(connector: str, tmp_path: Path) -> None:
    with STORE_FACTORIES[connector](tmp_path) as store:
        with pytest.raises(NotHybrid, match=CANNOT[connector]):
            store.collection("hyb", embedder=HashEmbedder(DIM), hybrid=True)
        src = MemoryStore().collection("src", embedder=HashEmbedder(DIM), hybrid=True)
        src.upsert([Document("c", "cherry")])
        with pytest.raises(NotHybrid, match=CANNOT[connector]):
            migrate(src, (store, "hyb"))
        assert store.list_collections() == []


@pytest.mark.parametrize(("version", "refused"), [("0.5.1", True), ("0.6.2", True), ("0.7.0", False),
                                                  ("0.8.1", False), ("1.0", False), (None, True)])
def test_pgvector_older_than_0_7_is_refused_saying_why(version: str | None, refused: bool) -> None:
    why = pgvector_lexical.refusal(version, "PgVectorStore('db')")
    assert (why is not None) == refused
    if version is not None and refused:
        assert why == (f"PgVectorStore('db') has pgvector {version}, which has no sparsevec type for "
                       f"BM25 term weights (use pgvector 0.7 or newer)")
    if version is None:
        assert why == "PgVectorStore('db') has no pgvector extension available"


def test_pgvector_says_which_version_it_has(tmp_path: Path) -> None:
    """The version the refusal reads is the server's: None (hybrid is possible) on the 0.8 the
    tests run, and the version it read is the one PostgreSQL reports."""
    with STORE_FACTORIES["pgvector"](tmp_path) as store:
        assert store.hybrid_refusal() is None
        version = store._read("v", lambda cur: cur.execute(  # type: ignore[attr-defined]
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()[0])
        assert pgvector_lexical.version_tuple(version) >= (0, 7)
