"""Pinecone's data plane through the pinecone SDK (10.2, API 2026-07), as its users call it.

Each scenario states what Pinecone's documentation says the answer is (the API reference, the
"Known limitations" page, the SDK's own docstrings) and checks the fake gives it. Vectors are
small and hand-made so that every expected score and ranking is worked out in the comments.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pinecone.errors.exceptions import ApiError, ConflictError, NotFoundError, PineconeValueError

FILMS = [  # id, vector, metadata
    ("a", [1.0, 0.0, 0.0], {"genre": "drama", "year": 2019, "tags": ["x", "y"]}),
    ("b", [0.8, 0.6, 0.0], {"genre": "comedy", "year": 2021}),
    ("c", [0.0, 1.0, 0.0], {"genre": "drama", "year": 2023}),
    ("d", [0.0, 0.0, 1.0], {"genre": "horror"}),
]


@pytest.fixture
def films(make_index: Any) -> Any:
    index = make_index("films", 3, "cosine")
    index.upsert(vectors=FILMS)
    return index


def test_upsert_then_fetch_round_trips(films: Any) -> None:
    # Fetch returns the stored values and metadata; numbers come back as floats (metadata numbers
    # are 64-bit floats); IDs not in the namespace are simply absent.
    got = films.fetch(ids=["a", "b", "zz"])
    assert set(got.vectors) == {"a", "b"}
    assert got.vectors["a"].values == [1.0, 0.0, 0.0]
    assert got.vectors["a"].metadata == {"genre": "drama", "year": 2019.0, "tags": ["x", "y"]}
    assert isinstance(got.vectors["a"].metadata["year"], float)


def test_query_by_vector_ranks_by_cosine(films: Any) -> None:
    # q = (1, 1, 0)/sqrt2: cos with a = 0.7071, b = (0.8 + 0.6)/sqrt2 = 0.9899, c = 0.7071, d = 0.
    res = films.query(vector=[1.0, 1.0, 0.0], top_k=3)
    assert [m.id for m in res.matches] == ["b", "a", "c"]
    assert [round(m.score, 4) for m in res.matches] == [0.9899, 0.7071, 0.7071]
    # Unrequested values are an empty list and unrequested metadata is None (SDK docstring).
    assert res.matches[0].values == [] and res.matches[0].metadata is None
    full = films.query(vector=[1.0, 1.0, 0.0], top_k=1, include_values=True, include_metadata=True)
    assert full.matches[0].values == pytest.approx([0.8, 0.6, 0.0]) and full.matches[0].metadata["year"] == 2021


def test_query_by_id_uses_the_stored_vector(films: Any) -> None:
    # "id: The unique ID of the vector to be used as a query vector."  b itself scores 1.
    res = films.query(id="b", top_k=2)
    assert [m.id for m in res.matches] == ["b", "a"] and res.matches[0].score == pytest.approx(1.0)
    assert res.matches[1].score == pytest.approx(0.8)


def test_query_with_metadata_filters(films: Any) -> None:
    def ids(flt: dict[str, Any]) -> list[str]:
        return sorted(m.id for m in films.query(vector=[1.0, 1.0, 1.0], top_k=10, filter=flt).matches)

    assert ids({"genre": {"$eq": "drama"}}) == ["a", "c"]
    assert ids({"genre": "drama", "year": {"$gte": 2020}}) == ["c"]  # a bare value means $eq
    assert ids({"genre": {"$in": ["comedy", "horror"]}}) == ["b", "d"]
    assert ids({"year": {"$exists": False}}) == ["d"]
    assert ids({"$or": [{"year": {"$lt": 2020}}, {"genre": "horror"}]}) == ["a", "d"]
    assert ids({"tags": {"$in": ["y"]}}) == ["a"]  # a list field matches when any element does
    assert ids({"year": {"$ne": 2019}}) == ["b", "c"]  # $ne is false on a missing field


@pytest.mark.parametrize("metric, expected", [
    # q = (1, 0, 0): dot = a 1, b 0.8, c 0, d 0; squared euclidean = a 0, b 0.4, c 2, d 2.
    ("dotproduct", [("a", 1.0), ("b", 0.8), ("c", 0.0)]),
    ("euclidean", [("a", 0.0), ("b", 0.4), ("c", 2.0)]),
])
def test_query_in_each_metric(make_index: Any, metric: str, expected: list[tuple[str, float]]) -> None:
    index = make_index(f"films-{metric}", 3, metric)
    index.upsert(vectors=FILMS)
    res = index.query(vector=[1.0, 0.0, 0.0], top_k=3)
    assert [(m.id, round(m.score, 4)) for m in res.matches] == expected


def test_sparse_dense_query_on_dotproduct(make_index: Any) -> None:
    # Hybrid search: a record's score is its dense dot product plus its sparse dot product.
    index = make_index("hybrid", 2, "dotproduct")
    index.upsert(vectors=[
        {"id": "p", "values": [1.0, 0.0], "sparse_values": {"indices": [3, 7], "values": [0.5, 2.0]}},
        {"id": "q", "values": [0.9, 0.0], "sparse_values": {"indices": [7], "values": [4.0]}},
    ])
    res = index.query(vector=[1.0, 0.0], sparse_vector={"indices": [7], "values": [1.0]}, top_k=2)
    assert [(m.id, round(m.score, 4)) for m in res.matches] == [("q", 4.9), ("p", 3.0)]
    stored = index.fetch(ids=["p"]).vectors["p"].sparse_values
    assert (stored.indices, stored.values) == ([3, 7], [0.5, 2.0])


def test_sparse_query_needs_dotproduct(films: Any) -> None:
    # "Only indexes using the dotproduct distance metric support querying sparse-dense vectors."
    with pytest.raises(ApiError) as err:
        films.query(vector=[1.0, 0.0, 0.0], sparse_vector={"indices": [1], "values": [1.0]}, top_k=1)
    assert err.value.status_code == 400


def test_query_namespaces_merges_rankings(films: Any) -> None:
    films.upsert(vectors=[("e", [0.9, 0.1, 0.0], {"genre": "drama"})], namespace="extra")
    res = films.query_namespaces(vector=[1.0, 0.0, 0.0], namespaces=["", "extra"], metric="cosine", top_k=3)
    # cos with (1,0,0): a 1.0, e 0.9939, b 0.8
    assert [(m.id, round(m.score, 4)) for m in res.matches] == [("a", 1.0), ("e", 0.9939), ("b", 0.8)]


def test_default_namespace_is_addressable_as___default__(films: Any) -> None:
    # "To use the default namespace, set this to "__default__"" (fetch, query, list, delete, ...).
    assert set(films.fetch(ids=["a", "b"], namespace="__default__").vectors) == {"a", "b"}
    assert films.query(vector=[1.0, 0.0, 0.0], top_k=1, namespace="__default__").matches[0].id == "a"
    assert [v.id for v in films.list_paginated(namespace="__default__").vectors] == ["a", "b", "c", "d"]
    assert films.describe_index_stats().namespaces["__default__"].vector_count == 4
    films.upsert(vectors=[("f", [0.0, 0.5, 0.5])], namespace="__default__")
    films.delete(ids=["a"], namespace="__default__")
    assert sorted(films.fetch(ids=["a", "f"]).vectors) == ["f"]


def test_update_by_id_patches_values_and_merges_metadata(films: Any) -> None:
    # "If set_metadata is included, only the specified metadata fields are modified, and if a
    # specified metadata field does not exist, it is added."
    films.update(id="a", values=[0.0, 0.0, 1.0], set_metadata={"year": 2020, "rating": 7})
    got = films.fetch(ids=["a"]).vectors["a"]
    assert got.values == [0.0, 0.0, 1.0]
    assert got.metadata == {"genre": "drama", "year": 2020.0, "tags": ["x", "y"], "rating": 7.0}
    assert films.update(id="b", set_metadata={"seen": True}).matched_records is None  # no count by id


def test_update_by_filter_with_dry_run(films: Any) -> None:
    preview = films.update(filter={"genre": "drama"}, set_metadata={"reviewed": True}, dry_run=True)
    assert preview.matched_records == 2
    assert not any("reviewed" in (v.metadata or {}) for v in films.fetch(ids=["a", "b", "c", "d"]).vectors.values())
    done = films.update(filter={"genre": "drama"}, set_metadata={"reviewed": True})
    got = films.fetch(ids=["a", "b", "c", "d"]).vectors
    assert done.matched_records == 2
    assert sorted(k for k, v in got.items() if (v.metadata or {}).get("reviewed")) == ["a", "c"]


def test_fetch_by_metadata_pages_through_every_match(make_index: Any) -> None:
    index = make_index("many", 2, "cosine")
    index.upsert(vectors=[(f"r{i:02d}", [1.0, float(i)], {"even": i % 2 == 0}) for i in range(25)])
    seen: list[str] = []
    token = None
    while True:
        page = index.fetch_by_metadata(filter={"even": True}, limit=5, pagination_token=token)
        assert len(page.vectors) <= 5
        seen += list(page.vectors)
        if page.pagination is None or page.pagination.next is None:
            break
        token = page.pagination.next
    assert sorted(seen) == [f"r{i:02d}" for i in range(0, 25, 2)]
    with pytest.raises(PineconeValueError):  # an empty filter is refused, not "match everything"
        index.fetch_by_metadata(filter={})


def test_delete_by_ids_filter_and_all(films: Any) -> None:
    films.delete(ids=["a", "nope"])  # IDs the namespace does not hold are ignored
    films.delete(filter={"genre": "horror"})
    assert sorted(films.fetch(ids=["a", "b", "c", "d"]).vectors) == ["b", "c"]
    films.upsert(vectors=[("x", [1.0, 1.0, 1.0])], namespace="staging")
    films.delete(delete_all=True, namespace="staging")  # empties it; the namespace survives
    assert films.fetch(ids=["x"], namespace="staging").vectors == {}
    assert films.describe_namespace(name="staging").record_count == 0


def test_describe_index_stats(films: Any) -> None:
    films.upsert(vectors=[("x", [1.0, 1.0, 1.0])], namespace="other")
    stats = films.describe_index_stats()
    assert stats.dimension == 3 and stats.total_vector_count == 5
    assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"__default__": 4, "other": 1}
    with pytest.raises(ApiError) as err:  # serverless indexes do not filter stats by metadata
        films.describe_index_stats(filter={"genre": "drama"})
    assert err.value.status_code == 400


def test_list_ids_with_prefix_and_pages(make_index: Any) -> None:
    index = make_index("listing", 2, "cosine")
    index.upsert(vectors=[(f"doc#{i}", [1.0, 0.0]) for i in range(7)] + [("other", [0.0, 1.0])])
    pages = list(index.list(prefix="doc#", limit=3))
    assert [len(p.vectors) for p in pages] == [3, 3, 1]
    assert sorted(v.id for p in pages for v in p.vectors) == [f"doc#{i}" for i in range(7)]


def test_namespaces_lifecycle(films: Any) -> None:
    created = films.create_namespace(name="fr")
    assert (created.name, created.record_count) == ("fr", 0)
    with pytest.raises(ConflictError):  # "Not idempotent: an existing name raises ConflictError"
        films.create_namespace(name="fr")
    with pytest.raises(PineconeValueError):  # "__default__ is reserved and cannot be created"
        films.create_namespace(name="__default__")
    films.upsert(vectors=[("x", [1.0, 0.0, 0.0], {"lang": "fr"})], namespace="fr")
    described = films.describe_namespace(name="fr")
    assert described.record_count == 1 and described.indexed_fields.fields == ["lang"]
    assert films.describe_namespace(name="__default__").record_count == 4
    listed = [ns.name for page in films.list_namespaces(limit=1) for ns in page.namespaces]
    assert listed == ["__default__", "fr"]
    page = films.list_namespaces_paginated(prefix="f")
    assert [ns.name for ns in page.namespaces] == ["fr"] and page.total_count == 1
    films.delete_namespace(name="fr")
    with pytest.raises(NotFoundError):
        films.describe_namespace(name="fr")
    assert films.fetch(ids=["x"], namespace="fr").vectors == {}


def test_null_metadata_is_refused(films: Any) -> None:
    # Known limitations: "Null metadata values aren't supported. Instead of setting a key to
    # null, remove the key from the metadata payload."
    with pytest.raises(ApiError) as err:
        films.upsert(vectors=[("n", [1.0, 0.0, 0.0], {"genre": None})])
    assert err.value.status_code == 400 and "null" in str(err.value)
    assert films.fetch(ids=["n"]).vectors == {}


def test_upsert_in_batches_and_from_a_dataframe(make_index: Any) -> None:
    pd = pytest.importorskip("pandas")
    index = make_index("frames", 2, "cosine")
    res = index.upsert(vectors=[(f"v{i}", [1.0, float(i)]) for i in range(10)], batch_size=4, show_progress=False)
    assert res.upserted_count == 10 and res.total_batch_count == 3
    frame = pd.DataFrame({"id": ["w0", "w1"], "values": [[1.0, 0.0], [0.0, 1.0]],
                          "metadata": [{"k": "a"}, {"k": "b"}]})
    assert index.upsert_from_dataframe(frame, show_progress=False).upserted_count == 2
    assert index.fetch(ids=["w1"]).vectors["w1"].metadata == {"k": "b"}
    assert index.describe_index_stats().total_vector_count == 12


def test_vectors_are_stored_as_float32(films: Any) -> None:
    # "Pinecone stores vector values as 32-bit floats, so fetched values can differ slightly."
    films.upsert(vectors=[("p", [0.1, 0.2, 0.3])])
    values = films.fetch(ids=["p"]).vectors["p"].values
    assert values != [0.1, 0.2, 0.3] and all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(values, [0.1, 0.2, 0.3], strict=True))
