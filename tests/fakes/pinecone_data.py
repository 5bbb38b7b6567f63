"""The data plane of the Pinecone fake: the Vectors API and namespaces (API version 2026-07).

Each operation takes the decoded request and the index and returns the JSON reply, or raises
:class:`ApiFailure` with the service's status. ``"__default__"`` names the default namespace
everywhere a namespace is named (it is ``""`` when omitted); a namespace exists once created or
written to, until it is deleted, and the default namespace always exists.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.fakes.pinecone_semantics import (
    ApiFailure,
    check_id,
    check_metadata,
    check_sparse,
    matches,
    not_modelled,
    score,
    sparse_dot,
)

DEFAULT_NS = "__default__"
MAX_UPSERT_VECTORS = 1000
MAX_FETCH_IDS = 1000
MAX_LIST_LIMIT = 100
MAX_TOP_K = 10_000
MAX_FETCH_BY_METADATA_LIMIT = 10_000


@dataclass
class Row:
    values: np.ndarray
    metadata: dict[str, Any] | None
    sparse: tuple[list[int], list[float]] | None = None


@dataclass
class FakeIndex:
    name: str
    dim: int
    metric: str
    cloud: str
    region: str
    deletion_protection: str
    tags: dict[str, str] | None
    pending_describes: int  # "Initializing" for this many more describes
    namespaces: dict[str, dict[str, Row]] = field(default_factory=lambda: {"": {}})


def ns_key(name: Any) -> str:
    if name is None:
        return ""
    if not isinstance(name, str):
        raise ApiFailure(400, f"namespace must be a string, got {name!r}")
    return "" if name == DEFAULT_NS else name


def _page(token: str | None) -> str | None:
    return base64.urlsafe_b64decode(token.encode()).decode() if token else None


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def _vector_json(vid: str, row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {"id": vid, "values": row.values.tolist()}
    if row.sparse is not None:
        out["sparseValues"] = {"indices": row.sparse[0], "values": row.sparse[1]}
    if row.metadata is not None:
        out["metadata"] = row.metadata
    return out


def _dense(ix: FakeIndex, values: Any, where: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != ix.dim:
        got = len(values) if isinstance(values, list) else values
        raise ApiFailure(400, f"Vector dimension {got} does not match the dimension of the index {ix.dim}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ApiFailure(400, f"{where}: values must be finite")
    return arr.astype(np.float32)


def upsert(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    vectors = body.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise ApiFailure(400, "vectors must be a non-empty list")
    if len(vectors) > MAX_UPSERT_VECTORS:
        raise ApiFailure(400, f"Upsert request can contain at most {MAX_UPSERT_VECTORS} vectors, got {len(vectors)}")
    rows: dict[str, Row] = {}
    for i, v in enumerate(vectors):  # validate everything before applying anything
        if not isinstance(v, dict) or set(v) - {"id", "values", "sparseValues", "metadata"}:
            raise ApiFailure(400, f"vectors[{i}]: a vector takes id, values, sparseValues and metadata")
        vid = v.get("id")
        check_id(vid)
        meta = v.get("metadata")
        rows[vid] = Row(_dense(ix, v.get("values"), f"vectors[{i}]"),
                        None if meta is None else check_metadata(vid, meta),
                        None if v.get("sparseValues") is None else check_sparse(f"vectors[{i}]", v["sparseValues"]))
    ix.namespaces.setdefault(ns_key(body.get("namespace")), {}).update(rows)
    return {"upsertedCount": len(vectors)}


def query(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    top_k = body.get("topK")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ApiFailure(400, f"topK must be in [1, {MAX_TOP_K}], got {top_k!r}")
    if body.get("queries") is not None:
        raise not_modelled("the deprecated 'queries' field of query")
    if body.get("scanFactor") is not None or body.get("maxCandidates") is not None:
        raise ApiFailure(400, "scanFactor and maxCandidates apply to indexes on dedicated read nodes only; "
                              "this index reads on demand")
    vector, vid, sparse = body.get("vector"), body.get("id"), body.get("sparseVector")
    if vid is not None and (vector is not None or sparse is not None):
        raise ApiFailure(400, "Cannot provide both an id and a vector")
    ns = ns_key(body.get("namespace"))
    rows = ix.namespaces.get(ns, {})
    q_sparse = None if sparse is None else check_sparse("sparseVector", sparse)
    if q_sparse is not None and ix.metric != "dotproduct":
        raise ApiFailure(400, f"Cannot query index with metric {ix.metric!r} using sparse values: "
                              "sparse-dense queries need the 'dotproduct' metric")
    if vid is not None:
        check_id(vid)
        if vid not in rows:
            return {"matches": [], "namespace": body.get("namespace") or "", "usage": {"readUnits": 1}}
        q = rows[vid].values
    elif vector is not None:
        if not isinstance(vector, list) or len(vector) != ix.dim:
            raise ApiFailure(400, f"Query vector dimension does not match the index dimension {ix.dim}")
        q = np.asarray(vector, dtype=np.float32)
    else:
        raise ApiFailure(400, "No query provided: give a vector or an id (a dense index needs a dense query)")
    flt = body.get("filter")
    chosen = [(k, r) for k, r in rows.items() if flt is None or matches(flt, r.metadata or {})]
    scored = [(score(ix.metric, r.values, q) + (sparse_dot(r.sparse, q_sparse) if q_sparse else 0.0), k, r)
              for k, r in chosen]
    order = sorted(range(len(scored)), key=lambda i: scored[i][0] if ix.metric == "euclidean" else -scored[i][0])
    out = []
    for i in order[:top_k]:  # stable: ties keep insertion order
        s, k, r = scored[i]
        m: dict[str, Any] = {"id": k, "score": s, "values": r.values.tolist() if body.get("includeValues") else []}
        if body.get("includeValues") and r.sparse is not None:
            m["sparseValues"] = {"indices": r.sparse[0], "values": r.sparse[1]}
        if body.get("includeMetadata") and r.metadata is not None:
            m["metadata"] = r.metadata
        out.append(m)
    return {"matches": out, "namespace": body.get("namespace") or "", "usage": {"readUnits": 1}}


def fetch(ix: FakeIndex, params: dict[str, list[str]]) -> dict[str, Any]:
    ids = params.get("ids", [])
    if not ids:
        raise ApiFailure(400, "ids must be a non-empty list")
    if len(ids) > MAX_FETCH_IDS:
        raise ApiFailure(400, f"Fetch request can contain at most {MAX_FETCH_IDS} ids, got {len(ids)}")
    raw_ns = (params.get("namespace") or [""])[0]
    rows = ix.namespaces.get(ns_key(raw_ns), {})
    return {"vectors": {i: _vector_json(i, rows[i]) for i in ids if i in rows}, "namespace": raw_ns,
            "usage": {"readUnits": 1}}


def fetch_by_metadata(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    flt, limit = body.get("filter"), body.get("limit", 100)
    if not flt:
        raise ApiFailure(400, "Empty filter provided for fetch by metadata request")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FETCH_BY_METADATA_LIMIT:
        raise ApiFailure(400, f"limit must be in [1, {MAX_FETCH_BY_METADATA_LIMIT}], got {limit!r}")
    rows = ix.namespaces.get(ns_key(body.get("namespace")), {})
    after = _page(body.get("paginationToken"))
    hits = sorted(k for k, r in rows.items() if (after is None or k > after) and matches(flt, r.metadata or {}))
    page = hits[:limit]
    out: dict[str, Any] = {"vectors": {k: _vector_json(k, rows[k]) for k in page},
                           "namespace": body.get("namespace") or "", "usage": {"readUnits": 1}}
    if len(hits) > limit:
        out["pagination"] = {"next": _token(page[-1])}
    return out


def delete(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    ids, flt, delete_all = body.get("ids"), body.get("filter"), body.get("deleteAll")
    if sum(x is not None and x is not False for x in (ids, flt, delete_all)) != 1:
        raise ApiFailure(400, "Exactly one of ids, filter or deleteAll must be given")
    if ids is not None and len(ids) > 1000:
        raise ApiFailure(400, "Delete request can contain at most 1000 ids")
    rows = ix.namespaces.get(ns_key(body.get("namespace")), {})
    if delete_all:
        rows.clear()
    elif ids is not None:
        for i in ids:
            rows.pop(i, None)
    else:
        if not flt:
            raise ApiFailure(400, "Delete with empty metadata filter is not allowed")
        for i in [k for k, r in rows.items() if matches(flt, r.metadata or {})]:
            del rows[i]
    return {}


def update(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    vid, flt = body.get("id"), body.get("filter")
    values, sparse, meta = body.get("values"), body.get("sparseValues"), body.get("setMetadata")
    rows = ix.namespaces.get(ns_key(body.get("namespace")), {})
    if (vid is None) == (flt is None):
        raise ApiFailure(400, "Exactly one of id or filter must be given")
    if vid is not None:  # a partial update of one record; an unknown id changes nothing
        check_id(vid)
        new_values = None if values is None else _dense(ix, values, "values")
        new_sparse = None if sparse is None else check_sparse("sparseValues", sparse)
        new_meta = None if meta is None else check_metadata(vid, meta)
        row = rows.get(vid)
        if row is not None:
            if new_values is not None:
                row.values = new_values
            if new_sparse is not None:
                row.sparse = new_sparse
            if new_meta is not None:
                row.metadata = {**(row.metadata or {}), **new_meta}
        return {}
    if values is not None or sparse is not None:
        raise ApiFailure(400, "An update by filter changes metadata only: values and sparseValues need an id")
    if not flt:
        raise ApiFailure(400, "Update with empty metadata filter is not allowed")
    new_meta = check_metadata("(filter update)", meta or {})
    hits = [r for r in rows.values() if matches(flt, r.metadata or {})]
    if not body.get("dryRun"):
        for r in hits:
            r.metadata = {**(r.metadata or {}), **new_meta}
    return {"matchedRecords": len(hits)}


def stats(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("filter"):
        raise ApiFailure(400, "Serverless and starter indexes do not support describing index stats "
                              "with metadata filtering")
    counts = {ns or DEFAULT_NS: {"vectorCount": len(rows)} for ns, rows in ix.namespaces.items() if rows}
    return {"namespaces": counts, "dimension": ix.dim, "indexFullness": 0.0,
            "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
            "metric": ix.metric, "vectorType": "dense"}


def list_ids(ix: FakeIndex, params: dict[str, list[str]]) -> dict[str, Any]:
    raw_ns = (params.get("namespace") or [""])[0]
    prefix = (params.get("prefix") or [""])[0]
    limit = int((params.get("limit") or ["100"])[0])
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ApiFailure(400, f"limit must be in [1, {MAX_LIST_LIMIT}], got {limit}")
    after = _page((params.get("paginationToken") or [""])[0])
    ids = sorted(i for i in ix.namespaces.get(ns_key(raw_ns), {}) if i.startswith(prefix))
    if after is not None:
        ids = [i for i in ids if i > after]
    page = ids[:limit]
    out: dict[str, Any] = {"vectors": [{"id": i} for i in page], "namespace": raw_ns, "usage": {"readUnits": 1}}
    if len(ids) > limit:
        out["pagination"] = {"next": _token(page[-1])}
    return out


# ------------------------------------------------------------------------------- namespaces
def _describe_ns(ns: str, rows: dict[str, Row]) -> dict[str, Any]:
    fields = sorted({k for r in rows.values() for k in (r.metadata or {})})
    return {"name": ns or DEFAULT_NS, "record_count": str(len(rows)),  # the service sends a string
            "indexed_fields": {"fields": fields}}


def create_namespace(ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 512 or not name.isascii() or "\x00" in name:
        raise ApiFailure(400, f"Invalid namespace name {name!r}")
    if name == DEFAULT_NS:
        raise ApiFailure(400, f"{DEFAULT_NS!r} is reserved and cannot be created")
    if body.get("schema") is not None:
        raise not_modelled("a namespace 'schema' (which metadata fields are indexed)")
    if name in ix.namespaces:
        raise ApiFailure(409, f"Namespace {name!r} already exists", "ALREADY_EXISTS")
    ix.namespaces[name] = {}
    return _describe_ns(name, ix.namespaces[name])


def describe_namespace(ix: FakeIndex, name: str) -> dict[str, Any]:
    key = ns_key(name)
    if key not in ix.namespaces:
        raise ApiFailure(404, f"Namespace {name!r} not found", "NOT_FOUND")
    return _describe_ns(key, ix.namespaces[key])


def delete_namespace(ix: FakeIndex, name: str) -> dict[str, Any]:
    key = ns_key(name)
    if key not in ix.namespaces:
        raise ApiFailure(404, f"Namespace {name!r} not found", "NOT_FOUND")
    if key:
        del ix.namespaces[key]
    else:  # the default namespace always exists: deleting it empties it
        ix.namespaces[""].clear()
    return {}


def list_namespaces(ix: FakeIndex, params: dict[str, list[str]]) -> dict[str, Any]:
    prefix = (params.get("prefix") or [""])[0]
    limit = int((params.get("limit") or ["100"])[0])
    if not 1 <= limit <= 100:
        raise ApiFailure(400, f"limit must be in [1, 100], got {limit}")
    after = _page((params.get("paginationToken") or [""])[0])
    names = sorted((ns or DEFAULT_NS) for ns, rows in ix.namespaces.items() if ns or rows)
    names = [n for n in names if n.startswith(prefix)]
    rest = [n for n in names if after is None or n > after]
    page = rest[:limit]
    out: dict[str, Any] = {"namespaces": [_describe_ns(ns_key(n), ix.namespaces[ns_key(n)]) for n in page],
                           "total_count": len(names)}
    if len(rest) > limit:
        out["pagination"] = {"next": _token(page[-1])}
    return out
