"""sync_corpus on every connector: incremental, mirror, scope, split, dry run."""

from __future__ import annotations

from typing import Any

from bge_vdb.store import VectorStore
from bge_vdb.sync import group_hits, sync_corpus
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder


def corpus(n: int, source: str = "a", prefix: str = "doc") -> list[Document]:
    return [Document(f"{prefix}{i}", f"text number {i} about topic {i % 7} from {source}",
                     {"source": source, "n": i}) for i in range(n)]


def stored(store: VectorStore, name: str = "c") -> dict[str, Any]:
    col = store.collection(name, dim=16, create=False)
    return {r.id: r for page in col.scroll(100) for r in page}


def open_col(store: VectorStore, emb: HashEmbedder, name: str = "c") -> Any:
    return store.collection(name, embedder=emb)


def test_first_sync_then_unchanged_resync(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    docs = corpus(30)
    rep = sync_corpus(col, docs, batch_size=8)
    assert (rep.added, rep.updated, rep.unchanged, rep.failed) == (30, 0, 0, [])
    assert rep.embedded == 30 and rep.written == 30
    rows = stored(store)
    assert sorted(rows) == sorted(d.id for d in docs)
    assert rows["doc3"].text == docs[3].text and rows["doc3"].metadata == {"source": "a", "n": 3}
    assert col.fingerprint is not None and col.fingerprint["model"] == embedder.name

    embedder.embedded_texts.clear()
    rep2 = sync_corpus(col, docs, batch_size=8)
    assert (rep2.added, rep2.updated, rep2.unchanged) == (0, 0, 30)
    assert rep2.embedded == 0 and rep2.written == 0 and embedder.embedded_texts == []
    assert col.count() == 30


def test_change_add_delete_embeds_exactly_those(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    docs = corpus(20)
    sync_corpus(col, docs)
    docs[2] = Document("doc2", "a completely new text", docs[2].metadata)
    docs[5] = Document("doc5", docs[5].text, {"source": "a", "n": 500})  # metadata change only
    del docs[7]
    docs.append(Document("new1", "freshly added document", {"source": "a"}))
    embedder.embedded_texts.clear()
    rep = sync_corpus(col, docs)
    assert (rep.added, rep.updated, rep.unchanged, rep.deleted) == (1, 2, 17, 0)
    assert rep.update_reasons == {"content changed": 2}
    assert sorted(embedder.embedded_texts) == sorted(["a completely new text", docs[5].text,
                                                      "freshly added document"])
    rows = stored(store)
    assert rows["doc2"].text == "a completely new text" and rows["doc5"].metadata["n"] == 500
    assert "doc7" in rows  # not mirror: nothing deleted
    # The stored vector is the embedder's vector of the new text.
    vec = col.fetch(["doc2"], with_vectors=True)[0].vector
    assert abs(float(vec @ embedder.embed_documents(["a completely new text"])[0]) - 1.0) < 1e-5


def test_mirror_deletes_unseen_only_within_scope(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    a, b = corpus(10, "a", "a"), corpus(5, "b", "b")
    sync_corpus(col, a + b)
    rep = sync_corpus(col, a[:6], mirror=True, scope={"source": "a"})
    assert (rep.deleted, rep.unchanged, rep.mirror_note) == (4, 6, None)
    assert sorted(stored(store)) == sorted([d.id for d in a[:6]] + [d.id for d in b])
    rep2 = sync_corpus(col, b[:1], mirror=True)  # no scope: everything not seen goes
    assert rep2.deleted == 10 and sorted(stored(store)) == ["b0"]


def test_mirror_deletes_nothing_when_a_record_failed(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    sync_corpus(col, corpus(5))
    rep = sync_corpus(col, [*corpus(2), {"id": "bad", "text": ""}], mirror=True)
    assert rep.deleted == 0 and [f.id for f in rep.failed] == ["bad"]
    assert rep.mirror_note is not None and "nothing deleted" in rep.mirror_note
    assert col.count() == 5


def test_split_documents_grow_and_shrink(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    words = [f"w{i}" for i in range(200)]
    long_doc = Document("big", " ".join(words[:100]), {"source": "s"})  # 102 tokens > 40
    rep = sync_corpus(col, [long_doc, Document("small", "tiny text")], on_long="split", overlap=8)
    chunks = embedder.split_text(long_doc.text, overlap=8)
    n = len(chunks)
    assert n >= 3 and rep.split == 1 and rep.added == 2 and rep.truncated == 0
    rows = stored(store)
    assert sorted(rows) == sorted(["small"] + [f"big#{i}" for i in range(n)])
    assert all(rows[f"big#{i}"].metadata["parent_id"] == "big" for i in range(n))
    assert rows["big#1"].text == chunks[1] and rows["big#0"].metadata["chunk_count"] == n

    # Grows: the unchanged leading chunks are neither re-embedded nor rewritten (chunk 0, the
    # marker, is rewritten because it carries the document's hash).
    grown = Document("big", " ".join(words[:180]), {"source": "s"})
    new_chunks = embedder.split_text(grown.text, overlap=8)
    embedder.embedded_texts.clear()
    rep = sync_corpus(col, [grown, Document("small", "tiny text")], on_long="split", overlap=8)
    assert rep.updated == 1 and rep.unchanged == 1
    reused = sum(1 for i in range(1, n) if chunks[i] == new_chunks[i])
    assert reused >= 1 and rep.embedded == len(new_chunks) - reused
    assert sorted(stored(store)) == sorted(["small"] + [f"big#{i}" for i in range(len(new_chunks))])

    # Shrinks: surplus chunks are deleted.
    shrunk = Document("big", " ".join(words[:60]), {"source": "s"})
    k = len(embedder.split_text(shrunk.text, overlap=8))
    assert 1 < k < len(new_chunks)
    sync_corpus(col, [shrunk], on_long="split", overlap=8)
    assert sorted(stored(store)) == sorted(["small"] + [f"big#{i}" for i in range(k)])

    # Fits again: stored whole under its own id, chunks gone.
    sync_corpus(col, [Document("big", "short now")], on_long="split", overlap=8)
    assert sorted(stored(store)) == ["big", "small"]

    # Hits group back to documents.
    sync_corpus(col, [long_doc], on_long="split", overlap=8)
    hits = col.search("w1 w2 w3 w4 w5", k=10)
    groups = group_hits(hits)
    assert [g.id for g in groups].count("big") == 1
    big = next(g for g in groups if g.id == "big")
    assert big.score == max(h.score for h in hits if h.id.startswith("big#"))


def test_truncate_and_error_modes(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    long_text = " ".join(f"w{i}" for i in range(100))
    rep = sync_corpus(col, [Document("long", long_text), Document("ok", "fine")])
    assert rep.truncated == 1 and rep.added == 2 and rep.tokens == 40 + 3
    rep = sync_corpus(col, [Document("long2", long_text)], on_long="error")
    assert rep.added == 0 and [f.id for f in rep.failed] == ["long2"]
    assert "102 tokens" in rep.failed[0].reason and "on_long='split'" in rep.failed[0].reason
    # A document stored truncated is re-split when the mode becomes split.
    rep = sync_corpus(col, [Document("long", long_text)], on_long="split")
    assert rep.updated == 1 and rep.split == 1
    assert "long" not in stored(store) and "long#0" in stored(store)
    # Metadata keys that split chunks carry are refused rather than silently overwritten.
    rep = sync_corpus(col, [Document("clash", long_text, {"parent_id": "mine"})], on_long="split")
    assert [f.id for f in rep.failed] == ["clash"] and "parent_id" in rep.failed[0].reason


def test_dry_run_plans_without_writing(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    docs = corpus(10)
    plan = sync_corpus(col, docs, dry_run=True)
    assert plan.dry_run and (plan.added, plan.embedded) == (10, 10)
    assert plan.tokens == sum(embedder.count_tokens([d.text for d in docs]))
    assert col.count() == 0 and embedder.embedded_texts == []
    sync_corpus(col, docs)
    docs[0] = Document("doc0", "changed", {})
    plan = sync_corpus(col, docs[:8], dry_run=True, mirror=True)
    assert (plan.added, plan.updated, plan.unchanged, plan.deleted) == (0, 1, 7, 2)
    assert col.count() == 10 and "would be" in str(plan)


def test_model_change_reembeds_everything(store: VectorStore, embedder: HashEmbedder) -> None:
    col = open_col(store, embedder)
    docs = corpus(6)
    sync_corpus(col, docs)
    other = HashEmbedder(dim=16, name="test/other-model", max_length=40)
    col2 = store.collection("c", embedder=other, check_fingerprint=False)
    rep = sync_corpus(col2, docs)
    assert rep.updated == 6 and rep.update_reasons == {"model changed": 6}
    assert rep.fingerprint_note is not None and "test/other-model" in rep.fingerprint_note
    assert store.describe_collection("c").fingerprint["model"] == "test/other-model"  # type: ignore[union-attr, index]
    assert sync_corpus(col2, docs).unchanged == 6
