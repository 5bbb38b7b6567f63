"""Filters and metadata on a real PostgreSQL: generated cases against the reference evaluator.

Hypothesis draws metadata full of type traps (1 / 1.0 / True / "1", integral floats such as 1e23
that are not the integer 10**23, big integers, -0.0, nulls, lists, nested objects) and filters
over every operator, nested keys and missing keys; what PostgreSQL returns must be exactly what
:func:`bge_vdb.filters.matches` says. Also: hostile names and values never reach SQL as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_vdb import filters
from bge_vdb.connectors.pgvector_sql import Params, to_json, to_sql
from bge_vdb.errors import InputError, WriteError
from bge_vdb.store import Collection, VectorStore
from bge_vdb.types import Record
from tests.support.pg_server import pgvector_store

DIM = 4
# Stored integers fit in 64 bits (bge-vdb refuses larger ones); filter values may be any size.
NUMBERS: list[Any] = [0, 1, -1, 2, 0.0, -0.0, 1.0, 2.0, 1.5, -2.5, 1e20, 1e23, 1e-300, 2**53, 2**53 + 1,
                      2.0**53, 9007199254740993, -(2**63), 2**63 - 1, 0.1, 1e16, 123456789.125]
FILTER_NUMBERS = [*NUMBERS, 10**23, 2**64, -(2**63) - 1]
STRINGS = ["1", "1.0", "true", "a", "", "中文", "x'y\"z\\", "null"]
SCALARS = st.one_of(st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(STRINGS),
                    st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False))
FILTER_SCALARS = st.one_of(st.booleans(), st.sampled_from(FILTER_NUMBERS), st.sampled_from(STRINGS),
                           st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False))
RANGE_VALUES = st.one_of(st.sampled_from(FILTER_NUMBERS), st.integers(-3, 3),
                         st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30))
KEYS = ["a", "b", "n.x", "n.y", "n", "a.x", "missing", "l"]

value = st.one_of(SCALARS, st.lists(SCALARS, max_size=2))
metadata = st.fixed_dictionaries({}, optional={
    "a": value, "b": value, "l": st.lists(SCALARS, max_size=2),
    "n": st.one_of(SCALARS, st.fixed_dictionaries({}, optional={"x": value, "y": SCALARS})),
})


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    key = st.sampled_from(KEYS)
    return st.one_of(
        st.builds(lambda k, v: {k: v}, key, FILTER_SCALARS),
        st.builds(lambda k, op, v: {k: {op: v}}, key, st.sampled_from(["$eq", "$ne"]), FILTER_SCALARS),
        st.builds(lambda k, op, v: {k: {op: v}}, key, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), RANGE_VALUES),
        st.builds(lambda k, op, v: {k: {op: v}}, key, st.sampled_from(["$in", "$nin"]),
                  st.lists(FILTER_SCALARS, min_size=1, max_size=3)),
        st.builds(lambda k, v: {k: {"$exists": v}}, key, st.booleans()),
    )


where = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x}, inner),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def store() -> Iterator[VectorStore]:
    with pgvector_store() as s:
        yield s


@pytest.fixture
def col(store: VectorStore) -> Collection:
    store.drop("props")
    return store.collection("props", dim=DIM)


def _records(rows: list[dict[str, Any]]) -> list[Record]:
    vecs = np.random.default_rng(len(rows)).normal(size=(len(rows), DIM)) + 0.1
    return [Record(f"r{i}", vecs[i], metadata=m) for i, m in enumerate(rows)]


def same_json(a: Any, b: Any) -> bool:
    """Equal with the same JSON types: 1 is not 1.0, True is not 1 (-0.0 and 0.0 are both 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(metadata, min_size=1, max_size=8), cases=st.lists(where, min_size=1, max_size=4))
def test_filters_match_the_reference_evaluator(col: Collection, rows: list[dict[str, Any]],
                                               cases: list[dict[str, Any]]) -> None:
    col.delete(ids=[r.id for p in col.scroll() for r in p])
    records = _records(rows)
    col.upsert(records)
    for case in cases:
        node = filters.parse(case)
        want = {r.id for r in records if filters.matches(node, r.metadata)}
        assert col.count(where=case) == len(want), case
        assert {r.id for p in col.scroll(3, where=case) for r in p} == want, case
        hits = col.search(np.ones(DIM), k=len(records), where=case)
        assert {h.id for h in hits} == want, case
    doomed = cases[0]
    gone = {r.id for r in records if filters.matches(filters.parse(doomed), r.metadata)}
    assert col.delete(where=doomed) == len(gone)
    assert {r.id for p in col.scroll() for r in p} == {r.id for r in records} - gone


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(metadata, min_size=1, max_size=6))
def test_metadata_round_trips_with_its_types(col: Collection, rows: list[dict[str, Any]]) -> None:
    records = _records(rows)
    col.upsert(records)
    got = {r.id: r.metadata for r in col.fetch([r.id for r in records])}
    for rec in records:
        assert same_json(dict(got[rec.id]), json.loads(json.dumps(dict(rec.metadata)))), (rec.metadata, got[rec.id])


