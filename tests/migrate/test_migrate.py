"""migrate on the reference store: copy, refusals, re-embedding, resume, failures, verification."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import (
    ConfigError,
    DimensionMismatch,
    FailedRecord,
    FingerprintMismatch,
    InputError,
    MetricMismatch,
    TransientError,
)
from bge_vdb.migrate import MigrationReport, migrate, verify_migration
from bge_vdb.retry import RetryPolicy
from bge_vdb.types import CollectionSpec, Distance, Record, fingerprint_digest
from tests.support.fake_embedder import HashEmbedder

from .conftest import DIM, SRC_EMBEDDER, fill_source, make_records


def _all(col: Any) -> dict[str, Record]:
    return {r.id: r for page in col.scroll(1000, with_vectors=True) for r in page}


def test_copies_everything_into_a_new_collection(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    dst_store = MemoryStore()
    report = migrate(src, (dst_store, "b"), batch_size=7)
    assert report.ok and report.written == 60 and report.read == 60
    spec = dst_store.describe_collection("b")
    assert spec is not None and (spec.dim, spec.distance) == (DIM, Distance.COSINE)
    assert fingerprint_digest(spec.fingerprint) == fingerprint_digest(SRC_EMBEDDER.fingerprint)
    want, got = _all(src), _all(dst_store.collection("b", create=False))
    assert list(got) == list(want)
    for i, r in got.items():
        assert r.vector.dtype == np.float32 and np.array_equal(r.vector, want[i].vector)
        assert (r.text, dict(r.metadata), r.content_hash) == (want[i].text, dict(want[i].metadata), want[i].content_hash)
    json.dumps(report.to_dict(), ensure_ascii=False)  # the CLI's --json output


def test_into_an_open_collection_and_within_one_store(records: list[Record]) -> None:
    store = MemoryStore()
    src = fill_source(store, "a", records)
    dst = store.collection("b", dim=DIM)  # opened by the caller, no fingerprint yet
    report = migrate(src, dst)
    assert report.ok and dst.count() == 60
    assert fingerprint_digest(dst.fingerprint) == fingerprint_digest(SRC_EMBEDDER.fingerprint)
    spec = store.describe_collection("b")
    assert spec is not None and fingerprint_digest(spec.fingerprint) == fingerprint_digest(SRC_EMBEDDER.fingerprint)


def test_refuses_same_collection_and_bad_arguments(records: list[Record]) -> None:
    store = MemoryStore()
    src = fill_source(store, "a", records)
    with pytest.raises(ConfigError, match="same collection"):
        migrate(src, (store, "a"))
    with pytest.raises(InputError, match="dst must be"):
        migrate(src, "b")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="batch_size"):
        migrate(src, (store, "b"), batch_size=0)
    assert store.describe_collection("b") is None


@pytest.mark.parametrize("case", ["dim", "metric", "fingerprint", "unknown-source-model"])
def test_refuses_a_destination_that_disagrees_before_writing(case: str, records: list[Record]) -> None:
    src_store, dst_store = MemoryStore(), MemoryStore()
    src = fill_source(src_store, "a", records, embedder=None if case == "unknown-source-model" else SRC_EMBEDDER)
    other = HashEmbedder(dim=DIM, name="test/another-model")
    spec = {
        "dim": CollectionSpec("b", 16, Distance.COSINE, None),
        "metric": CollectionSpec("b", DIM, Distance.DOT, None),
        "fingerprint": CollectionSpec("b", DIM, Distance.COSINE, other.fingerprint),
        "unknown-source-model": CollectionSpec("b", DIM, Distance.COSINE, other.fingerprint),
    }[case]
    dst_store.create_collection(spec)
    error = {"dim": DimensionMismatch, "metric": MetricMismatch}.get(case, FingerprintMismatch)
    with pytest.raises(error, match="'b'"):
        migrate(src, (dst_store, "b"))
    assert dst_store.count("b") == 0
    assert dst_store.describe_collection("b") == spec  # fingerprint untouched too


def test_an_existing_destination_of_the_same_model_is_accepted(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    dst_store = MemoryStore()
    foreign = [Record(f"other-{r.id}", r.vector, r.text, r.metadata) for r in make_records(5, seed=99)]
    stale = Record("doc-0001", records[2].vector, "old text", {})  # will be overwritten
    dst = fill_source(dst_store, "b", [*foreign, stale])
    report = migrate(src, dst)
    assert report.written == 60 and report.skipped == 0  # the stale doc-0001 is rewritten too
    assert dst_store.fetch_records("b", ["doc-0001"], False)[0].text == records[1].text
    v = report.verification
    assert v is not None and not report.ok  # the 5 records the source does not have are reported
    assert v.destination_count == 65 and v.extra_ids == sorted(r.id for r in foreign)
    assert any("5 id(s) in the destination but not in the source" in d for d in v.differences)


def test_reembeds_into_another_dimension(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    new = HashEmbedder(dim=12, name="test/new-model")
    dst_store = MemoryStore()
    report = migrate(src, (dst_store, "b"), reembed=new, batch_size=16)
    assert report.ok, report.verification
    assert report.reembedded == 60 and report.written == 60
    spec = dst_store.describe_collection("b")
    assert spec is not None and spec.dim == 12
    assert fingerprint_digest(spec.fingerprint) == fingerprint_digest(new.fingerprint)
    got = _all(dst_store.collection("b", create=False))
    fresh = HashEmbedder(dim=12, name="test/new-model")
    for r in records:
        assert np.allclose(got[r.id].vector, fresh.embed_documents([r.text or ""])[0], atol=1e-6)
        assert dict(got[r.id].metadata) == dict(r.metadata)
    v = report.verification
    assert v is not None and v.queries == 20 and v.queries_agreeing == 20 and v.vectors_checked == 60

    # Resumed/repeated: nothing re-embedded, nothing rewritten.
    new.embedded_texts.clear()
    again = migrate(src, (dst_store, "b"), reembed=new, verify=False)
    assert (again.skipped, again.written, again.reembedded) == (60, 0, 0)
    assert new.embedded_texts == []

    # The old model's vectors cannot go into the re-embedded collection.
    with pytest.raises(DimensionMismatch):
        migrate(src, (dst_store, "b"))


def test_reembedding_refuses_a_destination_of_a_third_model(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    dst_store = MemoryStore()
    dst_store.create_collection(CollectionSpec("b", 12, Distance.COSINE, HashEmbedder(12, name="x").fingerprint))
    with pytest.raises(FingerprintMismatch, match="re-embed"):
        migrate(src, (dst_store, "b"), reembed=HashEmbedder(dim=12, name="test/new-model"))
    assert dst_store.count("b") == 0


def test_records_that_cannot_be_copied_are_reported_by_id(records: list[Record]) -> None:
    src_store = MemoryStore()
    src = fill_source(src_store, "a", records)
    # Written through the primitive to get what a collection made elsewhere may hold.
    bad_nan = Record("bad-nan", np.full(DIM, np.nan, dtype=np.float32), "t", {})
    long_vec = Record("not-unit", np.full(DIM, 3.0, dtype=np.float32), "t", {"k": 1})
    huge = Record("huge-meta", np.eye(DIM, dtype=np.float32)[0], "t", {"blob": "x" * 5000})
    src_store.upsert_records("a", [bad_nan, long_vec, huge])

    class SmallMeta(MemoryStore):
        max_metadata_bytes = 1000

    dst_store = SmallMeta()
    report = migrate(src, (dst_store, "b"), verify=False)
    reasons = {f.id: f.reason for f in report.failed}
    assert set(reasons) == {"bad-nan", "huge-meta"}
    assert "NaN" in reasons["bad-nan"] and "1000 bytes" in reasons["huge-meta"]
    assert report.normalized == 1 and report.written == 61 and not report.ok
    stored = dst_store.fetch_records("b", ["not-unit"], True)[0].vector
    assert np.allclose(stored, np.full(DIM, 1 / np.sqrt(DIM)), atol=1e-7)

    new = HashEmbedder(dim=4, name="test/new")
    src_store.upsert_records("a", [Record("no-text", np.eye(DIM, dtype=np.float32)[1], None, {})])
    rep = migrate(src, (MemoryStore(), "c"), reembed=new, verify=False)
    # Re-embedding never reads the stored vectors, so the NaN one is no obstacle; no text is.
    assert [f.id for f in rep.failed] == ["no-text"] and rep.written == 63
    assert "no text" in {f.id: f.reason for f in rep.failed}["no-text"]


class FlakyStore(MemoryStore):
    """Refuses one id, fails the first write transiently, and records every batch size."""

    max_batch_count = 9

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.transient_left = 1

    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        if self.transient_left:
            self.transient_left -= 1
            raise TransientError("503 from the fake")
        self.batches.append(len(records))
        keep = [r for r in records if r.id != "doc-0013"]
        super().upsert_records(name, keep)
        return [FailedRecord("doc-0013", "refused by the database")] if len(keep) < len(records) else []


def test_writes_use_the_destination_batching_and_retries(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    dst_store = FlakyStore()
    slept: list[float] = []
    dst_store.retry_policy = RetryPolicy(sleep=slept.append)
    report = migrate(src, (dst_store, "b"), batch_size=25)
    assert len(slept) == 1  # the transient failure was retried
    assert max(dst_store.batches) <= 9 and sum(dst_store.batches) == 60
    assert report.failed == [FailedRecord("doc-0013", "refused by the database")]
    assert report.written == 59 and not report.ok
    v = report.verification
    assert v is not None and v.missing_ids == ["doc-0013"] and not v.ok


def test_stops_when_the_destination_stays_down(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)

    class Down(MemoryStore):
        def upsert_records(self, name: str, batch: Sequence[Record]) -> list[FailedRecord]:
            raise TransientError("connection refused")

    dst_store = Down()
    slept: list[float] = []
    dst_store.retry_policy = RetryPolicy(attempts=3, sleep=slept.append)
    report = migrate(src, (dst_store, "b"), batch_size=10)
    assert len(slept) == 2  # one retry budget spent, not one per page
    assert report.read == 10 and report.written == 0 and report.verification is None
    assert [f.id for f in report.failed] == [r.id for r in records[:10]]
    assert report.stopped is not None and "Run again to resume" in report.stopped and not report.ok


def test_verification_lists_the_differences(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    dst_store = MemoryStore()
    assert migrate(src, (dst_store, "b")).ok
    dst_store.delete_ids("b", ["doc-0003"])
    moved = np.asarray(_all(src)["doc-0004"].vector).copy()
    moved[0] += 1e-3
    r5 = _all(src)["doc-0005"]
    dst_store.upsert_records("b", [
        Record("doc-0004", moved, records[4].text, dict(records[4].metadata), records[4].content_hash),
        Record("doc-0005", r5.vector, r5.text, {**r5.metadata, "title": "改过了"}, r5.content_hash),
        Record("stray", np.eye(DIM, dtype=np.float32)[0], "x", {}),
    ])
    v = verify_migration(src, dst_store.collection("b", create=False), sample=60, queries=0)
    assert not v.ok
    assert v.missing_ids == ["doc-0003"] and v.extra_ids == ["stray"]
    assert v.content_mismatches == ["doc-0005"]
    assert v.vector_mismatches == ["doc-0004"] and v.max_vector_diff > 1e-4
    text = "\n".join(v.differences)
    for needle in ("doc-0003", "stray", "doc-0005", "doc-0004"):
        assert needle in text


def test_topk_check_catches_a_wrongly_ranked_destination(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)

    class Reversed(MemoryStore):
        def query(self, name: str, vector: Any, k: int, where: Any, with_vectors: bool) -> Any:
            return super().query(name, -np.asarray(vector), k, where, with_vectors)

    dst_store = Reversed()
    report = migrate(src, (dst_store, "b"), verify_queries=5)
    v = report.verification
    assert v is not None and v.queries == 5 and v.queries_agreeing == 0 and v.topk_overlap < 0.5
    assert not report.ok and any("top-10" in d for d in v.differences)


def test_resumes_after_an_interruption_without_duplicates(records: list[Record]) -> None:
    src = fill_source(MemoryStore(), "a", records)
    dst_store = MemoryStore()
    seen: list[int] = []

    def stop_after_two_pages(report: MigrationReport) -> None:
        seen.append(report.written)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(src, (dst_store, "b"), batch_size=10, progress=stop_after_two_pages)
    assert dst_store.count("b") == 20
    report = migrate(src, (dst_store, "b"), batch_size=10)
    assert (report.skipped, report.written) == (20, 40)
    assert report.ok and dst_store.count("b") == 60


def test_the_pipeline_is_bounded_and_overlaps_embedding_with_writing() -> None:
    records = make_records(200)
    src_store = MemoryStore()
    src = fill_source(src_store, "a", records)
    pages_read = 0
    lag: list[int] = []
    second_page_embedding = threading.Event()

    real_scroll = src_store.scroll_page

    def scroll_page(*args: Any) -> Any:
        nonlocal pages_read
        pages_read += 1
        return real_scroll(*args)

    src_store.scroll_page = scroll_page  # type: ignore[method-assign, assignment]

    class Embedder(HashEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            if self.calls == 1:
                second_page_embedding.set()
            return super().embed_documents(texts)

    class Dst(MemoryStore):
        writes = 0

        def upsert_records(self, name: str, batch: Sequence[Record]) -> list[FailedRecord]:
            Dst.writes += 1
            lag.append(pages_read - Dst.writes)
            if Dst.writes == 1:  # page 2 is embedded while page 1 is being written
                assert second_page_embedding.wait(10)
            return super().upsert_records(name, batch)

    report = migrate(src, (Dst(), "b"), batch_size=10, reembed=Embedder(dim=4), verify=False)
    assert report.ok and report.written == 200 and Dst.writes == 20
    assert max(lag) <= 4  # never more than a few pages ahead of the writer, however large
