"""Hybrid collections through migrate and sync_corpus: the lexical side is carried along.

Migrating a hybrid collection between two databases (the memory store and real Qdrant local
mode, both ways) creates a hybrid destination with the same lexical settings, whose lexical and
hybrid rankings then equal the source's; an existing dense-only destination is refused before
anything is written. sync_corpus into a hybrid collection keeps BM25 following the corpus as
documents are added, changed and removed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import NotHybrid
from bge_vdb.lexical import LexicalSpec
from bge_vdb.migrate import migrate
from bge_vdb.store import VectorStore, connect
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Record
from tests.conformance.suite import same_ranking
from tests.support.fake_embedder import HashEmbedder

from .conftest import DIM, SRC_EMBEDDER, make_records

# Not a round number: with avg_len=12, tf=1 at length L ties tf=2 at length 2L + 4.
SPEC = LexicalSpec(avg_len=12.345)
QUERIES = ["vector", "文档 stores", "migrating number 7", "数据"]


@pytest.fixture
def qdrant() -> Iterator[VectorStore]:
    with connect("qdrant://:memory:") as store:
        yield store


WORDS = ["vector", "stores", "migrating", "number", "文档", "数据", "apple", "river", "the"]


def varied_records(n: int) -> list[Record]:
    """make_records with texts of varied words, each of its own length (so BM25 scores do not tie:
    RRF over tied lists depends on how each database orders the ties)."""
    rng = random.Random(3)
    return [replace(r, text=" ".join(rng.choices(WORDS[:-1], k=2 + i))) for i, r in enumerate(make_records(n))]


def same_rankings(a: object, b: object, mode: str) -> None:
    for q in QUERIES:
        same_ranking(a.search(q, k=8, mode=mode), b.search(q, k=8, mode=mode), tol=1e-5)  # type: ignore[attr-defined]


@pytest.mark.parametrize("direction", ["memory->qdrant", "qdrant->memory"])
def test_migrating_a_hybrid_collection_keeps_it_hybrid(direction: str, qdrant: VectorStore) -> None:
    memory = MemoryStore()
    src_store, dst_store = (memory, qdrant) if direction == "memory->qdrant" else (qdrant, memory)
    src = src_store.collection("src", embedder=SRC_EMBEDDER, hybrid=SPEC)
    src.upsert(varied_records(40))
    report = migrate(src, (dst_store, "dst"))
    assert report.written == 40 and not report.failed
    dst = dst_store.collection("dst", embedder=SRC_EMBEDDER)
    assert dst.spec.lexical == SPEC
    assert dst.search("vector", mode="lexical")
    same_rankings(dst, src, "lexical")
    same_rankings(dst, src, "hybrid")


def test_a_dense_only_destination_is_refused_before_writing(qdrant: VectorStore) -> None:
    src = MemoryStore().collection("src", embedder=SRC_EMBEDDER, hybrid=True)
    src.upsert(make_records(5))
    qdrant.collection("dst", embedder=SRC_EMBEDDER)
    with pytest.raises(NotHybrid, match="dense-only"):
        migrate(src, (qdrant, "dst"))
    assert qdrant.collection("dst").count() == 0


def test_sync_corpus_keeps_bm25_following_the_corpus(qdrant: VectorStore) -> None:
    embedder = HashEmbedder(dim=DIM)
    col = qdrant.collection("docs", embedder=embedder, hybrid=SPEC)
    ref = MemoryStore().collection("docs", embedder=embedder, hybrid=SPEC)
    versions = [
        [{"id": "a", "text": "apple pie recipe"}, {"id": "b", "text": "river 向量 apple"},
         {"id": "c", "text": "向量数据库 检索"}],
        [{"id": "a", "text": "banana bread"}, {"id": "b", "text": "river 向量 apple"},
         {"id": "d", "text": "apple apple cider"}],  # a changed, c removed, d added
    ]
    for docs in versions:
        sync_corpus(col, docs, mirror=True)
        sync_corpus(ref, docs, mirror=True)
        for q in ("apple", "向量", "banana river"):
            same_ranking(col.search(q, mode="lexical"), ref.search(q, mode="lexical"), tol=1e-5)
    assert [h.id for h in col.search("pie", mode="lexical")] == []
