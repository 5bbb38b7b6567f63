"""A process-local Weaviate fake speaking the real wire protocol (REST + gRPC) on loopback.

No Weaviate server can run on the test machines, so the connector is tested through the real
``weaviate-client`` against this fake. It keeps state in memory and computes everything for real:
cosine distances, filters (AND/OR/NOT, (not-)equal, ranges, contains-any/all/none, is-null on
properties and ``_id``), cursors (``after``), counts, batch deletes. It enforces what the real
server enforces and the connector depends on: class and property name rules, unknown classes and
properties, filter value types, vector dimensions, the default limit of 10, no ``after`` together
with a filter or a vector search, tenants of multi-tenant classes.

Faults are injected with :meth:`FakeWeaviate.inject`: HTTP status codes (with Retry-After),
dropped HTTP connections, gRPC status codes (optionally *after* the request was applied, i.e. a
lost reply) and per-object batch errors for chosen UUIDs.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from tests.fakes.http_base import JsonHandler, serve_in_thread

VERSION = "1.32.5"
CLASS_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]{0,254}$")
PROP_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")
DEFAULT_LIMIT = 10

HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32, "efConstruction": 128,
    "ef": -1, "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1000000000000, "flatSearchCutoff": 40000, "distance": "cosine",
    "filterStrategy": "sweeping",
    "pq": {"enabled": False, "bitCompression": False, "segments": 0, "centroids": 256,
           "trainingLimit": 100000, "encoder": {"type": "kmeans", "distribution": "log-normal"}},
    "bq": {"enabled": False}, "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
    "multivector": {"enabled": False, "aggregation": "maxSim"},
}


@dataclass
class Fault:
    kind: str  # "http" | "drop" | "grpc" | "object_errors"
    target: str = ""  # HTTP path prefix or gRPC method name ("" = any)
    times: int = 1
    status: int = 503
    retry_after: float | None = None
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    after_apply: bool = False  # gRPC: apply the request, then fail (the reply is lost)
    errors: dict[str, str] = field(default_factory=dict)  # object_errors: uuid -> message


@dataclass
class _Object:
    props: dict[str, Any]
    vectors: dict[str, np.ndarray]  # "" is the legacy unnamed vector


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeWeaviate:
    """State, fault queue and the two servers. Use :func:`running_weaviate_fake`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, dict[str, Any]] = {}
        self.data: dict[str, dict[str, dict[str, _Object]]] = {}  # class -> tenant -> uuid -> obj
        self.faults: list[Fault] = []
        self.requests: list[str] = []  # "GET /v1/schema", "grpc Search", ... (for assertions)
        self.http_port = 0
        self.grpc_port = 0

    @property
    def url(self) -> str:
        return f"weaviate+http://127.0.0.1:{self.http_port}?grpc_port={self.grpc_port}"

    def inject(self, kind: str, target: str = "", **kwargs: Any) -> Fault:
        fault = Fault(kind=kind, target=target, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        with self.lock:
            self.classes.clear()
            self.data.clear()
            self.faults.clear()
            self.requests.clear()

    def take_fault(self, kind: str, target: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.kind == kind and f.times > 0 and target.startswith(f.target):
                    f.times -= 1
                    return f
        return None

    # ------------------------------------------------------------------------------- schema
    def create_class(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("class", "")
        if not CLASS_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid class name: it must match /^[A-Z][_0-9A-Za-z]*$/")
        if name in self.classes:
            raise ValueError(f"class name {name!r} already exists")
        cls = copy.deepcopy(body)
        cls["properties"] = [self._prop_defaults(p) for p in cls.get("properties") or []]
        cls.setdefault("invertedIndexConfig", {})
        cls["invertedIndexConfig"] = {
            "bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
            "stopwords": {"preset": "en", "additions": None, "removals": None},
            **cls["invertedIndexConfig"],
        }
        cls.setdefault("multiTenancyConfig", {"enabled": False})
        cls.setdefault("replicationConfig", {"factor": 1, "asyncEnabled": False,
                                             "deletionStrategy": "NoAutomatedResolution"})
        cls.setdefault("shardingConfig", {
            "virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1, "desiredVirtualCount": 128,
            "actualVirtualCount": 128, "key": "_id", "strategy": "hash", "function": "murmur3"})
        if "vectorConfig" in cls:
            for vec in cls["vectorConfig"].values():
                vec.setdefault("vectorIndexType", "hnsw")
                vec["vectorIndexConfig"] = {**HNSW_DEFAULTS, **(vec.get("vectorIndexConfig") or {})}
        else:
            cls.setdefault("vectorizer", "none")
            cls.setdefault("vectorIndexType", "hnsw")
            cls["vectorIndexConfig"] = {**HNSW_DEFAULTS, **(cls.get("vectorIndexConfig") or {})}
        self.classes[name] = cls
        self.data[name] = {}
        return cls

    @staticmethod
    def _prop_defaults(prop: dict[str, Any]) -> dict[str, Any]:
        name = prop.get("name", "")
        if not PROP_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid property name")
        text = prop.get("dataType", [""])[0] in ("text", "text[]")
        return {"indexFilterable": True, "indexSearchable": text, "indexRangeFilters": False,
                "tokenization": "word" if text else None, **prop}

    def add_property(self, name: str, prop: dict[str, Any]) -> None:
        cls = self.classes[name]
        if any(p["name"] == prop.get("name") for p in cls["properties"]):
            raise ValueError(f"property {prop.get('name')!r} already exists in class {name!r}")
        cls["properties"].append(self._prop_defaults(prop))

    def shard(self, cls_name: str, tenant: str, create: bool = False) -> dict[str, _Object]:
        if cls_name not in self.classes:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"class {cls_name} not found")
        mt = self.classes[cls_name].get("multiTenancyConfig", {})
        if mt.get("enabled") and not tenant:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"class {cls_name} has multi-tenancy enabled, but request was without tenant")
        if not mt.get("enabled") and tenant:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"class {cls_name} has multi-tenancy disabled, but request was with tenant")
        shards = self.data[cls_name]
        if tenant not in shards:
            if tenant and not (create and mt.get("autoTenantCreation")):
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"tenant not found: {tenant!r}")
            shards[tenant] = {}
        return shards[tenant]

    def prop_schema(self, cls_name: str, prop: str) -> dict[str, Any]:
        for p in self.classes[cls_name]["properties"]:
            if p["name"] == prop:
                return p
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"no such prop with name '{prop}' found in class '{cls_name}' in the schema")

    # ------------------------------------------------------------------------------ filters
    def matches(self, cls_name: str, f: base_pb2.Filters, uid: str, obj: _Object) -> bool:
        op = f.operator
        if op == base_pb2.Filters.OPERATOR_AND:
            return all(self.matches(cls_name, c, uid, obj) for c in f.filters)
        if op == base_pb2.Filters.OPERATOR_OR:
            return any(self.matches(cls_name, c, uid, obj) for c in f.filters)
        if op == base_pb2.Filters.OPERATOR_NOT:
            return not self.matches(cls_name, f.filters[0], uid, obj)
        prop = f.target.property if f.HasField("target") else ".".join(f.on)
        if prop in ("_id", "id"):
            value: Any = uid
            dtype, tokenization = "uuid", "field"  # type: str, Any
        else:
            schema = self.prop_schema(cls_name, prop)
            dtype, tokenization = schema["dataType"][0], schema.get("tokenization")
            if not schema.get("indexFilterable"):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"property {prop!r} is not filterable")
            value = obj.props.get(prop)
        if op == base_pb2.Filters.OPERATOR_IS_NULL:
            return (value is None) == f.value_boolean
        wanted = _filter_values(f, dtype, prop)
        if dtype.startswith("text") or dtype == "uuid":
            if tokenization != "field":
                raise _Abort(grpc.StatusCode.UNIMPLEMENTED,
                             f"the fake filters text with field tokenization only ({prop!r})")
            wanted = [w.strip() for w in wanted]
        have = [] if value is None else (value if isinstance(value, list) else [value])
        if dtype.startswith("text"):
            have = [h.strip() for h in have]
        if op == base_pb2.Filters.OPERATOR_EQUAL:
            return bool(have) and wanted[0] in have
        if op == base_pb2.Filters.OPERATOR_NOT_EQUAL:
            return not (bool(have) and wanted[0] in have)
        if op == base_pb2.Filters.OPERATOR_CONTAINS_ANY:
            return any(w in have for w in wanted)
        if op == base_pb2.Filters.OPERATOR_CONTAINS_ALL:
            return bool(have) and all(w in have for w in wanted)
        if op == base_pb2.Filters.OPERATOR_CONTAINS_NONE:
            return not any(w in have for w in wanted)
        ranges = {
            base_pb2.Filters.OPERATOR_GREATER_THAN: lambda a, b: a > b,
            base_pb2.Filters.OPERATOR_GREATER_THAN_EQUAL: lambda a, b: a >= b,
            base_pb2.Filters.OPERATOR_LESS_THAN: lambda a, b: a < b,
            base_pb2.Filters.OPERATOR_LESS_THAN_EQUAL: lambda a, b: a <= b,
        }
        if op in ranges:
            return any(ranges[op](h, wanted[0]) for h in have)
        raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"the fake does not implement filter operator {op}")

    def select(self, cls_name: str, tenant: str, filters: base_pb2.Filters | None) -> list[tuple[str, _Object]]:
        shard = self.shard(cls_name, tenant)
        return [(u, o) for u, o in shard.items() if filters is None or self.matches(cls_name, filters, u, o)]


