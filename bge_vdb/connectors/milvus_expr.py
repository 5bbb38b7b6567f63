"""Milvus boolean expressions for the filter AST, with the reference semantics.

Why ``metadata_typed``: Milvus Lite evaluates JSON comparisons with Python semantics, so
``metadata["x"] == 1`` is also true for ``true`` and a comparison with a missing key is NULL,
which ``not`` keeps NULL. Filters must follow :func:`bge_vdb.filters.matches` exactly, so each
scalar leaf is also stored in a bucket of its own type, keyed by its JSON-encoded path:
``{"n": {'["year"]': 2024}, "s": {'["lang"]': "en"}, "b": {'["draft"]': false}}``. Every
comparison reads one bucket behind an ``exists`` guard and is therefore never NULL; lists are in
no bucket, since a list never equals a scalar. Paths holding null are listed in a fourth bucket,
``"z"``, because Milvus 2.3 finds a JSON null with ``exists`` (Milvus Lite does not) while
``$exists`` must not; ``$exists`` reads the user's ``metadata`` field and that bucket.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .. import filters
from ..errors import UnsupportedFilter

INT64 = (-(2**63), 2**63 - 1)


def quote(value: str) -> str:
    """A Milvus string literal for ``value``: the escapes both Milvus and Milvus Lite read."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"')
        .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def path_key(path: Sequence[str]) -> str:
    """The key of a metadata path in ``metadata_typed``: injective, whatever the keys contain."""
    return json.dumps(list(path), ensure_ascii=False, separators=(",", ":"))


def typed_leaves(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Scalar leaves of ``metadata`` sorted into buckets by type (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {"n": {}, "s": {}, "b": {}}

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = (*path, key)
            if isinstance(value, Mapping):
                walk(value, here)
            elif isinstance(value, bool):
                out["b"][path_key(here)] = value
            elif isinstance(value, (int, float)):
                out["n"][path_key(here)] = value
            elif isinstance(value, str):
                out["s"][path_key(here)] = value
            elif value is None:
                out.setdefault("z", {})[path_key(here)] = True

    walk(metadata, ())
    return out


def _literal(value: Any, op: str) -> tuple[str, str]:
    """(bucket, literal) of a filter value."""
    if isinstance(value, bool):
        return "b", "true" if value else "false"
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise UnsupportedFilter(f"Milvus cannot compare with integers beyond 64 bits (${op} {value})")
        return "n", str(value)
    if isinstance(value, float):
        return "n", repr(value)
    return "s", quote(value)


def to_expr(node: filters.Node, typed_field: str, meta_field: str, *, nul_in_paths: bool = True) -> str:
    """Translate a filter AST into a Milvus boolean expression with the reference semantics.

    ``nul_in_paths=False`` for servers that cannot address a JSON key containing NUL (Milvus
    2.3 finds nothing under it): ``$exists`` on such a key is refused rather than answered wrong.
    Comparisons are unaffected: they address ``metadata_typed`` by the JSON-escaped path.
    """
    if isinstance(node, (filters.And, filters.Or)):
        word = " and " if isinstance(node, filters.And) else " or "
        return "(" + word.join(to_expr(c, typed_field, meta_field, nul_in_paths=nul_in_paths)
                               for c in node.children) + ")"
    if isinstance(node, filters.Not):
        return f"not {to_expr(node.child, typed_field, meta_field, nul_in_paths=nul_in_paths)}"

    def compare(op: str, value: Any) -> str:
        bucket, lit = _literal(value, node.op)
        ref = f"{typed_field}[{quote(bucket)}][{quote(path_key(node.key))}]"
        # `(exists x)` in parentheses: Milvus 2.3's parser reads `exists x and y` as `exists (x and y)`.
        return f"((exists {ref}) and {ref} {op} {lit})"

    op = node.op
    if op == "exists":
        if not nul_in_paths and any("\x00" in part for part in node.key):
            raise UnsupportedFilter(
                f"this Milvus server cannot address a metadata key containing NUL, so $exists on "
                f"{node.dotted!r} cannot be evaluated"
            )
        ref = meta_field + "".join(f"[{quote(part)}]" for part in node.key)
        null = f"{typed_field}[{quote('z')}][{quote(path_key(node.key))}]"
        present = f"((exists {ref}) and not (exists {null}))"
        return present if node.value else f"not {present}"
    if op in ("eq", "ne"):
        eq = compare("==", node.value)
        return eq if op == "eq" else f"not {eq}"
    if op in ("in", "nin"):
        any_of = "(" + " or ".join(compare("==", v) for v in node.value) + ")"
        return any_of if op == "in" else f"not {any_of}"
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}.get(op)
    if symbol is None:
        raise UnsupportedFilter(f"Milvus cannot evaluate the ${op} operator (on {node.dotted!r})")
    return compare(symbol, node.value)
