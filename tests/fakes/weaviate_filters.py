"""Weaviate's ``where`` filters, evaluated per object by the fake (server 1.32.5 semantics).

Implemented: AND/OR/NOT; Equal, NotEqual, the four ranges, Like, IsNull and ContainsAny/All/None
on ``_id``, on the timestamps (with ``indexTimestamps``) and on text, number, int, boolean, date and
uuid properties and their arrays; filter values are checked against the property's data type as
the server checks them. A text value is tokenized as the property is, stopwords are dropped, and
every remaining token must satisfy the operator (``inverted/searcher.go``: one clause per token,
ANDed); ContainsAny/All/None combine such Equal clauses. IsNull needs ``indexNullState``, a
property filter ``indexFilterable``. Refused (UNIMPLEMENTED): geo ranges, property-length filters
and reference paths.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from weaviate.proto.v1 import base_pb2

from tests.fakes.weaviate_search import like, prop_tokens, stopwords, tokenize

if TYPE_CHECKING:
    from tests.fakes.weaviate_server import FakeWeaviate, StoredObject

F = base_pb2.Filters
_RANGES = {
    F.OPERATOR_GREATER_THAN: lambda a, b: a > b, F.OPERATOR_GREATER_THAN_EQUAL: lambda a, b: a >= b,
    F.OPERATOR_LESS_THAN: lambda a, b: a < b, F.OPERATOR_LESS_THAN_EQUAL: lambda a, b: a <= b,
}
_ALLOWED_VALUES = {
    "text": ("value_text", "value_text_array"), "uuid": ("value_text", "value_text_array"),
    "date": ("value_text", "value_text_array"),
    "number": ("value_number", "value_int", "value_number_array", "value_int_array"),
    "int": ("value_int", "value_int_array"), "boolean": ("value_boolean", "value_boolean_array"),
}


def _abort(code: grpc.StatusCode, message: str) -> Exception:
    from tests.fakes.weaviate_server import Abort

    return Abort(code, message)


def validate(fake: FakeWeaviate, cls_name: str, f: Any) -> None:
    """The checks the server makes when it parses a filter, before any object is read."""
    if f.operator in (F.OPERATOR_AND, F.OPERATOR_OR, F.OPERATOR_NOT):
        if not f.filters:
            raise _abort(grpc.StatusCode.UNKNOWN, f"{F.Operator.Name(f.operator)} needs operands")
        for child in f.filters:
            validate(fake, cls_name, child)
    else:
        _leaf(fake, cls_name, f)


def _leaf(fake: FakeWeaviate, cls_name: str, f: Any) -> tuple[str, str, list[Any]]:
    """(property, base data type, wanted values) of a leaf filter, or the server's refusal."""
    op = f.operator
    if op in (F.OPERATOR_UNSPECIFIED, F.OPERATOR_WITHIN_GEO_RANGE):
        raise _abort(grpc.StatusCode.UNIMPLEMENTED,
                     f"the Weaviate fake does not implement filter operator {F.Operator.Name(op)}")
    path = [f.target.property] if f.HasField("target") else list(f.on)
    if len(path) != 1:
        raise _abort(grpc.StatusCode.UNIMPLEMENTED, f"the Weaviate fake does not filter on reference paths {path}")
    prop = path[0]
    cls = fake.class_of(cls_name)
    inverted = cls["invertedIndexConfig"]
    if prop in ("_id", "id"):
        dtype, tokenization = "uuid", "field"
    elif prop in ("_creationTimeUnix", "_lastUpdateTimeUnix"):
        if not inverted["indexTimestamps"]:
            raise _abort(grpc.StatusCode.UNKNOWN, "timestamps must be indexed to be filterable! add "
                         "`indexTimestamps: true` to the invertedIndexConfig")
        dtype, tokenization = "int", None
    elif prop.startswith("len("):
        raise _abort(grpc.StatusCode.UNIMPLEMENTED, "the Weaviate fake does not filter on property lengths")
    else:
        schema = fake.prop_schema(cls["class"], prop)
        dtype, tokenization = schema["dataType"][0], schema.get("tokenization")
        if op == F.OPERATOR_IS_NULL:
            if not inverted["indexNullState"]:
                raise _abort(grpc.StatusCode.UNKNOWN, "Nullstate must be indexed to be filterable! Add "
                             "`indexNullState: true` to the invertedIndexConfig")
        elif not schema.get("indexFilterable"):
            raise _abort(grpc.StatusCode.UNKNOWN, f"Filtering by property '{prop}' requires inverted "
                         "index. Is `indexFilterable` option of property enabled? Set it to `true` or "
                         "leave empty")
    if op == F.OPERATOR_IS_NULL:
        return prop, dtype, [f.value_boolean]
    base = dtype.rstrip("[]")
    wanted = _filter_values(f, base, prop)
    if base == "text":  # each value becomes its tokens, stopwords dropped
        mode = "word_wildcards" if op == F.OPERATOR_LIKE and tokenization == "word" else tokenization
        stop = stopwords(inverted)
        wanted = [[t for t in tokenize(mode, w) if t not in stop] for w in wanted]
        if not all(wanted):
            raise _abort(grpc.StatusCode.UNKNOWN, "invalid search term, only stopwords provided. "
                         "Stopwords can be configured in class.invertedIndexConfig.stopwords")
        return prop, f"text:{tokenization}", wanted
    if base == "date":
        wanted = [_date(w) for w in wanted]
    elif base == "uuid":
        wanted = [w.lower() for w in wanted]
    return prop, base, wanted


