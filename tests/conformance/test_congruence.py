"""Congruence with the numpy reference store (the idea of qdrant-client's congruence tests).

Every connector registered in ``tests.support.stores.STORE_FACTORIES`` is filled with the same
seeded random data as a ``MemoryStore``; seeded random filters drawn from the whole filter
grammar (every operator, nesting, implicit $and, type traps such as 1 / 1.0 / True / "1") must
give the same top-k ids (ties allowed), scores within 1e-4, the same counts and the same ids.
A connector joins simply by registering a factory. A filter a database cannot evaluate must
raise UnsupportedFilter (the case is then skipped, visibly, with the reason).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bge_vdb import filters
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import UnsupportedFilter
from bge_vdb.store import Collection
from bge_vdb.types import Record
from tests.conformance.suite import same_ranking
from tests.support.stores import STORE_FACTORIES

N_RECORDS = 300
DIM = 24
N_CASES = 80
K = 10
CONNECTORS = sorted(name for name in STORE_FACTORIES if name != "memory")

CATS = ["a", "b", "c", "中文", 'q"x\\']
MIXED = [1, 1.0, "1", True, False, None, 2, 2.5]


def random_metadata(rng: random.Random) -> dict[str, Any]:
    m: dict[str, Any] = {}
    if rng.random() < 0.9:
        m["cat"] = rng.choice([*CATS, None])
    if rng.random() < 0.8:
        m["n"] = rng.randint(-5, 5)
    if rng.random() < 0.8:  # floats, some of them integral (2.0 must equal 2 in filters)
        m["x"] = rng.choice([round(rng.uniform(-3, 3), 3), float(rng.randint(-3, 3))])
    if rng.random() < 0.7:
        m["flag"] = rng.choice([True, False, 0, 1])
    if rng.random() < 0.6:
        m["info"] = {"level": rng.randint(0, 3), "tag": rng.choice(["x", "y"])}
    if rng.random() < 0.3:
        m["tags"] = rng.sample(["a", "b", "c"], rng.randint(0, 2))  # a list never equals a scalar
    if rng.random() < 0.5:
        m["mixed"] = rng.choice(MIXED)
    return m


def _values(key: str, rng: random.Random) -> Any:
    return {
        "cat": lambda: rng.choice(CATS),
        "n": lambda: rng.randint(-5, 5),
        "x": lambda: rng.choice([float(rng.randint(-3, 3)), rng.randint(-3, 3), round(rng.uniform(-3, 3), 3)]),
        "flag": lambda: rng.choice([True, False, 0, 1]),
        "info.level": lambda: rng.randint(0, 3),
        "info.tag": lambda: rng.choice(["x", "y"]),
        "info": lambda: rng.choice(["x", 1]),
        "tags": lambda: rng.choice(["a", "b"]),
        "mixed": lambda: rng.choice([v for v in MIXED if v is not None]),
        "absent": lambda: rng.choice([1, "a"]),
    }[key]()


NUMERIC_KEYS = ["n", "x", "info.level", "mixed"]
ALL_KEYS = ["cat", "n", "x", "flag", "info.level", "info.tag", "info", "tags", "mixed", "absent"]


def random_leaf(rng: random.Random) -> dict[str, Any]:
    op = rng.choice(["eq", "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"])
    numeric = op in ("gt", "gte", "lt", "lte")
    # Ranges mostly on numeric keys; now and then on others (a string or bool is never in range).
    key = rng.choice(NUMERIC_KEYS if numeric and rng.random() < 0.85 else ALL_KEYS)
    if op == "eq" and rng.random() < 0.5:
        return {key: _values(key, rng)}
    if numeric:
        return {key: {f"${op}": rng.choice([rng.randint(-3, 3), round(rng.uniform(-3, 3), 2)])}}
    if op in ("in", "nin"):
        return {key: {f"${op}": [_values(key, rng) for _ in range(rng.randint(1, 3))]}}
    if op == "exists":
        return {key: {"$exists": rng.random() < 0.5}}
    return {key: {f"${op}": _values(key, rng)}}


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    r = rng.random()
    if depth < 2 and r < 0.25:
        op = rng.choice(["$and", "$or"])
        return {op: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and r < 0.35:
        return {"$not": random_filter(rng, depth + 1)}
    if r < 0.45:  # implicit $and of two fields (or of two operators on one field)
        a, b = random_leaf(rng), random_leaf(rng)
        return {**a, **b}
    return random_leaf(rng)


def dataset() -> list[Record]:
    rng = random.Random(2024)
    vecs = np.random.default_rng(2024).normal(size=(N_RECORDS, DIM))
    vecs[-12:] = vecs[:12]  # exact duplicates: ties the comparison must tolerate
    return [Record(f"id-{i:03d}", vecs[i], f"text {i}", random_metadata(rng)) for i in range(N_RECORDS)]


@pytest.fixture(scope="module")
def reference() -> Collection:
    col = MemoryStore().collection("cong", dim=DIM)
    col.upsert(dataset())
    return col


@pytest.fixture(scope="module", params=CONNECTORS)
def filled(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Collection]]:
    name = request.param
    with STORE_FACTORIES[name](tmp_path_factory.mktemp(name.replace("+", "_"))) as store:
        col = store.collection("cong", dim=DIM)
        assert col.upsert(dataset()).written == N_RECORDS
        yield name, col


@pytest.mark.parametrize("case", range(N_CASES))
def test_congruent_with_memory(filled: tuple[str, Collection], reference: Collection, case: int) -> None:
    name, col = filled
    rng = random.Random(case)
    where = None if case == 0 else random_filter(rng)
    node = filters.parse(where)
    queries = np.random.default_rng(1000 + case).normal(size=(2, DIM))
    try:
        got_count = col.count(where=where)
    except UnsupportedFilter as exc:
        pytest.skip(f"{name} cannot evaluate {where}: {exc}")
    want_ids = {r.id for page in reference.scroll(where=where) for r in page}
    assert want_ids == {r.id for r in dataset() if filters.matches(node, r.metadata)}
    assert got_count == len(want_ids), where
    assert {r.id for page in col.scroll(97, where=where) for r in page} == want_ids, where
    for q in queries:
        same_ranking(col.search(q, k=K, where=where), reference.search(q, k=K, where=where))
    # A duplicated vector: both copies score the same, whichever order the database returns.
    tied = col.search(dataset()[0].vector, k=2, where=where)
    if node is None:
        assert {h.id for h in tied} == {"id-000", f"id-{N_RECORDS - 12:03d}"}
        assert abs(tied[0].score - tied[1].score) < 1e-5


def test_the_random_filters_are_informative() -> None:
    """Guard against a generator whose filters all match everything or nothing."""
    recs = dataset()
    sizes = []
    for case in range(1, N_CASES):
        node = filters.parse(random_filter(random.Random(case)))
        sizes.append(sum(filters.matches(node, r.metadata) for r in recs))
    split = sum(0 < s < N_RECORDS for s in sizes)
    assert split >= 0.6 * len(sizes), sizes
