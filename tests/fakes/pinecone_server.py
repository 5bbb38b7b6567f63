"""A wire-level fake of Pinecone (REST API version 2026-07) on loopback, for the real SDK.

One ``ThreadingHTTPServer`` serves both planes:

* control plane: list/create/describe/configure/delete indexes (``/indexes``), with the response
  fields the SDK's msgspec models require (``name``, ``status{ready,state}``, ``schema`` with
  the reserved ``_values`` dense field, ``deployment``, ``host``, ``deletion_protection``,
  ``tags``); ``configure`` changes deletion protection and tags (``""`` deletes a tag);
* data plane of each index under its ``host``, ``http://127.0.0.1:PORT/index/{name}``: the
  Vectors API (upsert with sparse values, query by vector / id / sparse-dense, fetch,
  fetch_by_metadata, delete, update by id or filter, describe_index_stats, list) and
  namespaces (:mod:`pinecone_data`).

Answers are computed, never canned (:mod:`pinecone_semantics`). The service limits that matter to
a client are enforced with Pinecone's status codes: 2 MB per request, 1000 vectors per upsert,
40 KB of metadata per record, no null metadata, 1000 ids per fetch, ``limit`` <= 100 per list,
index names ``[a-z0-9-]{1,45}``, an API key and the ``X-Pinecone-Api-Version`` header.

What the fake does not model is refused, never silently skipped: every route of the API reference
it does not implement (integrated-embedding records, documents, bulk imports, collections,
backups, restore jobs, backup schedules, inference) answers HTTP 501, and so does a request field
it does not implement (sparse or text index fields, pod/BYOC deployments, dedicated read
capacity, CMEK, namespace schemas); a field the API does not have at all answers 400.

Faults are injected with :meth:`FakePinecone.inject`: an HTTP status (5xx, 429 with
Retry-After), a dropped connection before the request is applied, or a dropped connection
after it was applied (the client never hears that its write landed).
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes import pinecone_data as data
from tests.fakes.http_base import JsonHandler, serve_in_thread
from tests.fakes.pinecone_data import FakeIndex
from tests.fakes.pinecone_semantics import ApiFailure, not_modelled

API_VERSION = "2026-07"
API_KEY = "fake-pinecone-key"
API_KEY_ENV = "BGE_VDB_PINECONE_FAKE_KEY"
MAX_REQUEST_BYTES = 2 * 1024 * 1024
INDEX_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$")

# Every route of the API reference: (method, path pattern) -> operation. Implemented operations
# are dispatched below; the rest are refused with 501 (the service has them, the fake does not).
ROUTES: dict[tuple[str, str], str] = {
    ("GET", r"/indexes"): "list_indexes", ("POST", r"/indexes"): "create_index",
    ("GET", r"/indexes/[^/]+"): "describe_index", ("PATCH", r"/indexes/[^/]+"): "configure_index",
    ("DELETE", r"/indexes/[^/]+"): "delete_index",
    ("POST", r"/vectors/upsert"): "upsert", ("POST", r"/query"): "query",
    ("GET", r"/vectors/fetch"): "fetch", ("POST", r"/vectors/fetch_by_metadata"): "fetch_by_metadata",
    ("POST", r"/vectors/delete"): "delete", ("POST", r"/vectors/update"): "update",
    ("POST", r"/describe_index_stats"): "describe_index_stats", ("GET", r"/vectors/list"): "list",
    ("POST", r"/namespaces"): "create_namespace", ("GET", r"/namespaces"): "list_namespaces",
    ("GET", r"/namespaces/[^/]+"): "describe_namespace", ("DELETE", r"/namespaces/[^/]+"): "delete_namespace",
}
UNMODELLED_ROUTES: dict[tuple[str, str], str] = {
    ("POST", r"/indexes/create-for-model"): "integrated-embedding indexes (create_for_model)",
    ("GET", r"/indexes/[^/]+/backups"): "backups", ("POST", r"/indexes/[^/]+/backups"): "backups",
    ("GET", r"/backups"): "backups", ("GET", r"/backups/[^/]+"): "backups",
    ("DELETE", r"/backups/[^/]+"): "backups", ("POST", r"/backups/[^/]+/create-index"): "restores from backups",
    ("GET", r"/restore-jobs"): "restore jobs", ("GET", r"/restore-jobs/[^/]+"): "restore jobs",
    ("GET", r"/indexes/[^/]+/backup-schedules"): "backup schedules",
    ("POST", r"/indexes/[^/]+/backup-schedules"): "backup schedules",
    ("GET", r"/backup-schedules/[^/]+"): "backup schedules", ("PATCH", r"/backup-schedules/[^/]+"): "backup schedules",
    ("DELETE", r"/backup-schedules/[^/]+"): "backup schedules",
    ("GET", r"/backup-schedules/[^/]+/history"): "backup schedules",
    ("GET", r"/collections"): "collections", ("POST", r"/collections"): "collections",
    ("GET", r"/collections/[^/]+"): "collections", ("DELETE", r"/collections/[^/]+"): "collections",
    ("POST", r"/embed"): "the inference API", ("POST", r"/rerank"): "the inference API",
    ("GET", r"/models"): "the inference API", ("GET", r"/models/[^/]+"): "the inference API",
    ("POST", r"/records/namespaces/[^/]+/upsert"): "integrated-embedding records (upsert_records)",
    ("POST", r"/records/namespaces/[^/]+/search"): "integrated-embedding records (search)",
    ("POST", r"/namespaces/[^/]+/documents/(upsert|search|fetch|delete|update|list)"): "the Documents API",
    ("GET", r"/bulk/imports"): "bulk imports", ("POST", r"/bulk/imports"): "bulk imports",
    ("GET", r"/bulk/imports/[^/]+"): "bulk imports", ("DELETE", r"/bulk/imports/[^/]+"): "bulk imports",
}
# Body fields per operation: (implemented, in the API but not modelled by the fake).
BODY_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "create_index": ({"name", "schema", "deployment", "read_capacity", "deletion_protection", "tags"}, {"cmek_id"}),
    "configure_index": ({"deletion_protection", "tags", "read_capacity", "deployment", "schema"}, {"embed"}),
    "upsert": ({"vectors", "namespace"}, set()),
    "query": ({"namespace", "topK", "filter", "includeValues", "includeMetadata", "vector", "sparseVector",
               "id", "scanFactor", "maxCandidates", "queries"}, set()),
    "fetch_by_metadata": ({"namespace", "filter", "limit", "paginationToken"}, set()),
    "delete": ({"ids", "deleteAll", "namespace", "filter"}, set()),
    "update": ({"id", "values", "sparseValues", "setMetadata", "namespace", "filter", "dryRun"}, set()),
    "describe_index_stats": ({"filter"}, set()),
    "create_namespace": ({"name", "schema"}, set()),
}


@dataclass
class Fault:
    """One injected failure. ``kind``: "status", "drop" (before applying) or "drop_after"."""

    kind: str
    path: str | None  # suffix of the request path it applies to; None = any request
    times: int
    status: int = 503
    retry_after: float | None = None


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
        name = body.get("name") or f"index-{uuid.uuid4().hex[:8]}"  # the server names it when omitted
        if not isinstance(name, str) or not INDEX_NAME.match(name):
            raise ApiFailure(400, f"Invalid index name {name!r}: use 1-45 lowercase alphanumeric "
                                  "characters or '-', starting and ending with an alphanumeric")
        fields = (body.get("schema") or {}).get("fields") or {}
        dense = fields.get("_values")
        if set(fields) != {"_values"} or not isinstance(dense, dict) or dense.get("type") != "dense_vector":
            kinds = sorted({str((f or {}).get("type")) for f in fields.values()})
            raise not_modelled(f"index schemas other than one dense '_values' field (got {kinds}): "
                               "sparse, full-text and integrated-embedding indexes")
        dim, metric = dense.get("dimension"), dense.get("metric", "cosine")
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 20000:
            raise ApiFailure(400, f"dimension must be an integer in [1, 20000], got {dim!r}")
        if metric not in ("cosine", "euclidean", "dotproduct"):
            raise ApiFailure(400, f"unknown metric {metric!r}")
        dep = body.get("deployment") or {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}
        if dep.get("deployment_type", "managed") != "managed":
            raise not_modelled(f"{dep.get('deployment_type')} deployments")
        _on_demand(body.get("read_capacity"))
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

    def configure_index(self, ix: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("deployment") is not None:
            raise not_modelled("pod scaling (deployment) of an index")
        if body.get("schema") is not None:
            raise ApiFailure(400, "The schema of an index created with a schema cannot be changed")
        _on_demand(body.get("read_capacity"))
        protection = body.get("deletion_protection")
        if protection is not None:
            if protection not in ("enabled", "disabled"):
                raise ApiFailure(400, f"deletion_protection must be 'enabled' or 'disabled', got {protection!r}")
            ix.deletion_protection = protection
        if body.get("tags") is not None:
            merged = {**(ix.tags or {}), **body["tags"]}
            ix.tags = {k: v for k, v in merged.items() if v != ""} or None  # "" deletes a tag
        return self.index_model(ix)

    def control(self, op: str, method: str, path: str, body: Any) -> tuple[int, Any]:
        if op == "list_indexes":
            return 200, {"indexes": [self.index_model(ix) for ix in self.indexes.values()]}
        if op == "create_index":
            return 201, self.create_index(body)
        ix = self.get_index(unquote(path[len("/indexes/"):]))
        if op == "describe_index":
            model = self.index_model(ix)
            ix.pending_describes -= 1
            return 200, model
        if op == "configure_index":
            return 202, self.configure_index(ix, body)
        if ix.deletion_protection == "enabled":  # delete_index
            raise ApiFailure(403, "Deletion protection is enabled for this index", "FORBIDDEN")
        del self.indexes[ix.name]
        return 202, None

    def data_plane(self, ix: FakeIndex, op: str, path: str, params: dict[str, list[str]], body: Any) -> Any:
        ns_name = unquote(path[len("/namespaces/"):]) if path.startswith("/namespaces/") else ""
        handlers = {
            "upsert": lambda: data.upsert(ix, body), "query": lambda: data.query(ix, body),
            "fetch": lambda: data.fetch(ix, params), "delete": lambda: data.delete(ix, body),
            "fetch_by_metadata": lambda: data.fetch_by_metadata(ix, body),
            "update": lambda: data.update(ix, body), "describe_index_stats": lambda: data.stats(ix, body),
            "list": lambda: data.list_ids(ix, params),
            "create_namespace": lambda: data.create_namespace(ix, body),
            "list_namespaces": lambda: data.list_namespaces(ix, params),
            "describe_namespace": lambda: data.describe_namespace(ix, ns_name),
            "delete_namespace": lambda: data.delete_namespace(ix, ns_name),
        }
        return handlers[op]()


def _on_demand(read_capacity: Any) -> None:
    if read_capacity is not None and (read_capacity or {}).get("mode", "OnDemand") != "OnDemand":
        raise not_modelled("dedicated read capacity")


def operation(method: str, path: str) -> str:
    """The API operation ``method path`` names; 501 if the fake does not model it, else 404."""
    for (m, pattern), op in ROUTES.items():
        if m == method and re.fullmatch(pattern, path):
            return op
    for (m, pattern), what in UNMODELLED_ROUTES.items():
        if m == method and re.fullmatch(pattern, path):
            raise not_modelled(f"{what} ({method} {path})")
    raise ApiFailure(404, f"no route {method} {path}", "NOT_FOUND")


def check_body(op: str, body: Any) -> None:
    if op not in BODY_FIELDS:
        return
    implemented, unmodelled = BODY_FIELDS[op]
    if not isinstance(body, dict):
        raise ApiFailure(400, "the request body must be a JSON object")
    for key in body:
        if key in unmodelled:
            raise not_modelled(f"the field {key!r} of {op}")
        if key not in implemented:
            raise ApiFailure(400, f"Invalid request body: unknown field {key!r} for {op}")


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
        fake = self.server.fake
        m = re.match(r"^/index/([^/]+)(/.*)$", path)
        op = operation(method, m.group(2) if m else path)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiFailure(400, "request body is not valid JSON") from None
        check_body(op, body)
        control = op in ("list_indexes", "create_index", "describe_index", "configure_index", "delete_index")
        if control != (m is None):
            raise ApiFailure(404, f"no route {method} {path}", "NOT_FOUND")
        with fake.lock:
            if m is None:
                return fake.control(op, method, path, body)
            ix = fake.get_index(m.group(1))
            reply = fake.data_plane(ix, op, m.group(2), query, body)
        return 200, reply


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