def _filter_values(f: base_pb2.Filters, dtype: str, prop: str) -> list[Any]:
    """The filter's value(s), checked against the property's data type as the server does."""
    kind = f.WhichOneof("test_value")
    base = dtype.rstrip("[]")
    allowed = {
        "text": ("value_text", "value_text_array"), "uuid": ("value_text", "value_text_array"),
        "number": ("value_number", "value_int", "value_number_array", "value_int_array"),
        "int": ("value_int", "value_int_array"), "boolean": ("value_boolean", "value_boolean_array"),
    }.get(base, ())
    if kind not in allowed:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"data type filter cannot use {kind} on property {prop!r} of type {dtype}")
    value = getattr(f, kind)
    return list(value.values) if kind.endswith("_array") else [value]


def _value(v: Any) -> properties_pb2.Value:
    if v is None:
        return properties_pb2.Value(null_value=0)
    if isinstance(v, bool):
        return properties_pb2.Value(bool_value=v)
    if isinstance(v, str):
        return properties_pb2.Value(text_value=v)
    if isinstance(v, (int, float)):
        return properties_pb2.Value(number_value=float(v))
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return properties_pb2.Value(list_value=properties_pb2.ListValue(
            text_values=properties_pb2.TextValues(values=v)))
    raise TypeError(f"the fake cannot return {v!r}")


