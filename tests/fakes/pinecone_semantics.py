"""Pinecone's record rules, scores and metadata filter language, as the Pinecone fake applies them.

From Pinecone's API reference and "Known limitations" (API version 2026-07): IDs are 1-512 ASCII
characters; metadata is a flat object of string, number, boolean or list-of-strings values, at
most 40 KB, and *null values are not supported* ("Instead of setting a key to null, remove the
key"), so a null is refused rather than dropped; numbers are stored as 64-bit floats. Scores:
cosine similarity, dot product, or the squared euclidean distance; a sparse-dense query (dot
product indexes only) adds the sparse dot product to the dense one. Filters: ``$eq $ne $gt $gte
$lt $lte $in $nin $exists $and $or``; a list-valued field matches ``$eq``/``$in`` when any
element does and ``$ne``/``$nin`` when none does; a comparison on a missing field is false, also
for ``$ne``/``$nin``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

MAX_METADATA_BYTES = 40 * 1024
MAX_SPARSE_VALUES = 2048


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def not_modelled(what: str) -> ApiFailure:
    """What the fake answers for a request the service would serve but the fake does not model."""
    return ApiFailure(501, f"the Pinecone fake does not model {what}", "UNIMPLEMENTED")


def check_id(vid: Any) -> None:
    if not isinstance(vid, str) or not 1 <= len(vid) <= 512 or not vid.isascii() or "\x00" in vid:
        raise ApiFailure(400, f"Vector ID must be 1-512 ASCII characters without NUL, got {vid!r:.80}")


def check_metadata(vid: str, meta: Any) -> dict[str, Any]:
    """The stored form of ``meta`` (numbers as floats), or the service's 400."""
    if not isinstance(meta, dict):
        raise ApiFailure(400, f"Metadata of vector {vid} must be an object")
    size = len(json.dumps(meta, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ApiFailure(400, f"Metadata size is {size} bytes, which exceeds the limit of "
                              f"{MAX_METADATA_BYTES} bytes per vector (vector {vid})")
    for key, value in meta.items():
        if value is None:
            raise ApiFailure(400, f"Metadata value for field {key!r} of vector {vid} is null: null "
                                  "metadata values are not supported, remove the key instead")
        ok = (isinstance(value, (str, bool)) or (isinstance(value, (int, float)) and math.isfinite(value))
              or (isinstance(value, list) and all(isinstance(x, str) for x in value)))
        if not ok:
            raise ApiFailure(400, f"Metadata value for field {key!r} of vector {vid} must be a "
                                  f"string, number, boolean or list of strings, got {json.dumps(value)[:60]}")
    return {k: float(v) if _kind(v) == "num" else v for k, v in meta.items()}


def check_sparse(where: str, sparse: Any) -> tuple[list[int], list[float]]:
    if not isinstance(sparse, dict) or set(sparse) - {"indices", "values"}:
        raise ApiFailure(400, f"{where}: sparse values take exactly 'indices' and 'values'")
    indices, values = sparse.get("indices"), sparse.get("values")
    if not isinstance(indices, list) or not isinstance(values, list) or len(indices) != len(values):
        raise ApiFailure(400, f"{where}: sparse indices and values must be lists of the same length")
    if not indices or len(indices) > MAX_SPARSE_VALUES:
        raise ApiFailure(400, f"{where}: a sparse vector holds 1 to {MAX_SPARSE_VALUES} values, got {len(indices)}")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2**32 for i in indices):
        raise ApiFailure(400, f"{where}: sparse indices must be integers in [0, 2**32)")
    if len(set(indices)) != len(indices):
        raise ApiFailure(400, f"{where}: sparse indices must be unique")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ApiFailure(400, f"{where}: sparse values must be finite numbers")
    return list(indices), [float(v) for v in values]


def score(metric: str, stored: np.ndarray, q: np.ndarray) -> float:
    if metric == "cosine":
        return float(stored @ q / (np.linalg.norm(stored) * np.linalg.norm(q)))
    if metric == "dotproduct":
        return float(stored @ q)
    return float(np.sum((stored - q) ** 2))  # euclidean: Pinecone reports the squared distance


def sparse_dot(a: tuple[list[int], list[float]] | None, b: tuple[list[int], list[float]]) -> float:
    if a is None:
        return 0.0
    weights = dict(zip(*a, strict=True))
    return float(sum(weights.get(i, 0.0) * v for i, v in zip(*b, strict=True)))


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    return "str" if isinstance(v, str) else "other"


def _eq(stored: Any, v: Any) -> bool:
    if isinstance(stored, list):
        return any(_eq(x, v) for x in stored)
    return _kind(stored) == _kind(v) and stored == v


def matches(flt: Any, meta: dict[str, Any]) -> bool:
    if not isinstance(flt, dict):
        raise ApiFailure(400, f"filter must be an object, got {flt!r}")
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise ApiFailure(400, f"{key} takes a non-empty array")
            results = [matches(c, meta) for c in cond]
            if not (all(results) if key == "$and" else any(results)):
                return False
        elif key.startswith("$"):
            raise ApiFailure(400, f"unknown top-level filter operator {key}")
        elif not _field_matches(key, cond if isinstance(cond, dict) else {"$eq": cond}, meta):
            return False
    return True


def _field_matches(key: str, ops: dict[str, Any], meta: dict[str, Any]) -> bool:
    present = key in meta
    value = meta.get(key)
    for op, arg in ops.items():
        if op in ("$eq", "$ne"):
            if isinstance(arg, (list, dict)) or arg is None:
                raise ApiFailure(400, f"{op} takes a string, number or boolean")
            ok = present and (_eq(value, arg) if op == "$eq" else not _eq(value, arg))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list) or not arg:
                raise ApiFailure(400, f"{op} takes a non-empty array")
            hit = any(_eq(value, a) for a in arg)
            ok = present and (hit if op == "$in" else not hit)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if _kind(arg) != "num":
                raise ApiFailure(400, f"{op} takes a number, got {arg!r}")
            ok = present and _kind(value) == "num" and {
                "$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise ApiFailure(400, "$exists takes a boolean")
            ok = present == arg
        else:
            raise ApiFailure(400, f"unknown filter operator {op}")
        if not ok:
            return False
    return True
