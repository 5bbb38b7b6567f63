"""What only a real Milvus server shows, on the Milvus 2.3.5 standalone server: its version and
the layout it gets, reads that see every write at once (no flush) on a collection made with the
server's default Bounded consistency, key-ordered paging across sealed and growing segments,
the index choice, and the recall of HNSW with the documented search parameters."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from bge_vdb.connectors.milvus import MilvusStore
from bge_vdb.connectors.milvus_layout import NULLS_FIELD
from bge_vdb.store import Collection, connect
from bge_vdb.types import Record
from tests.support.milvus_standalone import shared_server
from tests.support.stores import STORE_FACTORIES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MilvusStore]:
    with STORE_FACTORIES["milvus-standalone"](tmp_path) as s:
        assert isinstance(s, MilvusStore)
        yield s


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_server_version_decides_the_layout(store: MilvusStore) -> None:
    info = store.server()
    assert info.version == (2, 3, 5) and not info.is_lite and not info.nullable_fields
    col = store.collection("layout", dim=4)
    fields = {f["name"]: f for f in store._client.describe_collection("layout")["fields"]}
    assert NULLS_FIELD in fields and not fields["text"].get("nullable")
    v = unit(np.random.default_rng(0), 3, 4)
    col.upsert([Record("none", v[0], None, {"k": None}, content_hash=None),
                Record("empty", v[1], "", {}, content_hash=""),
                Record("full", v[2], "text", {"k": 1}, content_hash="h")])
    got = {r.id: (r.text, r.content_hash, r.metadata) for r in col.fetch(["none", "empty", "full"])}
    assert got == {"none": (None, None, {"k": None}), "empty": ("", "", {}), "full": ("text", "h", {"k": 1})}
    assert {h.id: h.text for h in col.search(v[0], k=3)} == {"none": None, "empty": "", "full": "text"}
    assert [r.id for r in col.fetch(["none"])] == ["none"] and col.count(where={"k": {"$exists": True}}) == 1


def test_every_read_sees_every_write_at_once_without_a_flush(store: MilvusStore) -> None:
    """The collection is made by another tool with the server's default Bounded consistency (a
    read may lag writes by seconds there): bge-vdb asks for Strong consistency on every read."""
    client: MilvusClient = store._client
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    schema.add_field("text", DataType.VARCHAR, max_length=256)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("bounded", schema=schema, index_params=index, consistency_level="Bounded")
    col = store.collection("bounded", dim=8)
    rng = np.random.default_rng(1)
    live: dict[str, np.ndarray] = {}
    for step in range(8):
        vecs = unit(rng, 10, 8)
        batch = {f"s{step}-{i}": vecs[i] for i in range(10)}
        col.upsert([Record(k, v, k) for k, v in batch.items()])
        live.update(batch)
        assert col.count() == len(live)  # a count(*) query: exact without a flush
        newest = next(iter(batch))
        assert col.search(batch[newest], k=1)[0].id == newest
        assert [r.id for r in col.fetch([newest])] == [newest]
        doomed = sorted(live)[:3]
        col.delete(ids=doomed)
        for k in doomed:
            del live[k]
        assert col.count() == len(live)
        assert sorted(r.id for page in col.scroll(7) for r in page) == sorted(live)
        assert col.fetch(doomed) == []
    # The server's own statistics count only flushed rows: this is why count() does not use them.
    stats = int(client.get_collection_stats("bounded")["row_count"])
    assert stats != len(live), "the server flushed on its own: the check above proves less"


def test_pages_are_in_key_order_across_sealed_and_growing_segments(store: MilvusStore) -> None:
    """Keyset paging needs the server to return the smallest keys first: check it on flushed
    (sealed) segments, the growing one, overwrites and deletes together."""
    col = store.collection("segments", dim=4)
    rng = random.Random(7)
    ids = [f"k{rng.randrange(10**6):06d}-{i}" for i in range(400)]
    vecs = unit(np.random.default_rng(2), len(ids), 4)
    groups = [ids[0:150], ids[150:300], ids[300:]]
    for g, group in enumerate(groups):
        col.upsert([Record(i, vecs[ids.index(i)], f"g{g}", {"g": g}) for i in group])
        if g == 1:
            store._client.flush("segments")  # groups 0 and 1 sealed, group 2 growing
    overwritten = rng.sample(groups[0], 40)  # an upsert deletes in the old segment, inserts anew
    col.upsert([Record(i, vecs[ids.index(i)], "again", {"g": 9}) for i in overwritten])
    deleted = set(rng.sample(ids, 30))
    col.delete(ids=sorted(deleted))
    want = sorted(set(ids) - deleted)
    for size in (1, 7, 64, 1000):
        pages = list(col.scroll(size))
        flat = [r.id for page in pages for r in page]
        assert flat == want, size  # every id once, and in key order
    evens = [r.id for page in col.scroll(9, where={"g": 9}) for r in page]
    assert evens == sorted(set(overwritten) - deleted)


@pytest.mark.slow
def test_hnsw_top10_recall_on_10000_random_384d_vectors(capsys: pytest.CaptureFixture[str]) -> None:
    """10,000 random unit vectors (the hardest case for a graph index: no structure), flushed
    and indexed, 100 queries, top-10 against exact search: HNSW with the defaults (M=32,
    efConstruction=200, ef=512) must keep recall >= 0.98. Other M and ef, and FLAT (exact):
    ``python benchmarks/milvus_recall.py``."""
    index_type = "HNSW"
    n, dim, queries = 10_000, 384, 100
    rng = np.random.default_rng(2024)
    data, qs = unit(rng, n, dim), unit(rng, queries, dim)
    exact = np.argsort(-(qs @ data.T), axis=1)[:, :10]
    with connect(shared_server().url, index_type=index_type) as store:
        for name in store.list_collections():
            store.drop_collection(name)
        col: Collection = store.collection("recall", dim=dim)
        col.upsert([Record(f"v{i:05d}", data[i]) for i in range(n)])
        client = store._client  # type: ignore[attr-defined]
        client.flush("recall")  # sealed segments get the index; growing ones are searched raw
        info = shared_server().wait_served_indexed("recall", n)
        assert info["index_type"] == index_type
        found = 0
        for q, want in zip(qs, exact, strict=True):
            got = {int(h.id[1:]) for h in col.search(q, k=10)}
            found += len(got & set(want.tolist()))
        recall = found / (queries * 10)
        store.drop_collection("recall")
    with capsys.disabled():
        print(f"\nMilvus 2.3.5 {index_type}: top-10 recall {recall:.4f} over {queries} queries, {n} x {dim}-d")
    assert recall >= 0.98
