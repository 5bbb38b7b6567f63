"""What only a real Milvus server shows, on the Milvus 2.3.5 standalone server: its version and
the layout it gets, reads that see every write at once (no flush) on a collection made with the
server's default Bounded consistency, key-ordered paging across sealed and growing segments,
the index choice, and the recall of HNSW with the documented search parameters."""

from __future__ import annotations

import random
import time
import warnings
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
        if g < 2:
            store._client.flush("segments")
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


def _wait_served_indexed(uri: str, client: MilvusClient, name: str, rows: int, timeout: float = 300) -> dict:
    """Wait until every row is in a sealed, indexed segment that the query node serves. Until
    then Milvus 2.3 searches the rows through its interim IVF index of growing segments
    (nprobe 16 of nlist 128, whatever the collection's index and the request's parameters):
    top-10 recall 0.25-0.29 on this data, measured."""
    from pymilvus import connections, utility

    deadline = time.monotonic() + timeout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ORM utility is the only API listing served segments
        connections.connect(alias="recall", uri=uri)
        try:
            while True:
                info = client.describe_index(name, "vector")
                served = utility.get_query_segment_info(name, using="recall")
                # 3 is Sealed; a FLAT "index" is served as the raw rows, without an index name.
                flat = info.get("index_type") == "FLAT"
                sealed = sum(s.num_rows for s in served if s.state == 3 and (s.index_name or flat))
                if info.get("indexed_rows") == rows and sealed == rows:
                    return info
                assert time.monotonic() < deadline, (info, served)
                time.sleep(0.5)  # waiting for the server's build and hand-off, not a retry under test
        finally:
            connections.disconnect("recall")


def test_hnsw_and_autoindex_are_opt_in() -> None:
    url = shared_server().url
    with connect(url) as flat_store:
        for name in flat_store.list_collections():
            flat_store.drop_collection(name)
        flat_store.collection("flat", dim=4)
        assert flat_store._client.describe_index("flat", "vector")["index_type"] == "FLAT"  # type: ignore[attr-defined]
    with connect(f"{url}?index_type=HNSW&hnsw_m=8&hnsw_ef_construction=64&search_ef=16") as store:
        col = store.collection("hnsw", dim=4)
        info = store._client.describe_index("hnsw", "vector")  # type: ignore[attr-defined]
        assert (info["index_type"], str(info["M"]), str(info["efConstruction"])) == ("HNSW", "8", "64")
        vecs = unit(np.random.default_rng(3), 50, 4)
        col.upsert([Record(f"h{i}", vecs[i]) for i in range(50)])
        assert len(col.search(vecs[0], k=40)) == 40  # k above search_ef: ef is raised to k
        assert col.search(vecs[0], k=1)[0].id == "h0"
    with connect(url, index_type="AUTOINDEX") as store:
        store.collection("auto", dim=4)
        assert store._client.describe_index("auto", "vector")["index_type"] == "AUTOINDEX"  # type: ignore[attr-defined]
        store.drop_collection("flat")
        store.drop_collection("hnsw")
        store.drop_collection("auto")


@pytest.mark.slow
@pytest.mark.parametrize("index_type", ["HNSW", "FLAT"])
def test_top10_recall_on_10000_random_384d_vectors(index_type: str, capsys: pytest.CaptureFixture[str]) -> None:
    """10,000 random unit vectors (the hardest case for a graph index: no structure), flushed
    and indexed, 100 queries, top-10 against exact search. HNSW with the defaults (M=32,
    efConstruction=200, ef=512) must keep recall >= 0.98; FLAT must be exact."""
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
        info = _wait_served_indexed(shared_server().uri, client, "recall", n)
        assert info["index_type"] == index_type
        found = 0
        for q, want in zip(qs, exact, strict=True):
            got = {int(h.id[1:]) for h in col.search(q, k=10)}
            found += len(got & set(want.tolist()))
        recall = found / (queries * 10)
        store.drop_collection("recall")
    with capsys.disabled():
        print(f"\nMilvus 2.3.5 {index_type}: top-10 recall {recall:.4f} over {queries} queries, {n} x {dim}-d")
    assert recall >= (1.0 if index_type == "FLAT" else 0.98)
