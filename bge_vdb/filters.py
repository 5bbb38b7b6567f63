"""The one filter language: a JSON-compatible dict, parsed once into a small AST.

Syntax (the style users know from Pinecone, Chroma and LangChain)::

    {"lang": "en"}                                   # implicit $eq
    {"year": {"$gte": 2020, "$lt": 2025}}            # several operators on one key: AND
    {"$or": [{"lang": "en"}, {"lang": "zh"}]}
    {"$not": {"draft": True}}
    {"author.name": {"$in": ["Ada", "Lin"]}}         # nested metadata key, dotted path
    {"tags": {"$exists": True}}

Semantics (the memory store's :func:`matches` is the reference every connector is tested against):

* Keys address metadata; a dot walks into nested dicts. Values are str, int, float or bool
  (``True`` is not ``1``); ``$in``/``$nin`` take a non-empty list of those.
* ``$gt $gte $lt $lte`` compare numbers only (bool is not a number here).
* A comparison on a missing key, or on a value of another type, is false; ``$ne`` and ``$nin``
  are the exact negations of ``$eq`` and ``$in``, so they are true for a missing key.
* Filters compare scalar metadata values; a list-valued field never equals a scalar.
* Numbers compare exactly (``2**53 + 1`` is not ``2**53``). A database that compares as 64-bit
  floats refuses filter values of 2**53 or more in magnitude (:func:`refuse_inexact_numbers`).

Connectors translate the AST; an operator a database cannot evaluate raises
:class:`~bge_vdb.errors.UnsupportedFilter` naming the operator and the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FilterError, UnsupportedFilter

Scalar = str | int | float | bool

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
LOGICAL = ("$and", "$or", "$not")


@dataclass(frozen=True)
class Cmp:
    """``key op value``; ``key`` is the path into the metadata (``("author", "name")``)."""

    key: tuple[str, ...]
    op: str  # one of COMPARISONS, without the "$": "eq", "ne", "gt", ...
    value: Any

    @property
    def dotted(self) -> str:
        return ".".join(self.key)


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Cmp | And | Or | Not


def parse(where: Mapping[str, Any] | Node | None) -> Node | None:
    """Parse a filter dict into the AST; ``None`` or ``{}`` means "everything"."""
    if where is None or isinstance(where, (Cmp, And, Or, Not)):
        return where
    if not isinstance(where, Mapping):
        raise FilterError(f"a filter must be a dict, got {type(where).__name__}: {where!r}")
    if not where:
        return None
    return _parse_mapping(where, "filter")


def _parse_mapping(where: Mapping[str, Any], at: str) -> Node:
    if not where:
        raise FilterError(f"empty condition at {at}")
    parts: list[Node] = []
    for key, value in where.items():
        if not isinstance(key, str):
            raise FilterError(f"filter keys must be strings, got {key!r} at {at}")
        if key.startswith("$"):
            parts.append(_parse_logical(key, value, at))
        else:
            parts.extend(_parse_field(key, value, f"{at}.{key}"))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_logical(op: str, value: Any, at: str) -> Node:
    if op in ("$and", "$or"):
        if not isinstance(value, (list, tuple)) or not value:
            raise FilterError(f"{op} takes a non-empty list of conditions (at {at})")
        children = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise FilterError(f"{op}[{i}] must be a dict, got {item!r} (at {at})")
            children.append(_parse_mapping(item, f"{at}.{op}[{i}]"))
        return And(tuple(children)) if op == "$and" else Or(tuple(children))
    if op == "$not":
        if not isinstance(value, Mapping):
            raise FilterError(f"$not takes one condition dict, got {value!r} (at {at})")
        return Not(_parse_mapping(value, f"{at}.$not"))
    if op in COMPARISONS:
        raise FilterError(f"operator {op} needs a field: write {{'field': {{'{op}': ...}}}} (at {at})")
    raise FilterError(f"unknown filter operator {op!r} at {at}; known: {', '.join(LOGICAL + COMPARISONS)}")


def _parse_field(key: str, value: Any, at: str) -> list[Node]:
    path = tuple(key.split("."))
    if any(not p for p in path):
        raise FilterError(f"bad metadata key {key!r}: empty path segment (at {at})")
    if not isinstance(value, Mapping):
        return [Cmp(path, "eq", _scalar(value, at))]
    if not value:
        raise FilterError(f"empty operator dict for {key!r} (at {at})")
    nodes: list[Node] = []
    for op, arg in value.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise FilterError(
                f"{key!r} maps to a dict without operators; to filter a nested key write "
                f"'{key}.{op}' (at {at})"
            )
        if op not in COMPARISONS:
            raise FilterError(
                f"unknown filter operator {op!r} for {key!r} (at {at}); known: {', '.join(COMPARISONS)}"
            )
        name = op[1:]
        if name in ("in", "nin"):
            if not isinstance(arg, (list, tuple)) or not arg:
                raise FilterError(f"{op} takes a non-empty list (at {at})")
            nodes.append(Cmp(path, name, tuple(_scalar(v, at) for v in arg)))
        elif name == "exists":
            if not isinstance(arg, bool):
                raise FilterError(f"$exists takes true or false, got {arg!r} (at {at})")
            nodes.append(Cmp(path, name, arg))
        elif name in ("gt", "gte", "lt", "lte"):
            if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not math.isfinite(arg):
                raise FilterError(f"{op} compares finite numbers only, got {arg!r} (at {at})")
            nodes.append(Cmp(path, name, arg))
        else:
            nodes.append(Cmp(path, name, _scalar(arg, at)))
    return nodes


def _scalar(value: Any, at: str) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"filter values must be finite, got {value!r} (at {at})")
    if isinstance(value, (str, bool, int, float)):
        return value
    raise FilterError(
        f"filter values must be str, int, float or bool, got {type(value).__name__} {value!r} (at {at})"
    )


# --------------------------------------------------------------------------- reference semantics

_MISSING = object()


def lookup(metadata: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested metadata, or a private sentinel when absent."""
    cur: Any = metadata
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps bool apart from numbers and strings apart from everything else."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return False


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def matches(node: Node | None, metadata: Mapping[str, Any]) -> bool:
    """Evaluate the AST on one metadata dict: the reference every connector must agree with."""
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(c, metadata) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, metadata) for c in node.children)
    if isinstance(node, Not):
        return not matches(node.child, metadata)
    value = lookup(metadata, node.key)
    op = node.op
    if op == "exists":
        return (value is not _MISSING and value is not None) == node.value
    if op == "eq":
        return _same(value, node.value)
    if op == "ne":
        return not _same(value, node.value)
    if op == "in":
        return any(_same(value, v) for v in node.value)
    if op == "nin":
        return not any(_same(value, v) for v in node.value)
    if not _number(value):
        return False
    if op == "gt":
        return bool(value > node.value)
    if op == "gte":
        return bool(value >= node.value)
    if op == "lt":
        return bool(value < node.value)
    if op == "lte":
        return bool(value <= node.value)
    raise AssertionError(f"unreachable operator {op}")


