"""How the Weaviate connector lays metadata out for exact filtering, and the filter translation.

Weaviate cannot filter inside object properties and a property has one data type, so every
scalar metadata value is also written to a typed, flat property per path and type (``fs_`` text,
``fn_`` number, ``fb_`` boolean; path segments escaped injectively) and ``bge_paths`` lists every
path holding a non-null value (for ``$exists``). :func:`translate` turns the filter AST into a
``weaviate.classes.query.Filter`` with the exact semantics of :func:`bge_vdb.filters.matches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from weaviate.classes.query import Filter

from .. import filters
from ..errors import UnsupportedFilter

MAX_PROP_NAME = 230


def _escape(segment: str) -> str:
    # Injective: alphanumerics stay, every other character becomes _<hex>_, and "__" separates
    # segments (an escape always has at least one hex digit, so "__" cannot start one).
    return "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):x}_" for c in segment)


def path_token(path: Sequence[str]) -> str:
    return "__".join(_escape(p) for p in path)


def flatten(meta: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in meta.items():
        path = (*prefix, key)
        if value is None:
            continue
        yield path, value
        if isinstance(value, Mapping):
            yield from flatten(value, path)


def typed(value: Any) -> tuple[str, Any] | None:
    """(property prefix, stored value) of a filterable scalar, None for lists and dicts."""
    if isinstance(value, bool):
        return "fb_", value
    if isinstance(value, str):
        return "fs_", f"|{value}|"
    if isinstance(value, (int, float)):
        return "fn_", float(value)
    return None



def translate(node: filters.Node, has: Callable[[str], bool]) -> Any:
    """The Weaviate filter for ``node``, or True/False when the answer does not depend on the data.

    ``has(prop)`` says whether the class has a property; a condition on a property nobody ever
    wrote is false without asking the server.
    """
    filters.refuse_inexact_numbers(node, "Weaviate")  # fn_ properties are NUMBER, a float64

    def eq(path: tuple[str, ...], value: Any) -> Any:
        prefix, stored = typed(value)  # type: ignore[misc]
        prop = prefix + path_token(path)
        if len(prop) > MAX_PROP_NAME:
            raise UnsupportedFilter(f"metadata key {'.'.join(path)!r} is too long to filter on in Weaviate")
        return Filter.by_property(prop).equal(stored) if has(prop) else False

    def tr(n: filters.Node) -> Any:
        if isinstance(n, (filters.And, filters.Or)):
            parts = [tr(c) for c in n.children]
            neutral = isinstance(n, filters.And)
            if (not neutral) in parts:
                return not neutral
            parts = [p for p in parts if p is not neutral]
            if not parts:
                return neutral
            return parts[0] if len(parts) == 1 else (Filter.all_of if neutral else Filter.any_of)(parts)
        if isinstance(n, filters.Not):
            inner = tr(n.child)
            return (not inner) if isinstance(inner, bool) else Filter.not_(inner)
        if n.op == "exists":
            found = Filter.by_property("bge_paths").contains_any([path_token(n.key)])
            return found if n.value else Filter.not_(found)
        if n.op in ("eq", "ne"):
            cond = eq(n.key, n.value)
            return tr(filters.Not(filters.Cmp(n.key, "eq", n.value))) if n.op == "ne" else cond
        if n.op in ("in", "nin"):
            any_of = filters.Or(tuple(filters.Cmp(n.key, "eq", v) for v in n.value))
            return tr(any_of if n.op == "in" else filters.Not(any_of))
        prop = "fn_" + path_token(n.key)
        if not has(prop):
            return False
        by = Filter.by_property(prop)
        ops = {"gt": by.greater_than, "gte": by.greater_or_equal, "lt": by.less_than, "lte": by.less_or_equal}
        return ops[n.op](float(n.value))

    return tr(node)
