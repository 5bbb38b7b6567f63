"""The one conformance suite every connector inherits.

How to plug a connector in (Milvus, Weaviate, Pinecone, ...)::

    # tests/conformance/test_<db>.py
    import pytest
    from tests.conformance.suite import StoreConformance
    from tests.support.stores import STORE_FACTORIES

    class TestMyDb(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            with STORE_FACTORIES["mydb"](tmp_path) as s:   # yields an EMPTY VectorStore
                yield s

        # Optional hooks (each test that needs a hook you do not supply is SKIPPED with a reason):
        def create_native_collection(self, store, name, dim, metric):
            '''Create a collection with the SDK directly, as another tool would: no bge-vdb
            fingerprint; ``metric`` is "cosine" or "euclid". pytest.skip() if the DB cannot.'''

        write_methods = ("upsert",)               # SDK client methods that write records
        def inject_faults(self, store, wrap):     # replace the store's SDK client by wrap(client)
            store._client = wrap(store._client)
        def transient_error(self):                # the SDK's real exception for a lost connection
            return httpx.ConnectError("connection refused")
        def permanent_error(self):                # the SDK's real exception for a rejected request
            return UnexpectedResponse(400, ...)

Rules the suite relies on: collection names are short lowercase ASCII words (valid everywhere);
the store's ``retry_policy``, ``max_batch_count`` and ``max_batch_bytes`` may be set on the
instance; ``search`` results are compared with the numpy reference (``MemoryStore``) and with
``bge_vdb.filters.matches``. The tests never sleep: retry waits go to an injected ``sleep``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from bge_vdb import filters
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    FilterError,
    FingerprintMismatch,
    InputError,
    MetricMismatch,
    WriteError,
)
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import VectorStore
from bge_vdb.types import Distance, Document, Hit, Record
from tests.support.fake_embedder import HashEmbedder
from tests.support.faults import FaultInjector

DIM = 16
SCORE_TOL = 1e-4
TIE_TOL = 1e-5

# Ids every database must accept and return unchanged (Qdrant needs UUIDs, Milvus has VARCHAR
# limits, Pinecone ASCII-only ids in some APIs: the connector maps, the user never sees it).
ODD_IDS = [
    "a", "doc#1", "名前-ドキュメント", "🙂 emoji", "with space", "a/b?c=d&e", "123", "-1", "0.5",
    "00000000-0000-0000-0000-000000000000", "quote'\"back\\slash", "x" * 300, "tab\tnew\nline",
]

ROUND_TRIP_METADATA: dict[str, Any] = {
    "zh": "中文元数据", "emoji": "🙂🚀", "nested": {"a": {"b": [1, 2.5, "x", True, None]}, "empty": {}},
    "int": 1, "float": 1.0, "neg": -7, "big": 2**53, "small": 1e-300, "bool_t": True, "bool_f": False,
    "list": ["x", 1, 1.5, False], "empty_list": [], "null": None, "quote": 'a"b\\c\'d',
}
ROUND_TRIP_TEXT = "中文 text 🙂 with \"quotes\", 'single', back\\slash,\ttab\nnewline and ∑ symbols"

# Rows for filter semantics: type traps (bool vs int, int vs float, "2020" vs 2020), missing
# keys, nulls, lists (a list never equals a scalar), nested dicts and a list of dicts.
FILTER_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("r0", {"lang": "en", "year": 2020, "score": 0.5, "draft": False,
            "author": {"name": "Ada", "age": 36}, "tags": ["a", "b"]}),
    ("r1", {"lang": "zh", "year": 2021.0, "score": 1, "draft": True, "author": {"name": "Lin"}}),
    ("r2", {"lang": "en", "year": 2024, "flag": 1, "author": None}),
    ("r3", {"lang": "fr", "year": "2020", "draft": 0, "tags": "a"}),
    ("r4", {}),
    ("r5", {"lang": "EN", "year": 1999, "score": -2.5, "flag": True, "author": {"name": "Ada"},
            "nested": {"deep": {"x": "中文"}}}),
    ("r6", {"lang": 'q"uote\\', "year": 2022, "note": None, "author": [{"name": "Ada"}]}),
    ("r7", {"lang": "en", "year": 2020.5, "score": 2, "tags": [], "draft": 1}),
]
FILTERS: list[dict[str, Any]] = [
    {"lang": "en"}, {"lang": {"$eq": "en"}}, {"lang": {"$ne": "en"}}, {"year": 2020}, {"year": 2021},
    {"year": {"$gte": 2020}}, {"year": {"$gt": 2020, "$lt": 2024}}, {"year": {"$lte": 2020.5}},
    {"score": {"$lt": 1}}, {"score": {"$gte": 0.5, "$lte": 1.0}}, {"draft": True}, {"draft": False},
    {"draft": 0}, {"draft": 1}, {"flag": 1}, {"flag": True}, {"flag": {"$ne": True}},
    {"author.name": "Ada"}, {"author.name": {"$in": ["Ada", "Lin"]}}, {"author.name": {"$nin": ["Ada"]}},
    {"author": {"$exists": True}}, {"author": {"$exists": False}}, {"author.name": {"$exists": True}},
    {"author.age": {"$gt": 30}}, {"tags": "a"}, {"tags": {"$exists": True}}, {"tags": {"$ne": "a"}},
    {"tags": {"$in": ["a", "b"]}}, {"note": {"$exists": False}}, {"note": {"$ne": "x"}},
    {"$or": [{"lang": "zh"}, {"year": {"$lt": 2000}}]}, {"$and": [{"lang": "en"}, {"year": 2024}]},
    {"$not": {"lang": "en"}}, {"$not": {"$or": [{"draft": True}, {"flag": {"$exists": True}}]}},
    {"nested.deep.x": "中文"}, {"nested.deep": {"$exists": True}}, {"lang": 'q"uote\\'},
    {"year": {"$in": [2020, 2022, "2020"]}}, {"year": {"$nin": [2020, 2021]}},
    {"lang": {"$in": ["en", "fr"]}, "year": {"$gte": 2020}}, {"missing": {"$nin": [1]}},
    {"missing": {"$exists": False}}, {"missing.deeper": 1}, {"lang": {"$exists": True, "$ne": "en"}},
]
BAD_FILTERS: list[Any] = [
    {"x": {"$regex": "a"}}, {"$nor": [{"x": 1}]}, {"x": {"$in": []}}, {"x": {"$gt": "a"}},
    {"x": [1, 2]}, {"$or": {}}, {"$or": []}, "lang = en", {"x": {"y": 1}}, {"x": {"$exists": 1}},
    {"x": {"$gt": float("nan")}}, {"x": None}, {"$eq": 1}, {"a..b": 1}, {"x": {}}, {"$not": [{"x": 1}]},
]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def same_ranking(got: Sequence[Hit], want: Sequence[Hit], tol: float = SCORE_TOL) -> None:
    """Top-k agree up to ties: scores match position by position, and the ids agree except
    among hits whose scores are within TIE_TOL of each other (or of the k-th score)."""
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want, strict=True):
        assert abs(g.score - w.score) <= tol, (g.id, g.score, w.id, w.score)
    if not want:
        return
    kth = want[-1].score
    sure_want = {h.id for h in want if h.score > kth + TIE_TOL}
    got_ids = {h.id for h in got}
    assert sure_want <= got_ids, (sure_want - got_ids)
    want_scores = {h.id: h.score for h in want}
    for h in got:  # an id only in `got` must be tied with the cut-off
        if h.id not in want_scores:
            assert abs(h.score - kth) <= TIE_TOL + tol, (h.id, h.score, kth)


class StoreConformance:
    """Subclass and override the ``store`` fixture (yield an EMPTY VectorStore, clean up after)."""

    write_methods: tuple[str, ...] = ()

    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        raise NotImplementedError("override the store fixture")

    # ------------------------------------------------------------------------------ hooks
    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        pytest.skip(f"{type(self).__name__} does not create collections natively")

    def inject_faults(self, store: VectorStore, wrap: Callable[[Any], Any]) -> None:
        pytest.skip(f"{type(self).__name__} has no SDK client to inject faults into")

    def transient_error(self) -> BaseException:
        pytest.skip("no transient SDK error given")

    def permanent_error(self) -> BaseException:
        pytest.skip("no permanent SDK error given")

    # ---------------------------------------------------------------------------- helpers
    @pytest.fixture
    def emb(self) -> HashEmbedder:
        return HashEmbedder(DIM)

    @pytest.fixture
    def sleeps(self, store: VectorStore) -> list[float]:
        """Retry waits recorded instead of slept."""
        waits: list[float] = []
        store.retry_policy = RetryPolicy(attempts=30, max_total=1e9, sleep=waits.append)
        return waits

    @staticmethod
    def fill(col: Any, n: int, seed: int = 0, prefix: str = "id") -> list[Record]:
        vecs = unit(np.random.default_rng(seed), n, col.dim)
        recs = [Record(id=f"{prefix}{i:04d}", vector=vecs[i], text=f"text {i}",
                       metadata={"i": i, "even": i % 2 == 0}) for i in range(n)]
        res = col.upsert(recs)
        assert res.written == n and res.ok
        return recs

    @staticmethod
    def all_ids(col: Any, batch_size: int = 1000, **kw: Any) -> list[str]:
        return [r.id for page in col.scroll(batch_size, **kw) for r in page]

    # -------------------------------------------------------------------------- collections
    def test_create_is_idempotent_and_listed(self, store: VectorStore, emb: HashEmbedder) -> None:
        assert store.list_collections() == []
        col = store.collection("docs", embedder=emb)
        self.fill(col, 3)
        again = store.collection("docs", embedder=emb)
        assert again.dim == DIM and again.count() == 3
        assert store.list_collections() == ["docs"]
        spec = store.describe_collection("docs")
        assert spec is not None and spec.dim == DIM and spec.distance == Distance.COSINE

    def test_fresh_collection_with_fingerprint_is_empty(self, store: VectorStore, emb: HashEmbedder) -> None:
        col = store.collection("docs", embedder=emb)
        assert col.count() == 0
        assert self.all_ids(col) == []
        assert col.search(unit(np.random.default_rng(0), 1)[0], k=5) == []
        assert col.fetch(["x"]) == []

    def test_dimension_mismatch_names_both(self, store: VectorStore) -> None:
        store.collection("docs", dim=DIM)
        with pytest.raises(DimensionMismatch) as err:
            store.collection("docs", dim=8)
        assert "16" in str(err.value) and "8" in str(err.value)
        with pytest.raises(DimensionMismatch, match="16"):
            store.collection("docs", embedder=HashEmbedder(8))

    def test_missing_collection(self, store: VectorStore) -> None:
        with pytest.raises(CollectionNotFound):
            store.collection("nope", dim=4, create=False)
        with pytest.raises(ConfigError, match="dim"):
            store.collection("nope")
        assert store.describe_collection("nope") is None
        store.drop("nope")  # dropping a missing collection is not an error

    def test_metric_mismatch(self, store: VectorStore) -> None:
        self.create_native_collection(store, "euclid", DIM, "euclid")
        spec = store.describe_collection("euclid")
        assert spec is not None and spec.distance != Distance.COSINE
        with pytest.raises(MetricMismatch) as err:
            store.collection("euclid", dim=DIM)
        assert "cosine" in str(err.value) and spec.distance.value in str(err.value)

    def test_collection_made_outside_opens(self, store: VectorStore, emb: HashEmbedder) -> None:
        self.create_native_collection(store, "ext", DIM, "cosine")
        spec = store.describe_collection("ext")
        assert spec is not None and spec.dim == DIM and spec.distance == Distance.COSINE
        assert not spec.fingerprint
        col = store.collection("ext", embedder=emb)
        col.upsert([Document("d1", "hello world")])
        assert [h.id for h in col.search("hello world", k=1)] == ["d1"]
        assert col.count() == 1

    def test_fingerprint_stored_and_checked(self, store: VectorStore, emb: HashEmbedder) -> None:
        store.collection("docs", embedder=emb)
        spec = store.describe_collection("docs")
        assert spec is not None and dict(spec.fingerprint or {}) == emb.fingerprint
        other = HashEmbedder(DIM, name="other/model")
        with pytest.raises(FingerprintMismatch) as err:
            store.collection("docs", embedder=other)
        assert "other/model" in str(err.value) and emb.name in str(err.value)
        col = store.collection("docs", embedder=other, check_fingerprint=False)
        # The query instruction does not change stored vectors: not a different model.
        store.collection("docs", embedder=HashEmbedder(DIM, query_instruction="q: "))
        col.set_fingerprint(other.fingerprint)
        store.collection("docs", embedder=other)
        with pytest.raises(FingerprintMismatch):
            store.collection("docs", embedder=emb)
        col.set_fingerprint(None)
        assert not store.describe_collection("docs").fingerprint  # type: ignore[union-attr]
        store.collection("docs", embedder=emb)
        assert col.count() == 0  # the fingerprint is never a record

    def test_list_and_drop(self, store: VectorStore) -> None:
        for name in ("beta", "alpha"):
            store.collection(name, dim=4)
        assert sorted(store.list_collections()) == ["alpha", "beta"]
        store.drop("alpha")
        assert store.list_collections() == ["beta"]
        assert store.describe_collection("alpha") is None

    def test_dropped_collection_is_not_found(self, store: VectorStore) -> None:
        col = store.collection("gone", dim=4)
        store.drop("gone")
        for call in (col.count, lambda: col.search([1, 0, 0, 0]), lambda: col.fetch(["a"]),
                     lambda: list(col.scroll())):
            with pytest.raises(CollectionNotFound):
                call()

    # -------------------------------------------------------------------------------- ids
    def test_any_string_id_round_trips(self, store: VectorStore) -> None:
        col = store.collection("docs", dim=DIM)
        vecs = unit(np.random.default_rng(1), len(ODD_IDS))
        col.upsert([Record(id=i, vector=v, text=i) for i, v in zip(ODD_IDS, vecs, strict=True)])
        assert col.count() == len(ODD_IDS)
        assert [r.id for r in col.fetch(ODD_IDS)] == ODD_IDS
        assert sorted(self.all_ids(col, 4)) == sorted(ODD_IDS)
        for i, v in zip(ODD_IDS, vecs, strict=True):
            hit = col.search(v, k=1)[0]
            assert hit.id == i and hit.text == i
        col.delete(ids=ODD_IDS[:5])
        assert sorted(self.all_ids(col)) == sorted(ODD_IDS[5:])

    def test_duplicate_ids_last_wins(self, store: VectorStore) -> None:
        col = store.collection("docs", dim=DIM)
        v = unit(np.random.default_rng(2), 3)
        res = col.upsert([Record("a", v[0], "first"), Record("b", v[1], "b"), Record("a", v[2], "last")])
        assert res.written == 2 and res.ok
        assert col.count() == 2
        (a,) = col.fetch(["a"], with_vectors=True)
        assert a.text == "last"
        np.testing.assert_allclose(a.vector, v[2], atol=1e-6)
        col.upsert([Record("a", v[0], "overwritten")])  # a later call overwrites too
        assert col.count() == 2 and col.fetch(["a"])[0].text == "overwritten"

    # ------------------------------------------------------------------------------ round trip
    def test_text_and_metadata_round_trip_exactly(self, store: VectorStore, emb: HashEmbedder) -> None:
        col = store.collection("docs", embedder=emb)
        col.upsert([Document("doc", ROUND_TRIP_TEXT, ROUND_TRIP_METADATA)])
        col.upsert([Record("rec", emb.embed_documents(["x"])[0], None, {"k": 1}, content_hash="h1")])
        doc, rec = col.fetch(["doc", "rec"])
        assert doc.text == ROUND_TRIP_TEXT and rec.text is None
        # json.dumps keeps 1 and 1.0 apart, and True apart from 1; == alone would not.
        assert json.dumps(dict(doc.metadata), sort_keys=True) == json.dumps(ROUND_TRIP_METADATA, sort_keys=True)
        assert type(doc.metadata["int"]) is int and type(doc.metadata["float"]) is float
        assert rec.content_hash == "h1" and dict(rec.metadata) == {"k": 1}
        hit = col.search(ROUND_TRIP_TEXT, k=1)[0]
        assert hit.id == "doc" and hit.text == ROUND_TRIP_TEXT
        assert json.dumps(dict(hit.metadata), sort_keys=True) == json.dumps(ROUND_TRIP_METADATA, sort_keys=True)
        (scrolled,) = [r for page in col.scroll() for r in page if r.id == "doc"]
        assert scrolled.metadata == ROUND_TRIP_METADATA and scrolled.text == ROUND_TRIP_TEXT

    # ---------------------------------------------------------------------------- search
    def test_scores_are_cosine_like_the_reference(self, store: VectorStore) -> None:
        rng = np.random.default_rng(3)
        raw = rng.normal(size=(60, DIM)) * rng.uniform(0.1, 10, size=(60, 1))  # unnormalized on purpose
        col = store.collection("docs", dim=DIM)
        ref = MemoryStore().collection("docs", dim=DIM)
        recs = [Record(f"p{i}", raw[i], metadata={"g": i % 3}) for i in range(60)]
        col.upsert(recs)
        ref.upsert(recs)
        normed = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        for q in rng.normal(size=(5, DIM)):
            hits = col.search(q, k=10)
            same_ranking(hits, ref.search(q, k=10))
            want = normed @ (q / np.linalg.norm(q))
            for h in hits:
                assert abs(h.score - want[int(h.id[1:])]) <= SCORE_TOL
            assert all(a.score >= b.score - TIE_TOL for a, b in itertools.pairwise(hits))
            same_ranking(col.search(q, k=7, where={"g": 1}), ref.search(q, k=7, where={"g": 1}))
        assert len(col.search(rng.normal(size=DIM), k=100)) == 60

    def test_search_by_text_and_with_vectors(self, store: VectorStore, emb: HashEmbedder) -> None:
        col = store.collection("docs", embedder=emb)
        texts = ["the cat sat on the mat", "quantum chromodynamics", "a dog in the fog", "中文文本检索"]
        col.upsert([Document(f"d{i}", t, {"n": i}) for i, t in enumerate(texts)])
        hits = col.search("quantum chromodynamics", k=4, with_vectors=True)
        q = emb.embed_query("quantum chromodynamics")
        docs = emb.embed_documents(texts)
        for h in hits:
            n = int(h.id[1:])
            assert h.metadata == {"n": n} and h.text == texts[n]
            assert abs(h.score - float(docs[n] @ q)) <= SCORE_TOL
            np.testing.assert_allclose(h.vector, docs[n], atol=1e-5)
        assert hits[0].id == "d1"
        assert col.search("cat", k=2)[0].vector is None

    def test_text_search_on_dim_only_collection_is_input_error(self, store: VectorStore) -> None:
        col = store.collection("raw", dim=DIM)
        with pytest.raises(InputError, match="embedder"):
            col.search("some text")
        with pytest.raises(InputError, match="embedder"):
            col.upsert([Document("a", "text")])
        assert col.count() == 0

    # ----------------------------------------------------------------------------- filters
    @pytest.fixture
    def filter_col(self, store: VectorStore) -> Any:
        col = store.collection("filt", dim=DIM)
        vecs = unit(np.random.default_rng(4), len(FILTER_ROWS))
        col.upsert([Record(rid, vecs[i], rid, meta) for i, (rid, meta) in enumerate(FILTER_ROWS)])
        return col

    def test_filters_agree_with_reference(self, filter_col: Any) -> None:
        q = unit(np.random.default_rng(5), 1)[0]
        informative = 0
        for where in FILTERS:
            node = filters.parse(where)
            want = {rid for rid, meta in FILTER_ROWS if filters.matches(node, meta)}
            informative += 0 < len(want) < len(FILTER_ROWS)
            assert filter_col.count(where=where) == len(want), where
            assert set(self.all_ids(filter_col, 3, where=where)) == want, where
            hits = filter_col.search(q, k=len(FILTER_ROWS), where=where)
            assert {h.id for h in hits} == want, where
        assert informative >= len(FILTERS) - 6  # the table mostly splits the rows

    def test_bad_filters_raise_filter_error(self, filter_col: Any) -> None:
        q = unit(np.random.default_rng(6), 1)[0]
        for where in BAD_FILTERS:
            with pytest.raises(FilterError):
                filter_col.count(where=where)
            with pytest.raises(FilterError):
                filter_col.search(q, where=where)
            with pytest.raises(FilterError):
                list(filter_col.scroll(where=where))
            with pytest.raises(FilterError):
                filter_col.delete(where=where)
        assert filter_col.count() == len(FILTER_ROWS)

    def test_delete_by_filter_and_count(self, filter_col: Any) -> None:
        where = {"lang": "en"}
        n = sum(filters.matches(filters.parse(where), m) for _, m in FILTER_ROWS)
        deleted = filter_col.delete(where=where)
        assert deleted in (n, None)
        assert filter_col.count(where=where) == 0
        assert filter_col.count() == len(FILTER_ROWS) - n
        with pytest.raises(InputError):
            filter_col.delete(where={})
        with pytest.raises(InputError):
            filter_col.delete()

    # ---------------------------------------------------------------- fetch / delete / scroll
    def test_fetch_order_and_missing(self, store: VectorStore) -> None:
        col = store.collection("docs", dim=DIM)
        recs = self.fill(col, 10)
        got = col.fetch(["id0007", "missing", "id0002", "id0007", "id0000"], with_vectors=True)
        assert [r.id for r in got] == ["id0007", "id0002", "id0000"]
        np.testing.assert_allclose(got[0].vector, recs[7].vector, atol=1e-6)
        assert got[1].metadata == {"i": 2, "even": True} and got[1].text == "text 2"
        assert col.fetch(["id0001"])[0].vector is None
        assert col.fetch([]) == []
        with pytest.raises(InputError):
            col.fetch("id0001")

    def test_delete_by_ids(self, store: VectorStore) -> None:
        col = store.collection("docs", dim=DIM)
        self.fill(col, 10)
        col.delete(ids=["id0001", "id0003", "never-there"])
        assert col.count() == 8
        assert col.fetch(["id0001", "id0002"])[0].id == "id0002"
        col.delete(ids=[])
        assert col.count() == 8

    @pytest.mark.parametrize("batch_size", [1, 4, 36, 37, 38, 1000])
    def test_scroll_covers_everything_once(self, store: VectorStore, batch_size: int) -> None:
        col = store.collection("docs", dim=DIM)
        recs = self.fill(col, 37)
        pages = list(col.scroll(batch_size, with_vectors=True))
        assert all(0 < len(p) <= batch_size for p in pages)
        got = [r for p in pages for r in p]
        assert sorted(r.id for r in got) == [r.id for r in recs]
        by_id = {r.id: r for r in recs}
        for r in got:
            np.testing.assert_allclose(r.vector, by_id[r.id].vector, atol=1e-6)
            assert r.metadata == by_id[r.id].metadata
        plain = [r for p in col.scroll(batch_size) for r in p]
        assert len(plain) == 37 and all(r.vector is None for r in plain)
        evens = self.all_ids(col, batch_size, where={"even": True})
        assert sorted(evens) == [r.id for r in recs if r.metadata["even"]]
        assert col.count(where={"even": True}) == 19 and col.count(where={"i": {"$gte": 30}}) == 7

    # ---------------------------------------------------------------------------- bad input
    @pytest.mark.parametrize("vector, error", [
        ([float("nan")] + [0.1] * (DIM - 1), "NaN"),
        ([float("inf")] + [0.1] * (DIM - 1), "NaN or infinity"),
        ([0.0] * DIM, "zeros"),
        ([0.1] * (DIM - 1), "numbers"),
        (None, "missing"),
        ("not a vector", "missing"),
    ])
    def test_bad_vectors_refused_before_writing(self, store: VectorStore, vector: Any, error: str) -> None:
        col = store.collection("docs", dim=DIM)
        good = Record("good", [0.1] * DIM)
        with pytest.raises((InputError, DimensionMismatch), match=error) as err:
            col.upsert([good, Record("bad-one", vector)])
        assert "item 1" in str(err.value) and "bad-one" in str(err.value)
        assert col.count() == 0
        res = col.upsert([good, Record("bad-one", vector)], on_invalid="report", raise_on_error=False)
        assert res.written == 1 and [f.id for f in res.failed] == ["bad-one"]
        assert col.count() == 1

    @pytest.mark.parametrize("item, error", [
        (Document("d", ""), "empty"),
        (Document("d", "   "), "empty"),
        (Document("d", 5), "string"),  # type: ignore[arg-type]
        (Document("", "text"), "id"),
        (Document(None, "text"), "id"),  # type: ignore[arg-type]
        (Document(7, "text"), "id"),  # type: ignore[arg-type]
        (Document("d", "text", {"x": object()}), "JSON"),
        (Document("d", "text", {"x": float("nan")}), "JSON"),
        (Document("d", "text", {1: "x"}), "keys"),  # type: ignore[dict-item]
        (Document("d", "text", ["not", "a", "dict"]), "dict"),  # type: ignore[arg-type]
        (Record("r", [0.1] * DIM, text=5), "text"),  # type: ignore[arg-type]
        ("just a string", "Document or Record"),
    ])
    def test_bad_items_refused_naming_them(self, store: VectorStore, emb: HashEmbedder, item: Any, error: str) -> None:
        col = store.collection("docs", embedder=emb)
        with pytest.raises(InputError, match=error) as err:
            col.upsert([Document("ok", "fine text"), item])
        assert "item 1" in str(err.value)
        assert col.count() == 0 and emb.calls == 0

    def test_single_item_is_refused(self, store: VectorStore, emb: HashEmbedder) -> None:
        col = store.collection("docs", embedder=emb)
        with pytest.raises(InputError, match="list"):
            col.upsert(Document("a", "text"))  # type: ignore[arg-type]
        with pytest.raises(InputError):
            col.search("x", k=0)
        with pytest.raises(InputError):
            list(col.scroll(0))

    # ----------------------------------------------------------------------------- batching
    @staticmethod
    def spy_batches(store: VectorStore) -> list[int]:
        """Record the size of every batch the store is asked to write (still writing it)."""
        sizes: list[int] = []
        real = store.upsert_records

        def spy(name: str, records: Sequence[Record]) -> Any:
            sizes.append(len(records))
            return real(name, records)

        store.upsert_records = spy  # type: ignore[method-assign]
        return sizes

    def test_batches_by_count(self, store: VectorStore) -> None:
        col = store.collection("docs", dim=DIM)
        store.max_batch_count = 7  # type: ignore[misc]
        sizes = self.spy_batches(store)
        recs = self.fill(col, 30)
        assert sizes == [7, 7, 7, 7, 2]
        assert sorted(self.all_ids(col)) == [r.id for r in recs]

    def test_batches_by_bytes_and_too_big_reported(self, store: VectorStore) -> None:
        col = store.collection("docs", dim=DIM)
        sizes = self.spy_batches(store)
        vecs = unit(np.random.default_rng(7), 10)
        recs = [Record(f"r{i}", vecs[i], "t" * 100) for i in range(10)]
        one = store.record_nbytes(recs[0])
        store.max_batch_bytes = 3 * one  # type: ignore[misc]
        huge = Record("huge", vecs[0], "t" * (4 * one))
        res = col.upsert([*recs[:5], huge, *recs[5:]], raise_on_error=False)
        assert res.written == 10 and [f.id for f in res.failed] == ["huge"]
        assert "bytes" in res.failed[0].reason
        assert sizes == [3, 3, 3, 1]
        assert col.count() == 10 and col.fetch(["huge"]) == []
        with pytest.raises(WriteError, match="huge"):
            col.upsert([huge])

    # ------------------------------------------------------------------------------- faults
    def _faulty(self, store: VectorStore, **kw: Any) -> FaultInjector:
        made: list[FaultInjector] = []

        def wrap(client: Any) -> FaultInjector:
            made.append(FaultInjector(client, self.write_methods, **kw))
            return made[-1]

        self.inject_faults(store, wrap)
        return made[0]

    @pytest.mark.parametrize("when", ["before", "after", "mixed"])
    def test_transient_write_failures_land_exactly_once(
        self, store: VectorStore, sleeps: list[float], when: str
    ) -> None:
        col = store.collection("docs", dim=DIM)
        store.max_batch_count = 10  # type: ignore[misc]
        faults = self._faulty(store, error=self.transient_error, rate=0.3, when=when, seed=11)
        vecs = unit(np.random.default_rng(8), 200)
        recs = [Record(f"r{i:03d}", vecs[i], f"t{i}", {"i": i}) for i in range(200)]
        res = col.upsert(recs)
        assert res.written == 200 and res.ok
        assert faults.failures >= 5 and len(sleeps) == faults.failures
        ids = self.all_ids(col, 33)
        assert sorted(ids) == [r.id for r in recs]  # each exactly once
        assert col.count() == 200
        assert [r.metadata["i"] for r in col.fetch(["r007", "r199"])] == [7, 199]

    def test_permanent_error_reported_with_ids(self, store: VectorStore, sleeps: list[float]) -> None:
        col = store.collection("docs", dim=DIM)
        store.max_batch_count = 10  # type: ignore[misc]
        # The second batch is refused, and so is every part of it: Collection.write bisects a
        # refused batch (19 calls isolate its 10 records), then the third batch is written.
        faults = self._faulty(store, error=self.permanent_error, fail_calls=set(range(2, 21)))
        vecs = unit(np.random.default_rng(9), 30)
        recs = [Record(f"r{i:02d}", vecs[i]) for i in range(30)]
        with pytest.raises(WriteError) as err:
            col.upsert(recs)
        assert sorted(f.id for f in err.value.failed) == [f"r{i:02d}" for i in range(10, 20)]
        assert err.value.written == 20 and "r10" in str(err.value)
        assert sleeps == [] and faults.calls == 21  # a permanent error is never retried as is
        assert sorted(self.all_ids(col)) == [f"r{i:02d}" for i in (*range(10), *range(20, 30))]

    def test_transient_errors_give_up_after_bounded_retries(self, store: VectorStore) -> None:
        waits: list[float] = []
        store.retry_policy = RetryPolicy(attempts=4, sleep=waits.append)
        col = store.collection("docs", dim=DIM)
        store.max_batch_count = 5  # type: ignore[misc]
        faults = self._faulty(store, error=self.transient_error, rate=1.0)
        vecs = unit(np.random.default_rng(10), 12)
        res = col.upsert([Record(f"r{i}", vecs[i]) for i in range(12)], raise_on_error=False)
        assert res.written == 0 and len(res.failed) == 12
        assert faults.calls == 4 and len(waits) == 3  # one batch tried 4 times, the rest not attempted
        assert all(math.isfinite(w) and w > 0 for w in waits)
        assert sum("not attempted" in f.reason for f in res.failed) == 7

