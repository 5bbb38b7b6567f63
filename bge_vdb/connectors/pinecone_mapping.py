"""Pure mapping between bge-vdb's model and Pinecone's: index names, ids, record metadata and
filters. No I/O and no SDK import, so every rule here is unit-tested on its own.

* Names: an index name is 1-45 of ``[a-z0-9-]``. A collection name that already is one is used
  as is; any other becomes ``<slug>-<6 hex of sha256>`` (``"My_Docs"`` -> ``my-docs-092217``).
* Ids: Pinecone takes 1-512 ASCII characters. Printable ASCII ids without ``%`` are used as
  is, others are percent-encoded, and one still over 512 characters becomes ``%%<sha256>``
  (``%%`` never appears in percent-encoding, so the mapping cannot collide).
* Record metadata: Pinecone's is flat (string, number, boolean, list of strings) and returns
  numbers as floats. ``_bv`` holds a JSON string of id, text, content hash and the metadata, so
  everything round-trips exactly; filterable copies of every scalar leaf live under typed keys
  (``s:author.name``, ``n:year``, ``b:draft``) and ``_p`` lists which typed keys and paths
  (``e:author``) exist.
* Filters are translated onto those keys with the exact meaning of :func:`bge_vdb.filters.matches`
  (types kept apart, ``$ne``/``$nin`` true on missing keys, nested keys, ``$exists``, ``$not``
  pushed down by De Morgan) using only ``$eq $ne $in $nin $gt $gte $lt $lte $and $or``, which
  every Pinecone plan evaluates.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np

from .. import filters
from ..types import Record

META_NAMESPACE = "__bge_vdb__"  # bge-vdb's own records: collection names, term statistics
MAX_TOP_K = 10_000
_INDEX_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")
_ID_SAFE = "".join(c for c in string.punctuation + " " if c != "%")


def index_name(name: str) -> str:
    """The Pinecone index that holds collection ``name`` (documented, predictable mapping)."""
    if _INDEX_NAME.match(name):
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:38].strip("-") or "c"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def pinecone_id(user_id: str) -> str:
    encoded = quote(user_id, safe=_ID_SAFE)
    return encoded if len(encoded) <= 512 else "%%" + hashlib.sha256(user_id.encode()).hexdigest()


# ------------------------------------------------------------------------------ encoding

def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def encode_metadata(rec: Record) -> dict[str, Any]:
    blob = {"id": rec.id, "text": rec.text, "hash": rec.content_hash, "meta": dict(rec.metadata)}
    meta: dict[str, Any] = {"_bv": dumps(blob).decode()}
    present = ["_"]  # never empty, so "$nin" on it is well defined on every record
    _flatten(rec.metadata, "", meta, present)
    meta["_p"] = present
    return meta


def _flatten(d: Mapping[str, Any], prefix: str, meta: dict[str, Any], present: list[str]) -> None:
    for key, value in d.items():
        if not key or "." in key or value is None:
            continue  # a key with a dot cannot be addressed by a filter path; None never matches
        path = prefix + key
        present.append("e:" + path)
        if isinstance(value, Mapping):
            _flatten(value, path + ".", meta, present)
            continue
        typed = _typed_key(value, path)
        if typed is not None:
            meta[typed] = float(value) if typed[0] == "n" else value
            present.append(typed)


def _typed_key(value: Any, path: str) -> str | None:
    if isinstance(value, bool):
        return "b:" + path
    if isinstance(value, (int, float)):
        return "n:" + path if abs(value) < 1e308 else None
    return "s:" + path if isinstance(value, str) else None  # lists and dicts: no scalar copy


def decode_record(pid: str, metadata: Mapping[str, Any] | None, values: Sequence[float] | None) -> Record:
    vector = np.asarray(values, dtype=np.float32) if values is not None else None
    blob = (metadata or {}).get("_bv")
    if not isinstance(blob, str):  # written by another tool: raw id and metadata
        return Record(pid, vector, None, dict(metadata or {}))
    d = json.loads(blob)
    return Record(d["id"], vector, d.get("text"), d.get("meta") or {}, d.get("hash"))


# ------------------------------------------------------------------------------- filters

def to_pinecone_filter(node: filters.Node | None) -> dict[str, Any] | None:
    """Translate the AST onto the typed keys written by :func:`encode_metadata`, exactly."""
    filters.refuse_inexact_numbers(node, "Pinecone")  # its metadata numbers are float64
    return None if node is None else _tr(node, False)


def _absent(key: str) -> dict[str, Any]:
    return {"_p": {"$nin": [key]}}


def _any(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _all(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _tr(node: filters.Node, neg: bool) -> dict[str, Any]:
    if isinstance(node, filters.Not):
        return _tr(node.child, not neg)
    if isinstance(node, (filters.And, filters.Or)):
        parts = [_tr(c, neg) for c in node.children]
        return _all(parts) if isinstance(node, filters.And) != neg else _any(parts)
    path, op = node.dotted, node.op
    if op == "exists":
        return {"_p": {"$in" if node.value != neg else "$nin": ["e:" + path]}}
    if op in ("eq", "ne", "in", "nin"):
        values = [node.value] if op in ("eq", "ne") else list(node.value)
        positive = (op in ("eq", "in")) != neg
        by_key: dict[str, list[Any]] = {}
        for v in values:
            key = _typed_key(v, path)
            if key is not None:
                by_key.setdefault(key, []).append(float(v) if key[0] == "n" else v)
        if positive:  # equal to one of them: a typed key holds one of its values
            return _any([{k: {"$in": vs}} if k[0] != "b" else _any([{k: {"$eq": v}} for v in vs])
                         for k, vs in by_key.items()] or [{"_p": {"$in": ["!"]}}])  # "!" is never in _p
        # equal to none: for each type, the typed key is absent or holds none of the values
        return _all([_any([_absent(k), _all([{k: {"$ne": v}} for v in vs])]) if k[0] == "b"
                     else _any([_absent(k), {k: {"$nin": vs}}]) for k, vs in by_key.items()]
                    or [{"_p": {"$in": ["_"]}}])
    key = "n:" + path
    if not neg:
        return {key: {"$" + op: float(node.value)}}
    flipped = {"gt": "$lte", "gte": "$lt", "lt": "$gte", "lte": "$gt"}[op]
    return _any([_absent(key), {key: {flipped: float(node.value)}}])


def url_chunks(pids: Sequence[str], max_ids: int = 1000, max_chars: int = 16_000) -> Iterator[list[str]]:
    """Fetch is a GET with the ids in the query string: bound both the count and the URL length."""
    chunk: list[str] = []
    size = 0
    for p in pids:
        n = len(quote(p)) + 5
        if chunk and (len(chunk) >= max_ids or size + n > max_chars):
            yield chunk
            chunk, size = [], 0
        chunk.append(p)
        size += n
    if chunk:
        yield chunk
