"""The filter language: parsing into the AST, clear errors, and the reference semantics."""

from __future__ import annotations

from typing import Any

import pytest

from bge_vdb import filters
from bge_vdb.errors import FilterError, UnsupportedFilter
from bge_vdb.filters import And, Cmp, Not, Or, matches, parse


def test_parse_forms() -> None:
    assert parse(None) is None and parse({}) is None
    assert parse({"lang": "en"}) == Cmp(("lang",), "eq", "en")
    assert parse({"author.name": {"$in": ["Ada", "Lin"]}}) == Cmp(("author", "name"), "in", ("Ada", "Lin"))
    assert parse({"year": {"$gte": 2020, "$lt": 2025}}) == And(
        (Cmp(("year",), "gte", 2020), Cmp(("year",), "lt", 2025)))
    assert parse({"$or": [{"a": 1}, {"b": True}]}) == Or((Cmp(("a",), "eq", 1), Cmp(("b",), "eq", True)))
    assert parse({"$not": {"draft": True}}) == Not(Cmp(("draft",), "eq", True))
    node = parse({"a": 1})
    assert parse(node) is node  # an AST passes through


@pytest.mark.parametrize("where, message", [
    ({"x": {"$regex": "a"}}, r"unknown filter operator '\$regex' for 'x'"),
    ({"$nor": [{"x": 1}]}, r"unknown filter operator '\$nor'"),
    ({"x": {"$in": []}}, "non-empty list"),
    ({"x": {"$nin": "abc"}}, "non-empty list"),
    ({"x": {"$gt": "a"}}, "finite numbers"),
    ({"x": {"$gt": True}}, "finite numbers"),
    ({"x": {"$lte": float("inf")}}, "finite numbers"),
    ({"x": [1, 2]}, "str, int, float or bool"),
    ({"x": None}, "str, int, float or bool"),
    ({"x": {"$eq": float("nan")}}, "finite"),
    ({"$or": {}}, "non-empty list"),
    ({"$and": []}, "non-empty list"),
    ({"$or": ["a"]}, r"\$or\[0\] must be a dict"),
    ({"$not": [{"x": 1}]}, "one condition dict"),
    ({"x": {"y": 1}}, "write 'x.y'"),
    ({"x": {}}, "empty operator dict"),
    ({"$eq": 1}, "needs a field"),
    ({"a..b": 1}, "empty path segment"),
    ({"x": {"$exists": 1}}, "true or false"),
    ({1: "x"}, "keys must be strings"),
    ({"$or": [{}]}, "empty condition"),
    ("lang = en", "must be a dict"),
    ({"$and": [{"a": 1}, {"b": {"$bad": 1}}]}, r"filter\.\$and\[1\]\.b"),
])
def test_malformed_filters_name_the_problem(where: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse(where)


META: dict[str, Any] = {
    "lang": "en", "year": 2020, "score": 0.5, "flag": True, "one": 1, "onef": 1.0, "s1": "1",
    "author": {"name": "Ada", "tags": ["x"]}, "tags": ["a", "b"], "none": None, "empty": [],
}


@pytest.mark.parametrize("where, expected", [
    ({"lang": "en"}, True), ({"lang": "EN"}, False),
    ({"year": 2020.0}, True),  # int and float compare as numbers
    ({"onef": 1}, True), ({"one": 1.0}, True),
    ({"flag": 1}, False), ({"one": True}, False),  # bool is not a number
    ({"flag": True}, True), ({"s1": 1}, False), ({"one": "1"}, False),
    ({"flag": {"$gt": 0}}, False),  # ranges compare numbers only
    ({"lang": {"$gt": 0}}, False), ({"year": {"$gt": 2019.5, "$lte": 2020}}, True),
    ({"missing": {"$ne": 1}}, True), ({"missing": {"$nin": [1]}}, True),  # negations hold for missing
    ({"missing": 1}, False), ({"missing": {"$lt": 1}}, False),
    ({"tags": "a"}, False), ({"tags": {"$in": ["a"]}}, False), ({"tags": {"$ne": "a"}}, True),
    ({"author.name": "Ada"}, True), ({"author.tags": "x"}, False), ({"author.name.x": "Ada"}, False),
    ({"none": {"$exists": True}}, False), ({"none": {"$exists": False}}, True),
    ({"empty": {"$exists": True}}, True), ({"author": {"$exists": True}}, True),
    ({"missing": {"$exists": False}}, True),
    ({"$not": {"lang": "en"}}, False), ({"$or": [{"lang": "zh"}, {"year": 2020}]}, True),
    ({"$and": [{"lang": "en"}, {"year": 2021}]}, False),
    ({"$not": {"$and": [{"lang": "en"}, {"year": 2021}]}}, True),
    ({"year": {"$in": ["2020", 2020.0]}}, True), ({"year": {"$nin": [2020]}}, False),
])
def test_reference_semantics(where: dict[str, Any], expected: bool) -> None:
    assert matches(parse(where), META) is expected


def test_ne_and_nin_are_exact_negations() -> None:
    for value in ("en", 2020, 1, True, "1", 0.5):
        for key in META:
            eq = matches(parse({key: value}), META)
            assert matches(parse({key: {"$ne": value}}), META) is (not eq)
            assert matches(parse({key: {"$nin": [value]}}), META) is (not eq)


def test_walk_and_refuse() -> None:
    node = parse({"$or": [{"a.b": 1}, {"$not": {"c": {"$exists": True}}}]})
    kinds = [type(n).__name__ for n in filters.walk(node)]
    assert kinds == ["Or", "Cmp", "Not", "Cmp"]
    filters.refuse(node, "SomeDB")  # nothing forbidden
    with pytest.raises(UnsupportedFilter, match=r"SomeDB cannot evaluate the \$exists operator"):
        filters.refuse(node, "SomeDB", ops=("exists",))
    with pytest.raises(UnsupportedFilter, match=r"'a\.b'"):
        filters.refuse(node, "SomeDB", nested=True)
    with pytest.raises(UnsupportedFilter, match=r"\$not"):
        filters.refuse(node, "SomeDB", negation=True)
    assert list(filters.walk(None)) == []
