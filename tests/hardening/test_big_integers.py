"""Integers near and beyond 2**53 filter exactly or are refused (issue 14, item 3).

Qdrant, Pinecone and Weaviate compare numbers as 64-bit floats, where 2**53 + 1 == 2**53. The
filter language promises exact semantics or UnsupportedFilter: a property test over values near
2**53 compares every connector with the memory store's reference evaluator, and requires a
refusal exactly when a filter value is 2**53 or more in magnitude.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_vdb import Collection, Record
from bge_vdb.errors import InputError, UnsupportedFilter
from bge_vdb.filters import EXACT_FLOAT_INTS
from bge_vdb.retry import RetryPolicy
from tests.support.stores import STORE_FACTORIES

B = 2**53
STORED: list[Any] = [B - 2, B - 1, B, B + 1, B + 2, -B, -(B + 1), 2**60 + 1, 2**63 - 1, -(2**63),
                     float(B), float(B + 2), 0, 1, -1, 1.5, 2**52 + 0.5, 1e300, True, "9007199254740993"]
FLOAT_STORES = ["qdrant-local", "pinecone-fake", "weaviate-fake"]
EXACT_SCHEMES = ("memory", "postgresql")  # PostgreSQL compares jsonb numbers as numerics: exact


@pytest.fixture(scope="module", params=["memory", "pgvector", *FLOAT_STORES])
def collection(request: pytest.FixtureRequest) -> Iterator[Collection]:
    with tempfile.TemporaryDirectory() as tmp, STORE_FACTORIES[request.param](Path(tmp)) as store:
        store.retry_policy = RetryPolicy(attempts=3, sleep=lambda _s: None)
        col = store.collection("bigints", dim=4)
        rng = np.random.default_rng(0)
        records = [Record(f"r{i}", rng.normal(size=4), metadata={"n": v}) for i, v in enumerate(STORED)]
        records.append(Record("no-n", rng.normal(size=4), metadata={"other": 1}))
        col.upsert(records)
        yield col
        store.drop("bigints")


def reference(where: dict[str, Any]) -> set[str]:
    from bge_vdb.filters import matches, parse

    node = parse(where)
    out = {f"r{i}" for i, v in enumerate(STORED) if matches(node, {"n": v})}
    return out | ({"no-n"} if matches(node, {"other": 1}) else set())


near = st.one_of(
    st.integers(B - 4, B + 4), st.integers(-(B + 4), -(B - 4)), st.integers(2**60 - 2, 2**60 + 2),
    st.integers(-3, 3), st.sampled_from([float(B), float(B - 2), 2**52 + 0.5, 1.5, 1e300, 2**63 - 1]),
)
ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"])


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(ops)
    if op in ("$in", "$nin"):
        return {"n": {op: draw(st.lists(near, min_size=1, max_size=3))}}
    return {"n": {op: draw(near)}}


def too_big(where: dict[str, Any]) -> bool:
    arg = next(iter(where["n"].values()))
    return any(abs(v) >= EXACT_FLOAT_INTS for v in (arg if isinstance(arg, list) else [arg]))


def outcomes(col: Collection, where: dict[str, Any]) -> dict[str, Any]:
    """What count, scroll and search answer (ids), or "refused"."""
    calls = {
        "count": lambda: col.count(where=where),
        "scroll": lambda: {r.id for page in col.scroll(where=where) for r in page},
        "search": lambda: {h.id for h in col.search(np.ones(4).tolist(), k=50, where=where)},
    }
    out: dict[str, Any] = {}
    for what, call in calls.items():
        try:
            out[what] = call()
        except UnsupportedFilter as exc:
            assert "2**53" in str(exc)
            out[what] = "refused"
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=conditions())
def test_exact_or_refused(collection: Collection, where: dict[str, Any]) -> None:
    expected = reference(where)
    may_refuse = collection.store.scheme not in EXACT_SCHEMES and too_big(where)
    for what, got in outcomes(collection, where).items():
        if got == "refused":
            assert may_refuse, (what, where)
        else:
            assert got == (len(expected) if what == "count" else expected), (what, where)


def test_the_issue_example(collection: Collection) -> None:
    """{"n": 2**53 + 1} never matches the record holding 2**53: the answer is exact, or refused."""
    got = outcomes(collection, {"n": B + 1})
    assert all(v in ("refused", 1, {"r3"}) for v in got.values()), got
    if collection.store.scheme not in EXACT_SCHEMES:  # search runs on the server: float64 there
        assert got["search"] == "refused"
    # Just below the bound every float64 store is exact: B - 1 is neither B - 2 nor B.
    assert outcomes(collection, {"n": B - 1}) == {"count": 1, "scroll": {"r1"}, "search": {"r1"}}


def test_metadata_integers_beyond_64_bits_are_refused() -> None:
    from bge_vdb.connectors.memory import MemoryStore

    col = MemoryStore().collection("c", dim=2)
    with pytest.raises(InputError, match=r"item 0 \(id 'x'\): metadata.a.b is an integer of 65 bits"):
        col.upsert([Record("x", [1.0, 0.0], metadata={"a": {"b": 2**64}})])
    assert col.count() == 0
