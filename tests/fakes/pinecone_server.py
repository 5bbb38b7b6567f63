"""A wire-level fake of Pinecone (REST API version 2026-07) on loopback, for the real SDK.

One ``ThreadingHTTPServer`` serves both planes:

* control plane: ``GET/POST /indexes``, ``GET/DELETE /indexes/{name}``, with the response
  fields the SDK's msgspec models require (``name``, ``status{ready,state}``, ``schema`` with
  the reserved ``_values`` dense field, ``deployment``, ``host``, ``deletion_protection``,
  ``tags``);
* data plane of each index under its ``host``, ``http://127.0.0.1:PORT/index/{name}``:
  ``/vectors/upsert``, ``/query``, ``/vectors/fetch``, ``/vectors/delete`` (ids, filter,
  deleteAll), ``/describe_index_stats``, ``/vectors/list`` (paginated, prefix).

Answers are computed, never canned: cosine similarity over the stored float32 vectors and
Pinecone's metadata filter language evaluated per record (a list-valued field matches
``$eq``/``$in`` when any element does and ``$ne``/``$nin`` when none does; a comparison on a
missing field is false, also for ``$ne``/``$nin``). The service limits that matter to a client
are enforced with Pinecone's status codes: 2 MB per request, 1000 vectors per upsert, 40 KB of
metadata per record, metadata values only string, number, boolean or list of strings, 1000 ids
per fetch, ``limit`` <= 100 per list, index names ``[a-z0-9-]{1,45}``, an API key and the
``X-Pinecone-Api-Version`` header on every request.

Faults are injected with :meth:`FakePinecone.inject`: an HTTP status (5xx, 429 with
Retry-After), a dropped connection before the request is applied, or a dropped connection
after it was applied (the client never hears that its write landed).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from tests.fakes.http_base import JsonHandler, serve_in_thread

API_VERSION = "2026-07"
API_KEY = "fake-pinecone-key"
API_KEY_ENV = "BGE_VDB_PINECONE_FAKE_KEY"
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_UPSERT_VECTORS = 1000
MAX_METADATA_BYTES = 40 * 1024
MAX_FETCH_IDS = 1000
MAX_LIST_LIMIT = 100
INDEX_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$")


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Fault:
    """One injected failure. ``kind``: "status", "drop" (before applying) or "drop_after"."""

    kind: str
    path: str | None  # suffix of the request path it applies to; None = any request
    times: int
    status: int = 503
    retry_after: float | None = None


@dataclass
class Row:
    values: np.ndarray
    metadata: dict[str, Any] | None


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
    namespaces: dict[str, dict[str, Row]] = field(default_factory=dict)


class FakePinecone:
    """State and behaviour of the fake; one per server, reset between tests."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.indexes: dict[str, FakeIndex] = {}
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, body bytes)
        self.initializing_describes = 0
        self.port = 0

    # ------------------------------------------------------------------------- test controls
    @property
    def url(self) -> str:
        return f"pinecone://?host=http://127.0.0.1:{self.port}&api_key_env={API_KEY_ENV}"

    @property
    def control_host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, kind: str = "status", *, path: str | None = None, times: int = 1,
               status: int = 503, retry_after: float | None = None) -> None:
        if kind not in ("status", "drop", "drop_after"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self.lock:
            self.faults.append(Fault(kind, path, times, status, retry_after))

    def reset(self) -> None:
        with self.lock:
            self.indexes.clear()
            self.faults.clear()
            self.requests.clear()
            self.initializing_describes = 0

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path is None or path.endswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------------- control plane
    def index_model(self, ix: FakeIndex) -> dict[str, Any]:
        ready = ix.pending_describes <= 0
        return {
            "name": ix.name,
            "status": {"ready": ready, "state": "Ready" if ready else "Initializing"},
            "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": ix.dim,
                                              "metric": ix.metric}}},
            "deployment": {"deployment_type": "managed", "cloud": ix.cloud, "region": ix.region},
            "deletion_protection": ix.deletion_protection,
            "host": f"http://127.0.0.1:{self.port}/index/{ix.name}",
            "read_capacity": {"mode": "OnDemand", "status": {"state": "Ready"}},
            "tags": ix.tags,
        }

    def create_index(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not INDEX_NAME.match(name):
            raise ApiFailure(400, f"Invalid index name {name!r}: use 1-45 lowercase alphanumeric "
                                  "characters or '-', starting and ending with an alphanumeric")
        fields = (body.get("schema") or {}).get("fields") or {}
        dense = fields.get("_values")
        if set(fields) != {"_values"} or not isinstance(dense, dict) or dense.get("type") != "dense_vector":
            raise ApiFailure(400, "this fake serves only vector indexes (one '_values' dense field)")
        dim, metric = dense.get("dimension"), dense.get("metric", "cosine")
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 20000:
            raise ApiFailure(400, f"dimension must be an integer in [1, 20000], got {dim!r}")
        if metric not in ("cosine", "euclidean", "dotproduct"):
            raise ApiFailure(400, f"unknown metric {metric!r}")
        dep = body.get("deployment") or {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}
        with self.lock:
            if name in self.indexes:
                raise ApiFailure(409, f"Resource {name} already exists", "ALREADY_EXISTS")
            ix = FakeIndex(name, dim, metric, dep.get("cloud", "aws"), dep.get("region", "us-east-1"),
                           body.get("deletion_protection") or "disabled", body.get("tags"),
                           self.initializing_describes)
            self.indexes[name] = ix
            return self.index_model(ix)

    def get_index(self, name: str) -> FakeIndex:
        ix = self.indexes.get(name)
        if ix is None:
            raise ApiFailure(404, f"Resource {name} not found", "NOT_FOUND")
        return ix

    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/indexes" and method == "GET":
            with self.lock:
                return 200, {"indexes": [self.index_model(ix) for ix in self.indexes.values()]}
        if path == "/indexes" and method == "POST":
            return 201, self.create_index(body)
        name = unquote(path[len("/indexes/"):])
        with self.lock:
            ix = self.get_index(name)
            if method == "GET":
                model = self.index_model(ix)
                ix.pending_describes -= 1
                return 200, model
            if method == "DELETE":
                if ix.deletion_protection == "enabled":
                    raise ApiFailure(403, "Deletion protection is enabled for this index", "FORBIDDEN")
                del self.indexes[name]
                return 202, None
        raise ApiFailure(404, f"no route {method} {path}", "NOT_FOUND")

    # ---------------------------------------------------------------------------- data plane
    def data(self, ix: FakeIndex, method: str, op: str, query: dict[str, list[str]], body: Any) -> Any:
        if op == "/vectors/upsert" and method == "POST":
            return self.upsert(ix, body)
        if op == "/query" and method == "POST":
            return self.query(ix, body)
        if op == "/vectors/fetch" and method == "GET":
            return self.fetch(ix, query)
        if op == "/vectors/delete" and method == "POST":
            return self.delete(ix, body)
        if op == "/describe_index_stats" and method == "POST":
            if body.get("filter"):
                raise ApiFailure(400, "Serverless and starter indexes do not support describing "
                                      "index stats with metadata filtering")
            counts = {ns or "__default__": {"vectorCount": len(rows)}
                      for ns, rows in ix.namespaces.items() if rows}
            return {"namespaces": counts, "dimension": ix.dim, "indexFullness": 0.0,
                    "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
                    "metric": ix.metric, "vectorType": "dense"}
        if op == "/vectors/list" and method == "GET":
            return self.list_ids(ix, query)
        raise ApiFailure(404, f"no route {method} {op}", "NOT_FOUND")

    def upsert(self, ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise ApiFailure(400, "vectors must be a non-empty list")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise ApiFailure(400, f"Upsert request can contain at most {MAX_UPSERT_VECTORS} vectors, "
                                  f"got {len(vectors)}")
        rows: dict[str, Row] = {}
        for i, v in enumerate(vectors):  # validate everything before applying anything
            vid, values, meta = v.get("id"), v.get("values"), v.get("metadata")
            check_id(vid)
            if not isinstance(values, list) or len(values) != ix.dim:
                got = len(values) if isinstance(values, list) else values
                raise ApiFailure(400, f"Vector dimension {got} does not match the dimension of "
                                      f"the index {ix.dim}")
            arr = np.asarray(values, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise ApiFailure(400, f"vectors[{i}]: values must be finite")
            if meta is not None:
                meta = check_metadata(vid, meta)
            rows[vid] = Row(arr.astype(np.float32), meta)
        with self.lock:
            ix.namespaces.setdefault(body.get("namespace") or "", {}).update(rows)
        return {"upsertedCount": len(vectors)}

    def query(self, ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
        top_k, vector = body.get("topK"), body.get("vector")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10000:
            raise ApiFailure(400, f"topK must be in [1, 10000], got {top_k!r}")
        if not isinstance(vector, list) or len(vector) != ix.dim:
            raise ApiFailure(400, f"Query vector dimension does not match the index dimension {ix.dim}")
        flt = body.get("filter")
        ns = body.get("namespace") or ""
        with self.lock:
            rows = [(k, r) for k, r in ix.namespaces.get(ns, {}).items()
                    if flt is None or matches(flt, r.metadata or {})]
        q = np.asarray(vector, dtype=np.float32)
        scored = [(score(ix.metric, r.values, q), k, r) for k, r in rows]
        order = sorted(range(len(scored)), key=lambda i: -scored[i][0])[:top_k]  # stable: ties keep order
        matches_out = []
        for i in order:
            s, k, r = scored[i]
            m: dict[str, Any] = {"id": k, "score": s, "values": r.values.tolist() if body.get("includeValues") else []}
            if body.get("includeMetadata") and r.metadata is not None:
                m["metadata"] = r.metadata
            matches_out.append(m)
        return {"matches": matches_out, "namespace": ns, "usage": {"readUnits": 1}}

    def fetch(self, ix: FakeIndex, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = query.get("ids", [])
        if not ids:
            raise ApiFailure(400, "ids must be a non-empty list")
        if len(ids) > MAX_FETCH_IDS:
            raise ApiFailure(400, f"Fetch request can contain at most {MAX_FETCH_IDS} ids, got {len(ids)}")
        ns = (query.get("namespace") or [""])[0]
        with self.lock:
            rows = ix.namespaces.get(ns, {})
            found = {i: rows[i] for i in ids if i in rows}
        out = {}
        for i, r in found.items():
            out[i] = {"id": i, "values": r.values.tolist()}
            if r.metadata is not None:
                out[i]["metadata"] = r.metadata
        return {"vectors": out, "namespace": ns, "usage": {"readUnits": 1}}

    def delete(self, ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
        ns = body.get("namespace") or ""
        ids, flt, delete_all = body.get("ids"), body.get("filter"), body.get("deleteAll")
        if sum(x is not None and x is not False for x in (ids, flt, delete_all)) != 1:
            raise ApiFailure(400, "Exactly one of ids, filter or deleteAll must be given")
        if ids is not None and len(ids) > 1000:
            raise ApiFailure(400, "Delete request can contain at most 1000 ids")
        with self.lock:
            rows = ix.namespaces.get(ns, {})
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

    def list_ids(self, ix: FakeIndex, query: dict[str, list[str]]) -> dict[str, Any]:
        ns = (query.get("namespace") or [""])[0]
        prefix = (query.get("prefix") or [""])[0]
        limit = int((query.get("limit") or ["100"])[0])
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiFailure(400, f"limit must be in [1, {MAX_LIST_LIMIT}], got {limit}")
        token = (query.get("paginationToken") or [""])[0]
        after = base64.urlsafe_b64decode(token.encode()).decode() if token else None
        with self.lock:
            ids = sorted(i for i in ix.namespaces.get(ns, {}) if i.startswith(prefix))
        if after is not None:
            ids = [i for i in ids if i > after]
        page = ids[:limit]
        out: dict[str, Any] = {"vectors": [{"id": i} for i in page], "namespace": ns,
                               "usage": {"readUnits": 1}}
        if len(ids) > limit:
            out["pagination"] = {"next": base64.urlsafe_b64encode(page[-1].encode()).decode()}
        return out


# ------------------------------------------------------------------------- Pinecone semantics

def check_id(vid: Any) -> None:
    if not isinstance(vid, str) or not 1 <= len(vid) <= 512 or not vid.isascii() or "\x00" in vid:
        raise ApiFailure(400, f"Vector ID must be 1-512 ASCII characters without NUL, got {vid!r:.80}")


def check_metadata(vid: str, meta: Any) -> dict[str, Any]:
    """Pinecone's rule: flat, values string, number, boolean or list of strings; nulls are
    stripped on write (not refused); numbers are stored as 64-bit floats, so 1 comes back 1.0."""
    if not isinstance(meta, dict):
        raise ApiFailure(400, f"Metadata of vector {vid} must be an object")
    size = len(json.dumps(meta, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ApiFailure(400, f"Metadata size is {size} bytes, which exceeds the limit of "
                              f"{MAX_METADATA_BYTES} bytes per vector (vector {vid})")
    for key, value in meta.items():
        ok = (value is None or isinstance(value, (str, bool)) or (isinstance(value, (int, float)) and math.isfinite(value))
              or (isinstance(value, list) and all(isinstance(x, str) for x in value)))
        if not ok:
            raise ApiFailure(400, f"Metadata value for field {key!r} of vector {vid} must be a "
                                  f"string, number, boolean or list of strings, got {json.dumps(value)[:60]}")
    return {k: float(v) if _kind(v) == "num" else v for k, v in meta.items() if v is not None}


def score(metric: str, stored: np.ndarray, q: np.ndarray) -> float:
    if metric == "cosine":
        return float(stored @ q / (np.linalg.norm(stored) * np.linalg.norm(q)))
    if metric == "dotproduct":
        return float(stored @ q)
    return float(np.sum((stored - q) ** 2))  # euclidean: Pinecone reports the squared distance


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


# ------------------------------------------------------------------------------- HTTP server

class _Handler(JsonHandler):
    server: _Server

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.requests.append((method, parts.path, len(raw)))
        fault = fake.take_fault(parts.path)
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            self._send(fault.status, {"error": {"code": "UNAVAILABLE", "message": "injected fault"},
                                      "status": fault.status}, headers)
            return
        try:
            status, body = self._route(method, parts.path, parse_qs(parts.query), raw)
        except ApiFailure as exc:
            status, body = exc.status, {"error": {"code": exc.code, "message": exc.message},
                                        "status": exc.status}
        if fault is not None:  # drop_after: applied, but the client never hears of it
            self._drop()
            return
        self._send(status, body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        if self.headers.get("Api-Key") != API_KEY:
            raise ApiFailure(401, "Invalid API Key", "UNAUTHENTICATED")
        if self.headers.get("X-Pinecone-Api-Version") != API_VERSION:
            raise ApiFailure(400, f"unsupported API version {self.headers.get('X-Pinecone-Api-Version')!r}")
        if len(raw) > MAX_REQUEST_BYTES:
            raise ApiFailure(400, f"Request size {len(raw)} bytes exceeds the maximum supported "
                                  f"size of {MAX_REQUEST_BYTES} bytes")
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiFailure(400, "request body is not valid JSON") from None
        fake = self.server.fake
        if path == "/indexes" or path.startswith("/indexes/"):
            return fake.control(method, path, body)
        m = re.match(r"^/index/([^/]+)(/.*)$", path)
        if m is None:
            raise ApiFailure(404, f"no route {method} {path}", "NOT_FOUND")
        with fake.lock:
            ix = fake.get_index(m.group(1))
        return 200, fake.data(ix, method, m.group(2), query, body)


class _Server(ThreadingHTTPServer):
    fake: FakePinecone


_SERVER: _Server | None = None
_SERVER_LOCK = threading.Lock()
_USERS = 0  # open running_pinecone_fake() contexts: only the outermost one resets


def _start() -> FakePinecone:
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = FakePinecone()
            server.fake.port = server.server_address[1]
            serve_in_thread(server, "pinecone-fake")
            _SERVER = server
        return _SERVER.fake


@contextmanager
def running_pinecone_fake() -> Iterator[FakePinecone]:
    """The process-wide fake (started on first use), empty on entry and reset on exit.

    Nested uses (two stores open in one test) share the state; only the outermost resets.
    Its ``.url`` connects with ``bge_vdb.connect``; the API key is read from the
    ``BGE_VDB_PINECONE_FAKE_KEY`` environment variable, which this sets.
    """
    global _USERS
    os.environ.setdefault(API_KEY_ENV, API_KEY)
    fake = _start()
    with _SERVER_LOCK:
        _USERS += 1
        if _USERS == 1:
            fake.reset()
    try:
        yield fake
    finally:
        with _SERVER_LOCK:
            _USERS -= 1
            if _USERS == 0:
                fake.reset()
