"""The six integrity defects of issue 13 that touch sync, and the step size of issue 14 item 11,
each as a plain named regression test (every one failed on the code before the fix).

Faults are injected at the connector's edge (tests/support/faults.py ``FaultyStore``) around the
real reference store; the embedder is the hash test double (its tokens are words).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import JobCancelled, SyncInterrupted
from bge_vdb.store import Collection, VectorStore
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document, Record, UpsertResult
from tests.support.fake_embedder import HashEmbedder
from tests.support.faults import Crash, FaultyStore

SPLIT = {"on_long": "split", "overlap": 2}  # max_length 12: windows of 10 words, 8 new per window


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def embedder() -> HashEmbedder:
    return HashEmbedder(dim=16, max_length=12)


def snapshot(col: Collection) -> dict[str, tuple[str | None, dict[str, Any], str | None]]:
    return {r.id: (r.text, dict(r.metadata), r.content_hash) for page in col.scroll(100) for r in page}


def clean(docs: Sequence[Document], **kw: Any) -> dict[str, tuple[str | None, dict[str, Any], str | None]]:
    """What a clean sync of ``docs`` into an empty store holds."""
    col = MemoryStore().collection("c", embedder=embedder())
    assert sync_corpus(col, docs, **kw).ok
    return snapshot(col)


def holds(*ids: str) -> Any:
    """A crash predicate: the store already holds every one of ``ids``."""
    def pred(op: str, arg: Any, inner: VectorStore) -> bool:
        return len(inner.fetch_records("c", list(ids), False)) == len(ids)
    return pred


def writes(rec_id: str, then: Any) -> Any:
    def pred(op: str, arg: Any, inner: VectorStore) -> bool:
        return op == "upsert_records" and any(r.id == rec_id for r in arg) and then(op, arg, inner)
    return pred


# ------------------------------------------------------------------------- defect 1

def test_rolled_back_split_document_after_an_interrupted_update_is_not_reported_unchanged() -> None:
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=embedder())
    v1, v2 = Document("d", words(25, "a")), Document("d", words(40, "b"))  # 3 chunks, then 5
    assert sync_corpus(col, [v1], **SPLIT).ok
    # Killed after v2's chunks landed, before its #0 marker.
    store.crash_if(writes("d#0", holds("d#1", "d#2", "d#3", "d#4")))
    with pytest.raises(Crash):
        sync_corpus(col, [v2], **SPLIT)
    assert store.crashes == 1
    rep = sync_corpus(col, [v1], **SPLIT)  # the source rolled back to v1
    assert rep.ok and (rep.unchanged, rep.updated) == (0, 1)
    assert snapshot(col) == clean([v1], **SPLIT)  # no v2 text in d#1..d#2, no orphan d#3, d#4


# ------------------------------------------------------------------------- defect 2

def test_interrupted_first_split_then_a_short_edit_leaves_no_orphan_chunks() -> None:
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=embedder())
    store.crash_if(writes("d#0", holds("d#1", "d#2", "d#3")))
    with pytest.raises(Crash):
        sync_corpus(col, [Document("d", words(35, "a"))], **SPLIT)  # 4 chunks, new document
    assert store.crashes == 1
    short = Document("d", "now a short text")
    assert sync_corpus(col, [short], **SPLIT).ok
    assert snapshot(col) == clean([short], **SPLIT)  # only 'd'


# ------------------------------------------------------------------------- defect 3

@pytest.mark.parametrize("on_long", ["split", "truncate"])
def test_a_user_id_shaped_like_a_chunk_id_is_refused(on_long: str) -> None:
    col = MemoryStore().collection("c", embedder=embedder())
    x = Document("x", words(30, "x"))
    for _ in range(2):  # and again: never a silent "ok"
        rep = sync_corpus(col, [x, Document("x#1", "a short text"), Document("y#2b", "fine")],
                          on_long=on_long, overlap=2)
        assert [f.id for f in rep.failed] == ["x#1"] and not rep.ok
        assert "'#' followed by digits" in rep.failed[0].reason
    held = snapshot(col)
    assert "y#2b" in held  # '#' elsewhere in an id is fine
    if on_long == "split":
        assert held == {**clean([x], on_long="split", overlap=2), "y#2b": held["y#2b"]}
        assert held["x#1"][1]["parent_id"] == "x"


# ------------------------------------------------------------------------- defect 5

def docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"document {i} text", {"i": i}) for i in range(n)]


def test_a_failing_source_iterator_surfaces_with_the_partial_report() -> None:
    col = MemoryStore().collection("c", embedder=embedder())

    def source() -> Iterator[Document]:
        yield from docs(30)
        raise OSError("disk read error")

    with pytest.raises(SyncInterrupted) as info:
        sync_corpus(col, source(), batch_size=10)
    rep = info.value.report
    assert isinstance(info.value.__cause__, OSError) and "disk read error" in str(info.value)
    assert (rep.documents, rep.added, rep.written) == (30, 30, 30) and not rep.ok
    assert rep.aborted is not None and "disk read error" in rep.aborted
    assert col.count() == 30


class DyingEmbedder(HashEmbedder):
    """Raises ``error`` once it has been asked to embed more than ``budget`` texts in total."""

    def __init__(self, budget: int, error: BaseException) -> None:
        super().__init__(dim=16, max_length=12)
        self.budget, self.error, self.asked = budget, error, 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.asked += len(texts)
        if self.asked > self.budget:
            raise self.error
        return super().embed_documents(texts)


def test_a_failing_embedder_surfaces_with_the_partial_report() -> None:
    emb = DyingEmbedder(20, RuntimeError("CUDA out of memory"))
    col = MemoryStore().collection("c", embedder=emb)
    with pytest.raises(SyncInterrupted) as info:
        sync_corpus(col, docs(50), batch_size=10)
    rep = info.value.report
    assert isinstance(info.value.__cause__, RuntimeError)
    assert rep.added == 20 and col.count() == 20 and not rep.ok


def test_ctrl_c_is_still_a_keyboard_interrupt_and_carries_the_partial_report() -> None:
    emb = DyingEmbedder(20, KeyboardInterrupt())
    col = MemoryStore().collection("c", embedder=emb)
    with pytest.raises(KeyboardInterrupt) as info:
        sync_corpus(col, docs(50), batch_size=10)
    assert isinstance(info.value, JobCancelled)
    assert info.value.report.added == 20 and col.count() == 20


# ------------------------------------------------------------------------- defect 6

def test_one_refused_record_does_not_fail_its_batch() -> None:
    store = FaultyStore(MemoryStore())
    store.refuse_mode = "batch"  # the server rejects the whole request for one bad record
    col = store.collection("c", embedder=embedder())
    store.refused = {"d3"}
    rep = sync_corpus(col, docs(10))
    assert [f.id for f in rep.failed] == ["d3"] and "refused by the database" in rep.failed[0].reason
    assert rep.added == 9 and col.count() == 9


def test_write_bisects_a_refused_batch_with_a_bounded_number_of_calls() -> None:
    store = FaultyStore(MemoryStore())
    store.refuse_mode = "batch"
    col = store.collection("c", dim=4)
    recs = [Record(f"r{i:03d}", np.eye(4, dtype=np.float32)[i % 4]) for i in range(500)]
    store.refused = {"r007", "r321"}
    res = col.write(recs, UpsertResult())
    assert sorted(f.id for f in res.failed) == ["r007", "r321"] and res.written == 498
    assert store.writes <= 40  # about 2 * 2 * log2(500) calls, not one per record
    store.refused = {r.id for r in recs}  # a systemic refusal: bounded too, everything reported
    before = store.writes
    res = col.write(recs, UpsertResult())
    assert len(res.failed) == 500 and res.written == 0 and store.writes - before <= 80
    assert all(isinstance(f.reason, str) and "refused" in f.reason for f in res.failed)


def test_a_refused_delete_is_reported_and_not_bisected() -> None:
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=embedder())
    assert sync_corpus(col, [Document("d", words(40, "a"))], **SPLIT).ok
    store.refused = {"d#4"}
    rep = sync_corpus(col, [Document("d", words(25, "a"))], **SPLIT)  # shrinks: d#3, d#4 go
    assert [f.id for f in rep.failed] == ["d"] and "d#4" in rep.failed[0].reason
    store.refused = set()
    assert sync_corpus(col, [Document("d", words(25, "a"))], **SPLIT).ok
    assert snapshot(col) == clean([Document("d", words(25, "a"))], **SPLIT)


# ---------------------------------------------------------- issue 14, item 11: step size

def test_a_crash_mid_batch_keeps_the_chunks_embedded_before_it() -> None:
    """Work per embed/write step is bounded by texts, not documents: a batch of long documents
    is written in steps, so a Ctrl-C keeps what was embedded before it (counted, not timed)."""
    store = MemoryStore()
    big = [Document(f"big{k}", words(200, f"w{k}-")) for k in range(2)]  # 25 chunks each
    dying = DyingEmbedder(40, KeyboardInterrupt())  # "Ctrl-C after a few seconds"
    col = store.collection("c", embedder=dying)
    with pytest.raises(KeyboardInterrupt):
        sync_corpus(col, big, batch_size=16, **SPLIT)
    kept = store.count("c")
    assert kept >= 30  # two steps of 16 texts landed before the interrupt
    survivors = {r.text for page in col.scroll(100) for r in page}

    emb = embedder()
    rep = sync_corpus(store.collection("c", embedder=emb), big, batch_size=16, **SPLIT)
    assert rep.ok and snapshot(col) == clean(big, **SPLIT)
    assert len(emb.embedded_texts) <= 50 - kept + 2  # the landed chunks are not embedded again
    assert len(set(emb.embedded_texts) & survivors) <= 2  # at most the two #0 markers


def test_progress_reaches_the_store_in_steps_of_at_most_batch_size_texts() -> None:
    sizes: list[int] = []

    class Spy(MemoryStore):
        def upsert_records(self, name: str, records: Sequence[Record]) -> Any:
            sizes.append(len(records))
            return super().upsert_records(name, records)

    col = Spy().collection("c", embedder=embedder())
    rep = sync_corpus(col, [Document(f"big{k}", words(200, f"w{k}-")) for k in range(3)], batch_size=8, **SPLIT)
    assert rep.ok and rep.written == 75 and max(sizes) <= 8


def test_collection_write_still_stops_on_transient_errors() -> None:
    """Bisection is for permanent refusals only: a transient failure after retries still stops."""
    from bge_vdb.errors import TransientError
    from bge_vdb.retry import RetryPolicy

    class Down(MemoryStore):
        calls = 0

        def upsert_records(self, name: str, records: Sequence[Record]) -> Any:
            Down.calls += 1
            raise TransientError("503")

    store = Down()
    store.retry_policy = RetryPolicy(attempts=2, sleep=lambda _s: None)
    store.max_batch_count = 10  # type: ignore[misc]
    col = store.collection("c", dim=4)
    res = col.write([Record(f"r{i}", np.eye(4, dtype=np.float32)[0]) for i in range(30)])
    assert Down.calls == 2 and len(res.failed) == 30 and all(f.transient for f in res.failed)


@pytest.mark.parametrize(("error", "code"), [(RuntimeError("CUDA out of memory"), 1), (KeyboardInterrupt(), 130)])
def test_cli_sync_prints_the_partial_report_of_an_interrupted_run(
        error: BaseException, code: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from bge_vdb import cli

    monkeypatch.setattr(cli, "_open_embedder", lambda *a, **k: DyingEmbedder(20, error))
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(50)))
    url = f"qdrant://{tmp_path / 'q'}"
    assert cli.main(["sync", str(src), "--to", url, "--collection", "c", "--batch-size", "10", "--json"]) == code
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["added"] == 20 and report["written"] == 20 and not report["ok"]
    assert "sync stopped" in err and "run the same command again" in err
    assert ("CUDA out of memory" in err) if code == 1 else ("Ctrl-C" in err)


# ------------------------------------------- mirror interrupted between chunks and markers

def test_a_document_back_after_an_interrupted_mirror_is_rewritten_whole() -> None:
    """Mirror deletes chunks before #0 markers; a crash between the two leaves a complete #0
    without its chunks. The document coming back unchanged must be rewritten (the manifest
    check sees the missing chunks), not reported unchanged."""
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=embedder())
    d, keep = Document("d", words(30, "a")), Document("keep", "short")
    assert sync_corpus(col, [d, keep], **SPLIT).ok
    store.crash_on_write(1, "after")  # the first delete of the mirror pass: the chunks
    with pytest.raises(Crash):
        sync_corpus(col, [keep], mirror=True, **SPLIT)
    assert set(snapshot(col)) == {"d#0", "keep"}
    rep = sync_corpus(col, [d, keep], **SPLIT)
    assert rep.ok and rep.updated == 1 and rep.update_reasons == {"chunks missing or from another version": 1}
    assert snapshot(col) == clean([d, keep], **SPLIT)


@pytest.mark.parametrize(("n", "when"), [(1, "before"), (1, "after"), (2, "before"), (2, "after")])
def test_an_interrupted_mirror_leaves_no_chunk_without_its_marker(n: int, when: str) -> None:
    """Whatever delete of a mirror pass a crash hits, every chunk left has its #0, so the
    document coming back short is cleaned of all of them."""
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=embedder())
    big = [Document(f"d{k}", words(30, f"a{k}")) for k in range(3)]
    keep = Document("keep", "short")
    assert sync_corpus(col, [*big, keep], **SPLIT).ok
    store.crash_on_write(n, when)
    with pytest.raises(Crash):
        sync_corpus(col, [keep], mirror=True, **SPLIT)
    held = snapshot(col)
    assert all(f"{rid.rpartition('#')[0]}#0" in held for rid in held if "#" in rid), (n, sorted(held))
    short = [Document(f"d{k}", "short again") for k in range(3)]
    assert sync_corpus(col, [*short, keep], **SPLIT).ok
    assert snapshot(col) == clean([*short, keep], **SPLIT)


# ------------------------------------------ found beyond the six (model-based test, analysis)

def test_shrunk_by_the_model_based_test_a_crash_in_a_first_split_then_a_rollback() -> None:
    """The counterexample the state machine shrank to on the old code (a form of defect 2):
    document 'a' (9 words: two chunks) is synced, the first write lands and the process dies;
    the source rolls 'a' back to one word. Old code: 'a#1' stayed behind forever."""
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=HashEmbedder(dim=8, max_length=10))  # the machine's
    nine = "alpha zeta alpha δέλτα θ δέλτα zeta alpha zeta"
    store.crash_on_write(1, "after")
    with pytest.raises(Crash):
        sync_corpus(col, [Document("a", nine, {"n": 9, "src": "a"})], **SPLIT)
    back = Document("a", "alpha", {"n": 1, "src": "a"})
    assert sync_corpus(col, [back], **SPLIT).ok
    assert sorted(snapshot(col)) == ["a"]


def test_a_refused_delete_fails_only_the_document_it_belongs_to() -> None:
    """Defect 6 for deletes: two documents shrink in one batch and the database refuses to
    delete a surplus chunk of one of them; the other one's update must still complete."""
    store = FaultyStore(MemoryStore())
    col = store.collection("c", embedder=embedder())
    long = [Document("d", words(40, "a")), Document("e", words(40, "b"))]
    assert sync_corpus(col, long, **SPLIT).ok
    store.refused = {"d#4"}
    short = [Document("d", words(25, "a")), Document("e", words(25, "b"))]
    rep = sync_corpus(col, short, **SPLIT)
    assert [f.id for f in rep.failed] == ["d"] and rep.updated == 1
    held = snapshot(col)
    assert {k: v for k, v in held.items() if k.startswith("e")} == clean([short[1]], **SPLIT)