def _check_prop_value(schema: dict[str, Any], value: Any) -> None:
    dtype = schema["dataType"][0]
    ok = {
        "text": lambda x: isinstance(x, str),
        "text[]": lambda x: isinstance(x, list) and all(isinstance(i, str) for i in x),
        "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
        "int": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and float(x).is_integer(),
        "boolean": lambda x: isinstance(x, bool),
    }.get(dtype)
    if ok is None or not ok(value):
        raise ValueError(f"invalid {dtype} property {schema['name']!r} on class: value {value!r}")


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, fake: FakeWeaviate) -> None:
        self.fake = fake

    def _run(self, method: str, context: grpc.ServicerContext, fn: Any) -> Any:
        fake = self.fake
        fake.requests.append(f"grpc {method}")
        fault = fake.take_fault("grpc", method)
        if fault is not None and not fault.after_apply:
            context.abort(fault.code, f"injected {fault.code.name}")
        try:
            with fake.lock:
                reply = fn()
        except _Abort as exc:
            context.abort(exc.code, str(exc))
        if fault is not None:
            context.abort(fault.code, f"injected {fault.code.name} after applying the request")
        return reply

    def BatchObjects(self, request: Any, context: Any) -> Any:
        return self._run("BatchObjects", context, lambda: self._batch(request))

    def _batch(self, request: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        fake = self.fake
        injected = fake.take_fault("object_errors", "")
        errors = []
        for i, obj in enumerate(request.objects):
            try:
                if injected is not None and obj.uuid in injected.errors:
                    raise ValueError(injected.errors[obj.uuid])
                self._store(obj)
            except (ValueError, _Abort) as exc:
                errors.append(batch_pb2.BatchObjectsReply.BatchError(index=i, error=str(exc)))
        return batch_pb2.BatchObjectsReply(took=0.001, errors=errors)

    def _store(self, obj: batch_pb2.BatchObject) -> None:
        fake = self.fake
        if obj.collection not in fake.classes:
            raise ValueError(f"class {obj.collection!r} not present in schema")
        props: dict[str, Any] = json_format.MessageToDict(obj.properties.non_ref_properties)
        for arr in obj.properties.text_array_properties:
            props[arr.prop_name] = list(arr.values)
        for name in obj.properties.empty_list_props:
            props[name] = []
        if (obj.properties.number_array_properties or obj.properties.int_array_properties
                or obj.properties.boolean_array_properties or obj.properties.object_properties
                or obj.properties.object_array_properties):
            raise ValueError("the fake stores text, number, boolean and text[] properties only")
        for name, value in props.items():
            _check_prop_value(fake.prop_schema(obj.collection, name), value)
        vectors = {v.name: np.frombuffer(v.vector_bytes, dtype="<f4").copy() for v in obj.vectors}
        if obj.vector_bytes:
            vectors[""] = np.frombuffer(obj.vector_bytes, dtype="<f4").copy()
        shard = fake.shard(obj.collection, obj.tenant, create=True)
        for name, vec in vectors.items():
            for other in shard.values():
                if name in other.vectors and len(other.vectors[name]) != len(vec):
                    raise ValueError(f"new node has a vector with length {len(vec)}. Existing "
                                     f"nodes have vectors with length {len(other.vectors[name])}")
                break
        shard[obj.uuid] = _Object(props=props, vectors=vectors)

    def Search(self, request: Any, context: Any) -> Any:
        return self._run("Search", context, lambda: self._search(request))

    def _search(self, req: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        fake = self.fake
        filters = req.filters if req.HasField("filters") else None
        if req.after and (filters is not None or req.HasField("near_vector")):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         "cursor api: invalid 'after' parameter: where and near parameters must be nil")
        rows = fake.select(req.collection, req.tenant, filters)
        limit = req.limit or DEFAULT_LIMIT
        distances: dict[str, float] = {}
        if req.HasField("near_vector"):
            nv = req.near_vector
            raw = nv.vectors[0].vector_bytes if nv.vectors else nv.vector_bytes
            q = np.frombuffer(raw, dtype="<f4").astype(np.float64)
            for uid, obj in rows:
                vec = next(iter(obj.vectors.values())).astype(np.float64)
                if len(vec) != len(q):
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"vector lengths don't match: {len(q)} vs {len(vec)}")
                cos = float(vec @ q / (np.linalg.norm(vec) * np.linalg.norm(q)))
                distances[uid] = 1.0 - cos
            rows.sort(key=lambda r: distances[r[0]])  # stable: ties keep insertion order
        else:  # objects are listed in id order, the cursor being the last id seen
            rows = sorted((r for r in rows if r[0] > req.after), key=lambda r: r[0])
        rows = rows[req.offset : req.offset + limit]
        return search_get_pb2.SearchReply(took=0.001, results=[self._result(req, u, o, distances) for u, o in rows])

    def _result(self, req: Any, uid: str, obj: _Object, distances: dict[str, float]) -> Any:
        import uuid as uuid_lib

        meta = search_get_pb2.MetadataResult(id=uid, id_as_bytes=uuid_lib.UUID(uid).bytes)
        if req.metadata.distance and uid in distances:
            meta.distance, meta.distance_present = distances[uid], True
        if req.metadata.vector or req.metadata.vectors:
            for name, vec in obj.vectors.items():
                if name == "":
                    meta.vector_bytes = vec.astype("<f4").tobytes()
                elif req.metadata.vector or name in req.metadata.vectors:
                    meta.vectors.append(base_pb2.Vectors(name=name, vector_bytes=vec.astype("<f4").tobytes(),
                                                         type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32))
        wanted = req.properties.non_ref_properties
        names = list(obj.props) if req.properties.return_all_nonref_properties else list(wanted)
        fields = {n: _value(obj.props.get(n)) for n in names if n in obj.props}
        props = search_get_pb2.PropertiesResult(non_ref_props=properties_pb2.Properties(fields=fields))
        return search_get_pb2.SearchResult(metadata=meta, properties=props)

    def BatchDelete(self, request: Any, context: Any) -> Any:
        def run() -> batch_delete_pb2.BatchDeleteReply:
            rows = self.fake.select(request.collection, request.tenant, request.filters)
            if not request.dry_run:
                shard = self.fake.shard(request.collection, request.tenant)
                for uid, _ in rows:
                    del shard[uid]
            return batch_delete_pb2.BatchDeleteReply(took=0.001, matches=len(rows), successful=len(rows))

        return self._run("BatchDelete", context, run)

    def Aggregate(self, request: Any, context: Any) -> Any:
        def run() -> aggregate_pb2.AggregateReply:
            filters = request.filters if request.HasField("filters") else None
            n = len(self.fake.select(request.collection, request.tenant, filters))
            return aggregate_pb2.AggregateReply(single_result=aggregate_pb2.AggregateReply.Single(objects_count=n))

        return self._run("Aggregate", context, run)

    def TenantsGet(self, request: Any, context: Any) -> Any:
        def run() -> tenants_pb2.TenantsGetReply:
            names = [t for t in self.fake.data.get(request.collection, {}) if t]
            return tenants_pb2.TenantsGetReply(tenants=[
                tenants_pb2.Tenant(name=n, activity_status=tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE) for n in names])

        return self._run("TenantsGet", context, run)


