"""The pure Pinecone mapping (bge_vdb.connectors.pinecone_mapping): index names, ids, record
metadata and the filter translation, checked against bge-vdb's reference filter semantics
(``filters.matches``) with Pinecone's semantics as the fake implements them."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from bge_vdb import filters
from bge_vdb.connectors.pinecone_mapping import (
    decode_record,
    encode_metadata,
    index_name,
    pinecone_id,
    to_pinecone_filter,
)
from bge_vdb.types import Record
from tests.conformance.suite import FILTER_ROWS, ODD_IDS, ROUND_TRIP_METADATA
from tests.fakes.pinecone_semantics import check_metadata, matches

VALID_INDEX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")


def stored(meta: dict[str, Any], rec: Record | None = None) -> dict[str, Any]:
    """The metadata as Pinecone keeps it (validated, nulls stripped, numbers as floats)."""
    return check_metadata("x", encode_metadata(rec or Record("x", None, "t", meta)))


def test_index_names_are_valid_predictable_and_distinct() -> None:
    assert index_name("docs") == "docs" and index_name("my-docs-2") == "my-docs-2"
    names = ["Docs", "docs_", "My Docs", "my_docs", "名前", "x" * 60, "-lead", "trail-", "a" * 45, "a" * 46]
    mapped = [index_name(n) for n in names]
    assert all(VALID_INDEX.match(m) for m in mapped), mapped
    assert len(set(mapped)) == len(names)
    assert index_name("My Docs") == index_name("My Docs") and index_name("My Docs").startswith("my-docs-")


def test_ids_are_ascii_bounded_and_injective() -> None:
    ids = [*ODD_IDS, "%", "%25", "%%" + "0" * 64, "ü" * 200, "é" * 600, "a%2Fb", "a/b"]
    mapped = [pinecone_id(i) for i in ids]
    assert all(m.isascii() and 1 <= len(m) <= 512 and "\0" not in m for m in mapped)
    assert len(set(mapped)) == len(ids)
    assert pinecone_id("doc#1") == "doc#1" and pinecone_id("with space") == "with space"


def test_metadata_round_trips_and_is_valid_pinecone_metadata() -> None:
    rec = Record("名前", None, "text", ROUND_TRIP_METADATA, content_hash="h")
    meta = stored(ROUND_TRIP_METADATA, rec)  # raises like Pinecone if it is not valid
    back = decode_record("ignored", meta, None)
    assert back.id == rec.id and back.text == "text" and back.content_hash == "h"
    assert json.dumps(back.metadata, sort_keys=True) == json.dumps(ROUND_TRIP_METADATA, sort_keys=True)
    assert meta["n:int"] == 1.0 and meta["s:zh"] == "中文元数据" and meta["b:bool_f"] is False
    assert "n:nested.a.b" not in meta and "e:nested.a.b" in meta["_p"]  # lists: existence only


def test_records_written_by_another_tool_come_back_raw() -> None:
    rec = decode_record("raw-id", {"genre": "comedy", "year": 2020.0}, [0.5, 0.5])
    assert rec.id == "raw-id" and rec.text is None and dict(rec.metadata) == {"genre": "comedy", "year": 2020.0}


def _random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    keys = ["lang", "year", "score", "draft", "flag", "tags", "author", "author.name", "author.age",
            "note", "missing", "nested.deep.x", "nested.deep"]
    values: list[Any] = ["en", "zh", "EN", "2020", "a", "Ada", "中文", 2020, 2021.0, 2020.5, 0, 1, 0.5,
                         -2.5, True, False, 36]
    roll = rng.random()
    if depth < 2 and roll < 0.3:
        op = rng.choice(["$and", "$or"])
        return {op: [_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and roll < 0.4:
        return {"$not": _random_filter(rng, depth + 1)}
    key = rng.choice(keys)
    op = rng.choice(["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"])
    if op in ("$in", "$nin"):
        return {key: {op: rng.sample(values, rng.randint(1, 4))}}
    if op.startswith(("$gt", "$lt")):
        return {key: {op: rng.choice([v for v in values if type(v) in (int, float)])}}
    if op == "$exists":
        return {key: {op: rng.random() < 0.5}}
    return {key: {op: rng.choice(values)}}


def test_translated_filters_agree_with_the_reference() -> None:
    rows = [(rid, meta, stored(meta)) for rid, meta in FILTER_ROWS]
    rng = random.Random(4)
    informative = 0
    for _ in range(1500):
        where = _random_filter(rng)
        node = filters.parse(where)
        flt = to_pinecone_filter(node)
        assert "$exists" not in json.dumps(flt)  # only operators every plan has
        want = {rid for rid, meta, _ in rows if filters.matches(node, meta)}
        got = {rid for rid, _, pmeta in rows if matches(flt, pmeta)}
        assert got == want, where
        informative += 0 < len(want) < len(rows)
    assert informative > 300  # about a quarter split the rows; the rest check all-or-none


@pytest.mark.parametrize("where, expected", [
    ({"lang": "en"}, {"s:lang": {"$in": ["en"]}}),
    ({"year": {"$gt": 2020}}, {"n:year": {"$gt": 2020.0}}),
    ({"$not": {"year": {"$gt": 2020}}}, {"$or": [{"_p": {"$nin": ["n:year"]}}, {"n:year": {"$lte": 2020.0}}]}),
    ({"a.b": {"$exists": True}}, {"_p": {"$in": ["e:a.b"]}}),
])
def test_translation_shape(where: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_pinecone_filter(filters.parse(where)) == expected