def test_to_json_keeps_integral_floats_exact() -> None:
    assert to_json(1e23) == f"{int(1e23)}.0" and int(1e23) != 10**23
    assert to_json({"a": [1, 1.0, True, None, "x"]}) == '{"a":[1,1.0,true,null,"x"]}'
    assert json.loads(to_json(1e-300)) == 1e-300 and to_json(-0.0) == "0.0"
    with pytest.raises(InputError):
        to_json(math.inf)


def test_numbers_compare_exactly_across_int_and_float(col: Collection) -> None:
    rows = [{"v": 2**63 - 1}, {"v": 1e23}, {"v": 2**53 + 1}, {"v": 2.0**53}, {"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}]
    col.upsert(_records(rows))
    for case, want in [({"v": 1e23}, {"r1"}), ({"v": 10**23}, set()), ({"v": 2**53}, {"r3"}),
                       ({"v": 2**63 - 1}, {"r0"}), ({"v": float(2**63 - 1)}, set()),
                       ({"v": 1}, {"r4", "r5"}), ({"v": True}, {"r6"}), ({"v": "1"}, {"r7"}),
                       ({"v": {"$gt": 2**63}}, {"r1"}), ({"v": {"$gte": 2**53}}, {"r0", "r1", "r2", "r3"}),
                       ({"v": {"$in": [1.0, "1"]}}, {"r4", "r5", "r7"}), ({"v": {"$ne": 1}}, {f"r{i}" for i in (0, 1, 2, 3, 6, 7)})]:
        node = filters.parse(case)
        assert {f"r{i}" for i, m in enumerate(rows) if filters.matches(node, m)} == want, case  # the reference agrees
        assert {r.id for p in col.scroll(where=case) for r in p} == want, case


HOSTILE = ['x"; DROP TABLE victim; --', "Robert'); DROP TABLE victim;--", 'a"b', "semi;colon", "UPPER case",
           "名前 with space", "$1", "%s", "%(p0)s", "{}"]


def test_hostile_collection_names_and_filters_cannot_inject_sql() -> None:
    with pgvector_store() as store:
        _hostile(store)


def _hostile(store: VectorStore) -> None:
    victim = store.collection("victim", dim=DIM)
    victim.upsert(_records([{"k": 1}]))
    for name in HOSTILE:
        col = store.collection(name, dim=DIM)
        key = f"key {name}"  # a metadata key with quotes and SQL in it (dots would walk into objects)
        col.upsert([Record("id'); DROP TABLE victim; --", np.ones(DIM), "t'--", {key: name, "k": name})])
        assert col.count(where={key: name}) == 1 and col.count(where={key: {"$ne": name}}) == 0
        assert col.count(where={"k": {"$in": [name, "'); DROP TABLE victim; --"]}}) == 1
        assert [r.id for p in col.scroll() for r in p] == ["id'); DROP TABLE victim; --"]
        assert store.describe_collection(name) is not None
    assert set(HOSTILE) | {"victim"} == set(store.list_collections())
    for name in HOSTILE:
        store.drop(name)
    assert store.list_collections() == ["victim"] and victim.count() == 1


def test_filter_sql_binds_every_value() -> None:
    params = Params()
    text = repr(to_sql(filters.parse({"a.b": {"$in": ["'; --", 1]}, "c": {"$gt": 2}}), psycopg.sql.Identifier("m"), params))
    assert "--" not in text and "'; " not in text
    assert list(params.values.values()) == ["a", "b", ['"\'; --"', "1"], "c", "2"]


def test_nul_characters_are_refused_per_record(col: Collection) -> None:
    ok = Record("ok", np.ones(DIM), "fine", {"k": "v"})
    bad = [Record("bad-text", np.ones(DIM), "a\x00b"), Record("bad-meta", np.ones(DIM), None, {"k": "a\x00"}),
           Record("bad-key", np.ones(DIM), None, {"k\x00": 1}), Record("bad\x00id", np.ones(DIM))]
    res = col.upsert([ok, *bad], raise_on_error=False)
    assert res.written == 1 and sorted(f.id for f in res.failed) == sorted(r.id for r in bad)
    assert all("NUL" in f.reason for f in res.failed)
    with pytest.raises(WriteError, match="NUL"):
        col.upsert([bad[0]])
    assert [r.id for p in col.scroll() for r in p] == ["ok"]