class _Http(JsonHandler):
    fake: FakeWeaviate

    def _handle(self, method: str) -> None:
        fake = self.fake
        path = self.path.split("?")[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        fake.requests.append(f"{method} {path}")
        if fake.take_fault("drop", path) is not None:
            return self._drop()  # no reply at all: the client sees a dropped connection
        fault = fake.take_fault("http", path)
        if fault is not None:
            hdr = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._send(fault.status, {"error": [{"message": f"injected {fault.status}"}]}, hdr)
        try:
            with fake.lock:
                status, out = self._route(method, path, body)
        except ValueError as exc:
            status, out = 422, {"error": [{"message": str(exc)}]}
        self._send(status, out)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        fake = self.fake
        parts = path.split("/")[2:]  # drop "" and "v1"
        if parts in (["well-known", "ready"], [".well-known", "ready"], [".well-known", "live"]):
            return 200, None
        if parts == ["meta"]:
            return 200, {"version": VERSION, "hostname": "http://[::]:8080", "modules": {},
                         "grpcMaxMessageSize": 104858000}
        if parts == ["nodes"]:
            return 200, {"nodes": [{"name": "fake-node", "status": "HEALTHY", "version": VERSION,
                                    "gitHash": "fake", "shards": None,
                                    "stats": {"objectCount": 0, "shardCount": 0}}]}
        if parts[:1] != ["schema"]:
            return 404, {"error": [{"message": f"no route {method} {path}"}]}
        if len(parts) == 1:
            if method == "GET":
                return 200, {"classes": list(fake.classes.values())}
            return 200, fake.create_class(body)
        name = parts[1]
        if method == "DELETE" and len(parts) == 2:
            fake.classes.pop(name, None)
            fake.data.pop(name, None)
            return 200, None
        if name not in fake.classes:
            return 404, None
        if len(parts) == 2 and method == "GET":
            return 200, fake.classes[name]
        if len(parts) == 2 and method == "PUT":
            fake.classes[name]["description"] = body.get("description", "")
            return 200, fake.classes[name]
        if parts[2:] == ["properties"] and method == "POST":
            fake.add_property(name, body)
            return 200, body
        if parts[2:] == ["tenants"]:
            if not fake.classes[name].get("multiTenancyConfig", {}).get("enabled"):
                raise ValueError(f"multi-tenancy is not enabled for class {name!r}")
            if method == "GET":
                return 200, [{"name": t, "activityStatus": "HOT"} for t in fake.data[name] if t]
            for t in body:
                fake.data[name].setdefault(t["name"], {})
            return 200, body
        return 404, {"error": [{"message": f"no route {method} {path}"}]}


def _health_handler() -> grpc.GenericRpcHandler:
    def check(request: Any, context: Any) -> Any:
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING)

    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
            response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString)})


_SINGLETON: FakeWeaviate | None = None
_START_LOCK = threading.Lock()


def _start() -> FakeWeaviate:
    fake = FakeWeaviate()
    handler = type("Handler", (_Http,), {"fake": fake})
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.http_port = http.server_address[1]
    serve_in_thread(http, "weaviate-fake-http")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(fake), server)
    server.add_generic_rpc_handlers((_health_handler(),))
    fake.grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake._servers = (http, server)  # type: ignore[attr-defined]  # keep them alive
    return fake


@contextmanager
def running_weaviate_fake() -> Iterator[FakeWeaviate]:
    """The process-wide fake (started on first use), reset to empty with no faults queued."""
    global _SINGLETON
    with _START_LOCK:
        if _SINGLETON is None:
            _SINGLETON = _start()
    _SINGLETON.reset()
    try:
        yield _SINGLETON
    finally:
        _SINGLETON.reset()
