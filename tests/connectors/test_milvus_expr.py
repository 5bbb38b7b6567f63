"""The Milvus filter translator: unit tests of the expressions, then round trips through real
Milvus Lite and the real Milvus 2.3.5 server (two different expression parsers) with values that
would break a naively built expression, checked against ``bge_vdb.filters.matches`` (the
reference semantics)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_vdb import filters
from bge_vdb.connectors.milvus_expr import path_key, quote, to_expr, typed_leaves
from bge_vdb.errors import UnsupportedFilter
from bge_vdb.store import Collection
from bge_vdb.types import Record
from tests.support.stores import STORE_FACTORIES

NASTY = ['say "hi"', "it's", "back\\slash", "trail\\", "new\nline", "cr\rtab\t", "中文", "🙂",
         "\\\"", "%_like_", "", " ", "nul\x00byte", "line\u2028sep", "a.b", "$meta"]


def expr(where: dict[str, Any]) -> str:
    node = filters.parse(where)
    assert node is not None
    return to_expr(node, "T", "M")


# ----------------------------------------------------------------------------- unit tests

@pytest.mark.parametrize("value", NASTY)
def test_quote_escapes_what_the_lexer_reads(value: str) -> None:
    from milvus_lite.search.filter.tokens import TokenKind, tokenize

    tokens = tokenize(quote(value))
    assert [t.kind for t in tokens] == [TokenKind.STRING, TokenKind.EOF]
    assert tokens[0].value == value


def test_equality_reads_the_bucket_of_the_value_type() -> None:
    key = quote(path_key(["a"]))
    assert expr({"a": 1}) == f'((exists T["n"][{key}]) and T["n"][{key}] == 1)'
    assert expr({"a": True}) == f'((exists T["b"][{key}]) and T["b"][{key}] == true)'
    assert expr({"a": "x"}) == f'((exists T["s"][{key}]) and T["s"][{key}] == "x")'
    assert expr({"a": 2.5}) == f'((exists T["n"][{key}]) and T["n"][{key}] == 2.5)'


def test_negations_and_membership() -> None:
    key = quote(path_key(["a"]))
    eq1 = f'((exists T["n"][{key}]) and T["n"][{key}] == 1)'
    eqx = f'((exists T["s"][{key}]) and T["s"][{key}] == "x")'
    assert expr({"a": {"$ne": 1}}) == f"not {eq1}"
    assert expr({"a": {"$in": [1, "x"]}}) == f"({eq1} or {eqx})"
    assert expr({"a": {"$nin": [1, "x"]}}) == f"not ({eq1} or {eqx})"
    assert expr({"$not": {"a": 1}}) == f"not {eq1}"


def test_ranges_exists_and_nesting() -> None:
    key = quote(path_key(["a", "b"]))
    assert expr({"a.b": {"$gte": -1e-07}}) == f'((exists T["n"][{key}]) and T["n"][{key}] >= -1e-07)'
    present = f'((exists M["a"]["b"]) and not (exists T["z"][{key}]))'
    assert expr({"a.b": {"$exists": True}}) == present
    assert expr({"a.b": {"$exists": False}}) == f"not {present}"
    both = expr({"$and": [{"x": 1}, {"$or": [{"y": 2}, {"z": 3}]}]})
    assert both.startswith("(((exists") and " and (((exists" in both and ") or ((exists" in both


def test_path_keys_are_injective() -> None:
    # A literal dotted key and a nested path must not collide.
    assert path_key(["a.b"]) != path_key(["a", "b"])
    assert typed_leaves({"a.b": 1, "a": {"b": 2}})["n"] == {'["a.b"]': 1, '["a","b"]': 2}


def test_typed_leaves_split_by_type_and_skip_lists() -> None:
    typed = typed_leaves({"i": 1, "f": 1.0, "b": True, "s": "1", "l": [1], "n": None, "d": {"e": False}})
    assert typed == {"n": {'["i"]': 1, '["f"]': 1.0}, "s": {'["s"]': "1"},
                     "b": {'["b"]': True, '["d","e"]': False}, "z": {'["n"]': True}}
    assert "z" not in typed_leaves({"i": 1})  # the null bucket only where there is a null


def test_exists_on_a_nul_key_is_refused_where_the_server_cannot_address_it() -> None:
    exists = {"a.b\x00c": {"$exists": False}}
    assert "exists M" in to_expr(filters.parse(exists), "T", "M")  # type: ignore[arg-type]  # Lite addresses it
    with pytest.raises(UnsupportedFilter, match="NUL"):
        to_expr(filters.parse({"$or": [{"x": 1}, {"$not": exists}]}), "T", "M", nul_in_paths=False)  # type: ignore[arg-type]
    assert "T[" in to_expr(filters.parse({"b\x00c": 1}), "T", "M", nul_in_paths=False)  # type: ignore[arg-type]


def test_integers_beyond_64_bits_are_unsupported() -> None:
    with pytest.raises(UnsupportedFilter, match="Milvus"):
        expr({"a": 2**64})


# ------------------------------------------------------------------- round trips (real engine)

META: list[dict[str, Any]] = [
    {"v": 1}, {"v": True}, {"v": 1.0}, {"v": "1"}, {"v": [1]}, {"v": None}, {"v": 0}, {"v": False},
    {"v": 2.5}, {"v": -3}, {"v": {"w": 1}}, {}, {"n": {"w": 1}}, {"n": {"w": "x"}}, {"n": [{"w": 1}]},
    {"a.b": 1}, {"a": {"b": 2}}, {"v": 10**18}, {"v": 1e300},
    *({"s": s, "k": {s: s}} for s in NASTY),
]


@pytest.fixture(scope="module", params=["milvus-lite", "milvus-standalone"])
def col(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    with STORE_FACTORIES[request.param](Path(tmp_path_factory.mktemp("expr"))) as store:
        c = store.collection("expr", dim=4)
        vecs = np.random.default_rng(0).normal(size=(len(META), 4))
        c.upsert([Record(f"r{i:02d}", vecs[i], None, m) for i, m in enumerate(META)])
        yield c


def ids(col: Collection, where: dict[str, Any]) -> list[str]:
    return sorted(r.id for page in col.scroll(where=where) for r in page)


def want(where: dict[str, Any]) -> list[str]:
    node = filters.parse(where)
    return sorted(f"r{i:02d}" for i, m in enumerate(META) if filters.matches(node, m))


ROUND_TRIPS: list[dict[str, Any]] = [
    {"v": 1}, {"v": True}, {"v": False}, {"v": 0}, {"v": "1"}, {"v": 1.0}, {"v": {"$ne": 1}},
    {"v": {"$ne": True}}, {"v": {"$gt": 0}}, {"v": {"$gte": 1}}, {"v": {"$lt": 1}}, {"v": {"$lte": 0}},
    {"v": {"$in": [1, "1"]}}, {"v": {"$nin": [True, 2.5]}}, {"v": {"$exists": True}},
    {"v": {"$exists": False}}, {"$not": {"v": {"$gt": 0}}}, {"$not": {"v": {"$lt": 100}}},
    {"n.w": 1}, {"n.w": {"$exists": True}}, {"n.w": {"$ne": "x"}}, {"a.b": 2}, {"a.b": {"$exists": True}},
    {"v": 10**18}, {"v": {"$gt": 1e299}}, {"$or": [{"v": 2.5}, {"v": -3}]},
    {"$and": [{"v": {"$gte": -3}}, {"v": {"$lte": 1}}, {"$not": {"v": False}}]},
]


@pytest.mark.parametrize("where", ROUND_TRIPS, ids=str)
def test_semantics_match_the_reference(col: Collection, where: dict[str, Any]) -> None:
    assert ids(col, where) == want(where)
    assert col.count(where=where) == len(want(where))


@pytest.mark.parametrize("value", NASTY, ids=repr)
def test_nasty_strings_round_trip_as_values_and_keys(col: Collection, value: str) -> None:
    for where in ({"s": value}, {"s": {"$ne": value}}, {"s": {"$in": [value, "zz"]}}):
        assert ids(col, where) == want(where), where
    if value and "." not in value:  # a key with a dot is a path; an empty key does not parse
        where = {f"k.{value}": value}
        assert ids(col, where) == want(where) != []
        exists = {f"k.{value}": {"$exists": True}}
        if "\x00" in value and not col.store.server().nul_in_json_paths:  # type: ignore[attr-defined]
            with pytest.raises(UnsupportedFilter, match="NUL"):  # 2.3 finds nothing under the key
                ids(col, exists)
        else:
            assert ids(col, exists) == want(where)


def test_nasty_ids_fetch_delete_and_page(col: Collection) -> None:
    nasty_ids = [f"id{s}" for s in NASTY]
    vec = np.ones(4)
    col.upsert([Record(i, vec, i, {"tag": "nasty"}) for i in nasty_ids])
    try:
        assert sorted(r.id for r in col.fetch(nasty_ids)) == sorted(nasty_ids)
        assert sorted(r.text or "" for r in col.fetch(nasty_ids)) == sorted(nasty_ids)
        paged = [r.id for page in col.scroll(batch_size=3, where={"tag": "nasty"}) for r in page]
        assert paged == sorted(nasty_ids)  # keyset paging in primary-key order, each id once
        col.delete(ids=nasty_ids[:5])
        assert col.count(where={"tag": "nasty"}) == len(nasty_ids) - 5
    finally:
        col.delete(ids=nasty_ids)
    assert col.count() == len(META)