def matches(fake: FakeWeaviate, cls_name: str, f: Any, uid: str, obj: StoredObject) -> bool:
    op = f.operator
    if op == F.OPERATOR_AND:
        return all(matches(fake, cls_name, c, uid, obj) for c in f.filters)
    if op == F.OPERATOR_OR:
        return any(matches(fake, cls_name, c, uid, obj) for c in f.filters)
    if op == F.OPERATOR_NOT:
        return not matches(fake, cls_name, f.filters[0], uid, obj)
    prop, base, wanted = _leaf(fake, cls_name, f)
    if prop in ("_id", "id"):
        value: Any = uid
    elif prop in ("_creationTimeUnix", "_lastUpdateTimeUnix"):
        value = obj.created if prop == "_creationTimeUnix" else obj.updated
    else:
        value = obj.props.get(prop)
    if op == F.OPERATOR_IS_NULL:
        return (value is None or value == []) == wanted[0]
    if base.startswith("text:"):
        return _text_matches(op, set(prop_tokens(base[5:], value)), wanted)
    have = [] if value is None else (value if isinstance(value, list) else [value])
    if base == "date":
        have = [_date(h) for h in have]
    elif base == "uuid":
        have = [h.lower() for h in have]
    if op == F.OPERATOR_EQUAL:
        return bool(have) and wanted[0] in have
    if op == F.OPERATOR_NOT_EQUAL:
        return not (bool(have) and wanted[0] in have)
    if op == F.OPERATOR_LIKE:
        return any(like(str(wanted[0]), str(h)) for h in have)
    if op == F.OPERATOR_CONTAINS_ANY:
        return any(w in have for w in wanted)
    if op == F.OPERATOR_CONTAINS_ALL:
        return bool(have) and all(w in have for w in wanted)
    if op == F.OPERATOR_CONTAINS_NONE:
        return not any(w in have for w in wanted)
    if op in _RANGES:
        return any(_RANGES[op](h, wanted[0]) for h in have)
    raise _abort(grpc.StatusCode.UNIMPLEMENTED, f"the Weaviate fake does not implement filter operator {op}")


def _text_matches(op: int, tokens: set[str], wanted: list[list[str]]) -> bool:
    """``wanted``: one token list per filter value; a value holds when all its tokens do."""
    def has(terms: list[str]) -> bool:
        return all(t in tokens for t in terms)

    if op == F.OPERATOR_EQUAL:
        return has(wanted[0])
    if op == F.OPERATOR_NOT_EQUAL:
        return all(t not in tokens for t in wanted[0])
    if op == F.OPERATOR_LIKE:
        return all(any(like(t, tok) for tok in tokens) for t in wanted[0])
    if op == F.OPERATOR_CONTAINS_ANY:
        return any(has(w) for w in wanted)
    if op == F.OPERATOR_CONTAINS_ALL:
        return all(has(w) for w in wanted)
    if op == F.OPERATOR_CONTAINS_NONE:
        return not any(has(w) for w in wanted)
    if op in _RANGES:
        return all(any(_RANGES[op](tok, t) for tok in tokens) for t in wanted[0])
    raise _abort(grpc.StatusCode.UNIMPLEMENTED, f"the Weaviate fake does not implement filter operator {op}")


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _filter_values(f: Any, base: str, prop: str) -> list[Any]:
    """The filter's value(s), checked against the property's data type as the server does."""
    kind = f.WhichOneof("test_value")
    if kind not in _ALLOWED_VALUES.get(base, ()):
        raise _abort(grpc.StatusCode.UNKNOWN,
                     f"data type filter cannot use {kind} on property {prop!r} of type {base}")
    value = getattr(f, kind)
    return list(value.values) if kind.endswith("_array") else [value]