def walk(node: Node | None):
    """Yield every node of the tree (for connectors that check operator support up front)."""
    if node is None:
        return
    yield node
    if isinstance(node, (And, Or)):
        for c in node.children:
            yield from walk(c)
    elif isinstance(node, Not):
        yield from walk(node.child)


#: Below this magnitude every integer is a float64 exactly, so comparing as float64 is exact.
EXACT_FLOAT_INTS = 2**53


def refuse_inexact_numbers(node: Node | None, database: str) -> None:
    """Raise UnsupportedFilter for a number ``database`` cannot compare exactly: one that keeps
    numbers as 64-bit floats is exact only for values below 2**53 in magnitude.

    Why that bound suffices: a stored integer beyond it becomes a float of magnitude >= 2**53,
    on the same side of any smaller filter value, so comparisons with filter values below the
    bound stay exact whatever is stored. At or above it, 2**53 + 1 would equal 2**53.
    """
    for n in walk(node):
        if not isinstance(n, Cmp) or n.op == "exists":
            continue
        values = n.value if isinstance(n.value, tuple) else (n.value,)
        for v in values:
            if _number(v) and abs(v) >= EXACT_FLOAT_INTS:
                raise UnsupportedFilter(
                    f"{database} compares numbers as 64-bit floats, which are exact only below 2**53 "
                    f"in magnitude: cannot evaluate ${n.op} {v!r} on {n.dotted!r} exactly (2**53 + 1 "
                    f"would equal 2**53). Keep such ids and timestamps as strings to filter on them.")


def refuse(node: Node | None, database: str, *, ops: tuple[str, ...] = (), nested: bool = False,
           negation: bool = False) -> None:
    """Raise UnsupportedFilter if ``node`` uses something ``database`` cannot evaluate exactly."""
    for n in walk(node):
        if isinstance(n, Cmp):
            if n.op in ops:
                raise UnsupportedFilter(f"{database} cannot evaluate the ${n.op} operator (on {n.dotted!r})")
            if nested and len(n.key) > 1:
                raise UnsupportedFilter(f"{database} has no nested metadata keys: cannot filter on {n.dotted!r}")
        elif isinstance(n, Not) and negation:
            raise UnsupportedFilter(f"{database} cannot evaluate the $not operator")
