"""Properties the services document, checked by Hypothesis over many generated corpora, through
the real SDKs: rankings equal a numpy brute force, hybrid search at alpha 1 / 0 *is* vector /
keyword search, sorting and cursors visit every object once, pagination partitions the matches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import weaviate
import weaviate.classes as wvc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pinecone import Pinecone
from weaviate.classes.query import MetadataQuery, Sort

from tests.fakes.pinecone_server import API_KEY, running_pinecone_fake
from tests.fakes.weaviate_server import running_weaviate_fake

WORDS = ["red", "green", "blue", "fox", "dog", "cat", "sun", "moon"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_names = itertools.count()

vectors = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=3, max_size=3).filter(
    lambda v: float(np.linalg.norm(v)) > 0.1)
docs = st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), vectors,
                          st.one_of(st.none(), st.integers(-5, 5))), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def wv() -> Iterator[Any]:
    with running_weaviate_fake() as fake:
        client = weaviate.connect_to_local(port=fake.http_port, grpc_port=fake.grpc_port, skip_init_checks=True)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="module")
def pc() -> Iterator[Any]:
    with running_pinecone_fake() as fake:
        client = Pinecone(api_key=API_KEY, host=fake.control_host)
        try:
            yield client
        finally:
            client.close()


def _collection(wv: Any, corpus: list[Any]) -> tuple[Any, list[str]]:
    col = wv.collections.create(f"Prop{next(_names)}", properties=[
        wvc.config.Property(name="text", data_type=wvc.config.DataType.TEXT),
        wvc.config.Property(name="n", data_type=wvc.config.DataType.INT)])
    objs = [wvc.data.DataObject(properties={"text": " ".join(w), **({"n": n} if n is not None else {})},
                                vector=v) for w, v, n in corpus]
    res = col.data.insert_many(objs)
    return col, [str(res.uuids[i]) for i in range(len(corpus))]


def _cosine_distance(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@SETTINGS
@given(corpus=docs, query=vectors)
def test_weaviate_near_vector_equals_brute_force(wv: Any, corpus: list[Any], query: list[float]) -> None:
    col, ids = _collection(wv, corpus)
    res = col.query.near_vector(query, limit=len(corpus), return_metadata=MetadataQuery(distance=True))
    expected = {ids[i]: _cosine_distance(v, query) for i, (_, v, _) in enumerate(corpus)}
    got = [(str(o.uuid), o.metadata.distance) for o in res.objects]
    assert sorted(u for u, _ in got) == sorted(expected)
    assert all(abs(d - expected[u]) < 1e-5 for u, d in got)
    assert [d for _, d in got] == sorted(d for _, d in got)


@SETTINGS
@given(corpus=docs, query=vectors, words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
def test_weaviate_hybrid_extremes_are_vector_and_keyword_search(wv: Any, corpus: list[Any], query: list[float],
                                                                words: list[str]) -> None:
    col, _ = _collection(wv, corpus)
    text = " ".join(words)
    meta = MetadataQuery(score=True, distance=True)
    vector = col.query.near_vector(query, limit=len(corpus), return_metadata=meta)
    pure_vector = col.query.hybrid(text, vector=query, alpha=1, limit=len(corpus), return_metadata=meta)
    dist = {str(o.uuid): o.metadata.distance for o in vector.objects}
    assert sorted(dist) == sorted(str(o.uuid) for o in pure_vector.objects)
    along = [dist[str(o.uuid)] for o in pure_vector.objects]  # ties may come in any order
    assert all(a <= b + 1e-6 for a, b in itertools.pairwise(along))
    keyword = col.query.bm25(text, limit=len(corpus), return_metadata=meta)
    pure_keyword = col.query.hybrid(text, vector=query, alpha=0, limit=len(corpus), return_metadata=meta)
    bm = {str(o.uuid): o.metadata.score for o in keyword.objects}
    assert sorted(bm) == sorted(str(o.uuid) for o in pure_keyword.objects)
    along = [bm[str(o.uuid)] for o in pure_keyword.objects]
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(along))
    mixed = col.query.hybrid(text, vector=query, alpha=0.5, limit=len(corpus), return_metadata=meta)
    assert all(-1e-6 <= o.metadata.score <= 1 + 1e-6 for o in mixed.objects)  # weights sum to 1


@SETTINGS
@given(corpus=docs, page=st.integers(1, 5))
def test_weaviate_sort_and_cursor_visit_every_object_once(wv: Any, corpus: list[Any], page: int) -> None:
    col, ids = _collection(wv, corpus)
    values = [o.properties.get("n") for o in col.query.fetch_objects(limit=100, sort=Sort.by_property("n")).objects]
    present = [v for v in values if v is not None]
    assert values == [None] * (len(values) - len(present)) + sorted(present)  # nulls first
    assert sorted(present) == sorted(n for _, _, n in corpus if n is not None)
    seen = [str(o.uuid) for o in col.iterator(cache_size=page)]  # the cursor API, `after` pages
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))


records = st.lists(st.tuples(st.sampled_from(["g1", "g2", "g3"]), vectors), min_size=1, max_size=30)


@SETTINGS
@given(rows=records, query=vectors, top_k=st.integers(1, 40))
def test_pinecone_query_equals_brute_force(pc: Any, rows: list[Any], query: list[float], top_k: int) -> None:
    name = f"prop-{next(_names)}"
    pc.indexes.create(name=name, dimension=3, spec={"serverless": {"cloud": "aws", "region": "us-east-1"}},
                      timeout=-1)
    index = pc.index(name)
    index.upsert(vectors=[(f"r{i}", v, {"g": g}) for i, (g, v) in enumerate(rows)])
    got = index.query(vector=query, top_k=top_k, filter={"g": "g1"})
    expected = sorted((1 - _cosine_distance(v, query), f"r{i}") for i, (g, v) in enumerate(rows) if g == "g1")
    expected = expected[::-1][:top_k]
    assert len(got.matches) == len(expected)
    assert all(abs(m.score - s) < 1e-5 for m, (s, _) in zip(got.matches, expected, strict=True))
    pc.indexes.delete(name, timeout=-1)


@SETTINGS
@given(rows=records, limit=st.integers(1, 7), group=st.sampled_from(["g1", "g2", "g3"]))
def test_pinecone_pages_partition_the_matches(pc: Any, rows: list[Any], limit: int, group: str) -> None:
    name = f"prop-{next(_names)}"
    pc.indexes.create(name=name, dimension=3, spec={"serverless": {"cloud": "aws", "region": "us-east-1"}},
                      timeout=-1)
    index = pc.index(name)
    index.upsert(vectors=[(f"r{i}", v, {"g": g}) for i, (g, v) in enumerate(rows)])
    seen, token = [], None
    while True:
        page = index.fetch_by_metadata(filter={"g": {"$eq": group}}, limit=limit, pagination_token=token)
        assert len(page.vectors) <= limit
        seen += list(page.vectors)
        token = page.pagination.next if page.pagination else None
        if token is None:
            break
    assert sorted(seen) == sorted(f"r{i}" for i, (g, _) in enumerate(rows) if g == group)
    listed = [v.id for p in index.list(limit=limit) for v in p.vectors]
    assert sorted(listed) == sorted(f"r{i}" for i in range(len(rows))) and len(listed) == len(set(listed))
    pc.indexes.delete(name, timeout=-1)
