"""Collection on the memory store: validation, embedding, batching, retries, failure reporting."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import (
    ConfigError,
    ConnectorError,
    DimensionMismatch,
    FailedRecord,
    InputError,
    ModelError,
    TransientError,
    WriteError,
)
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import check_metadata, check_vector, stable_uuid
from bge_vdb.types import Document, Record, fingerprint_digest
from tests.support.fake_embedder import HashEmbedder


class ScriptedStore(MemoryStore):
    """A memory store whose upsert_records raises the scripted errors (one per call, None = ok)
    and refuses the ids in ``refuse`` one by one, as a database reporting per-record errors."""

    def __init__(self, script: Sequence[BaseException | None] = (), refuse: Sequence[str] = ()) -> None:
        super().__init__()
        self.script = list(script)
        self.refuse = set(refuse)
        self.batches: list[list[str]] = []
        self.waits: list[float] = []
        self.retry_policy = RetryPolicy(attempts=3, sleep=self.waits.append)

    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        self.batches.append([r.id for r in records])
        err = self.script.pop(0) if self.script else None
        if err is not None:
            raise err
        ok = [r for r in records if r.id not in self.refuse]
        super().upsert_records(name, ok)
        return [FailedRecord(r.id, "refused by the database") for r in records if r.id in self.refuse]


def recs(n: int, dim: int = 4, prefix: str = "r") -> list[Record]:
    v = np.random.default_rng(0).normal(size=(n, dim))
    return [Record(f"{prefix}{i}", v[i]) for i in range(n)]


def test_transient_batch_is_retried_and_lands_once() -> None:
    store = ScriptedStore([TransientError("503"), None, TransientError("reset"), None])
    store.max_batch_count = 3  # type: ignore[misc]
    col = store.collection("c", dim=4)
    res = col.upsert(recs(6))
    assert res.written == 6 and res.ok
    assert store.batches == [["r0", "r1", "r2"]] * 2 + [["r3", "r4", "r5"]] * 2
    assert len(store.waits) == 2 and col.count() == 6


def test_permanent_batch_failure_names_its_ids_and_the_rest_is_written() -> None:
    # The refused batch is bisected (issue 13, defect 6); here both halves are refused too.
    refused = ConnectorError("400 bad request")
    store = ScriptedStore([None, refused, refused, refused, None])
    store.max_batch_count = 2  # type: ignore[misc]
    col = store.collection("c", dim=4)
    with pytest.raises(WriteError) as err:
        col.upsert(recs(6))
    assert [f.id for f in err.value.failed] == ["r2", "r3"] and err.value.written == 4
    assert store.batches == [["r0", "r1"], ["r2", "r3"], ["r2"], ["r3"], ["r4", "r5"]]
    assert "400 bad request" in err.value.failed[0].reason and store.waits == []
    assert sorted(r.id for p in col.scroll() for r in p) == ["r0", "r1", "r4", "r5"]


def test_transient_exhausted_stops_and_reports_the_rest_not_attempted() -> None:
    store = ScriptedStore([TransientError("down")] * 10)
    store.max_batch_count = 2  # type: ignore[misc]
    col = store.collection("c", dim=4)
    res = col.upsert(recs(5), raise_on_error=False)
    assert res.written == 0 and [f.id for f in res.failed] == ["r0", "r1", "r2", "r3", "r4"]
    assert [f.reason.startswith("not attempted") for f in res.failed] == [False, False, True, True, True]
    assert all(f.transient for f in res.failed)  # jobs stop early on this flag, not on the text
    assert len(store.batches) == 3  # one batch, three tries; no retry budget burnt per batch


def test_oversize_record_behind_a_dead_store_keeps_its_own_reason() -> None:
    store = ScriptedStore([TransientError("down")] * 10)
    store.max_batch_count = 1  # type: ignore[misc]
    store.max_batch_bytes = 200  # type: ignore[misc]
    col = store.collection("c", dim=4)
    big = Record("big", [1, 0, 0, 0], text="x" * 500)
    res = col.upsert([*recs(2), big], raise_on_error=False)
    reasons = {f.id: f for f in res.failed}
    assert "over" in reasons["big"].reason and "request limit" in reasons["big"].reason
    assert not reasons["big"].transient and reasons["r0"].transient and reasons["r1"].transient


def test_records_refused_one_by_one_are_reported() -> None:
    store = ScriptedStore(refuse=["r1"])
    col = store.collection("c", dim=4)
    res = col.upsert(recs(3), raise_on_error=False)
    assert res.written == 2 and res.failed == [FailedRecord("r1", "refused by the database")]
    with pytest.raises(WriteError, match="r1"):
        col.upsert(recs(3))


def test_on_invalid_report_writes_the_good_ones() -> None:
    col = MemoryStore().collection("c", dim=4)
    items = [Record("a", [1, 0, 0, 0]), Record("b", [1, 0]), Record("", [0, 1, 0, 0]), Record("d", [0, 0, 1, 0])]
    res = col.upsert(items, on_invalid="report", raise_on_error=False)
    assert res.written == 2 and [f.id for f in res.failed] == ["b", "#2"]
    assert "2 numbers" in res.failed[0].reason and "missing" in res.failed[1].reason
    with pytest.raises(ConfigError):
        col.upsert(items, on_invalid="ignore")


def test_documents_are_embedded_in_batches_and_duplicates_embedded_once() -> None:
    emb = HashEmbedder(8)
    col = MemoryStore().collection("c", embedder=emb)
    docs = [Document(f"d{i}", f"text number {i}") for i in range(10)] + [Document("d3", "replaced")]
    res = col.upsert(docs, embed_batch_size=4)
    assert res.written == 10 and emb.calls == 3
    assert len(emb.embedded_texts) == 10 and "replaced" in emb.embedded_texts
    assert col.fetch(["d3"])[0].text == "replaced"
    mixed = col.upsert([Document("x", "doc"), Record("y", np.ones(8))])
    assert mixed.written == 2 and col.count() == 12


def test_duplicates_last_wins_and_takes_the_last_position() -> None:
    store = ScriptedStore()
    store.max_batch_count = 2  # type: ignore[misc]
    col = store.collection("c", dim=4)
    a, b, c = recs(3)
    col.upsert([a, b, Record("r0", [0, 0, 0, 1], "last"), c])
    assert store.batches == [["r1", "r0"], ["r2"]]
    assert col.fetch(["r0"])[0].text == "last"


def test_collection_argument_checks() -> None:
    store = MemoryStore()
    with pytest.raises(InputError):
        store.collection("", dim=4)
    with pytest.raises(InputError):
        store.collection("c", dim=True)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        store.collection("c", dim=0)
    with pytest.raises(DimensionMismatch, match="dim=5"):
        store.collection("c", dim=5, embedder=HashEmbedder(4))
    col = store.collection("c", dim=4)
    with pytest.raises(InputError, match="single item"):
        col.upsert(Record("a", [1, 0, 0, 0]))  # type: ignore[arg-type]
    with pytest.raises(InputError):
        col.delete("a")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        col.search([1, 0, 0, 0], k=True)  # type: ignore[arg-type]
    with pytest.raises(DimensionMismatch):
        col.search([1, 0, 0])
    with pytest.raises(InputError, match="id"):
        col.fetch(["a", 3])  # type: ignore[list-item]
    assert "Collection('c', dim=4" in repr(col)


def test_check_vector_normalizes_and_refuses() -> None:
    out = check_vector([3, 4], 2, "v")
    assert out.dtype == np.float32 and np.allclose(out, [0.6, 0.8])
    for bad, msg in [([[1, 2]], "1-d"), (["a", "b"], "list of numbers"), ([1e308, 1e308], "overflows"), ([0, 0], "zeros")]:
        with pytest.raises(InputError, match=msg):
            check_vector(bad, 2, "v")


def test_check_metadata_round_trip_and_refusals() -> None:
    assert check_metadata({"t": (1, 2)}, "m") == {"t": [1, 2]}  # tuples become lists everywhere
    assert check_metadata(None, "m") == {}
    with pytest.raises(InputError, match=r"metadata\.a\[0\] has a non-string key 1"):
        check_metadata({"a": [{1: "x"}]}, "item 0")
    with pytest.raises(InputError, match="over this database's limit"):
        check_metadata({"a": "x" * 100}, "m", max_bytes=50)


def test_batches_bounded_by_bytes_estimate() -> None:
    store = ScriptedStore()
    col = store.collection("c", dim=4)
    big = [Record(f"b{i}", [1, 0, 0, 0], "x" * 1000, {"k": "v" * 100}) for i in range(7)]
    assert store.record_nbytes(big[0]) > store.record_nbytes(Record("s", [1, 0, 0, 0], "x")) + 1100
    store.max_batch_bytes = 3 * store.record_nbytes(big[0])  # type: ignore[misc]
    col.upsert(big)
    assert [len(b) for b in store.batches] == [3, 3, 1]


def test_stable_uuid_and_fingerprint_digest() -> None:
    assert stable_uuid("a") == stable_uuid("a") != stable_uuid("b")
    assert uuid.UUID(stable_uuid("名前")).version == 5
    fp = HashEmbedder(8).fingerprint
    assert fingerprint_digest(fp) == fingerprint_digest({**fp, "query_instruction": "other: "})
    assert fingerprint_digest(fp) != fingerprint_digest({**fp, "pooling": "cls"})
    with_sha = {**fp, "weights_sha256": "abc"}
    assert fingerprint_digest(with_sha) == fingerprint_digest({**with_sha, "model": "/elsewhere"})
    assert fingerprint_digest(None) is None


def test_delete_where_default_pages_through_scroll() -> None:
    store: Any = MemoryStore()
    col = store.collection("c", dim=4)
    col.upsert([Record(f"r{i}", [1, i, 0, 0], metadata={"odd": i % 2 == 1}) for i in range(2500)])
    # The base-class delete_where (scroll + delete_ids), not the memory store's own one:
    from bge_vdb.store import VectorStore

    assert VectorStore.delete_where(store, "c", __import__("bge_vdb").filters.parse({"odd": True})) == 1250
    assert col.count() == 1250 and col.count(where={"odd": True}) == 0


def test_an_embedder_returning_too_few_vectors_is_an_error_not_a_silent_drop() -> None:
    class Short(HashEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            return super().embed_documents(texts)[:-1]

    col = MemoryStore().collection("c", embedder=Short(4))
    with pytest.raises(ModelError, match="1 vectors for 2 texts"):
        col.upsert([Document("a", "x"), Document("b", "y")])
    assert col.count() == 0
