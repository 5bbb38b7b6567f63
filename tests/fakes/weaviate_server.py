"""A process-local Weaviate fake speaking the real wire protocol (REST + gRPC) on loopback.

No Weaviate server can run on the test machines, so code written for Weaviate (bge-vdb's
connector, weaviate-client, langchain-weaviate) is tested against this fake. It claims to be
Weaviate 1.32.5 and follows that version's source (weaviate/weaviate at tag v1.32.5): schema
rules and auto-schema (:mod:`weaviate_schema`), filters, vector search in every distance metric,
BM25F, hybrid fusion, autocut and sort (:mod:`weaviate_search`, :mod:`weaviate_query`), the REST
routes the SDK uses (:mod:`weaviate_rest`), the gRPC service (:mod:`weaviate_grpc`), tenants,
cursors and batch deletes. State is in memory.

What it does not model it refuses, the way the server answers a request it cannot serve: gRPC
``UNIMPLEMENTED`` for any request field outside :data:`weaviate_fields.IMPLEMENTED`, HTTP 501 for
REST routes and class settings it does not model. The README's testing section lists them.

Faults are injected with :meth:`FakeWeaviate.inject`: HTTP status codes (with Retry-After),
dropped HTTP connections, gRPC status codes (optionally *after* the request was applied, i.e. a
lost reply) and per-object batch errors for chosen UUIDs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from weaviate.proto.v1 import (
    weaviate_pb2_grpc,
)

from tests.fakes.http_base import serve_in_thread
from tests.fakes.weaviate_schema import (
    SchemaError,
    check_property_name,
    check_value,
    infer_data_type,
    normalise_class,
    normalise_property,
    upper_first,
)

VERSION = "1.32.5"
TENANT_NAME = r"^[A-Za-z0-9\-_]{1,64}$"


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
class StoredObject:
    props: dict[str, Any]
    vectors: dict[str, np.ndarray]  # "" is the legacy unnamed vector
    created: int = 0  # creationTimeUnix, ms
    updated: int = 0  # lastUpdateTimeUnix, ms
    order: int = 0  # the server's doc id: a new one on every write


class Abort(Exception):
    """A request the server refuses: a gRPC status code (REST: the matching HTTP status)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeWeaviate:
    """State, fault queue and the two servers. Use :func:`running_weaviate_fake`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, dict[str, Any]] = {}
        self.data: dict[str, dict[str, dict[str, StoredObject]]] = {}  # class -> tenant -> uuid -> obj
        self.faults: list[Fault] = []
        self.requests: list[str] = []  # "GET /v1/schema", "grpc Search", ... (for assertions)
        self.http_port = 0
        self.grpc_port = 0
        self._doc_ids = 0
        self._last_ms = 0

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

    def now_ms(self) -> int:
        """Milliseconds, strictly increasing, so that writes are ordered by their timestamps."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    # ------------------------------------------------------------------------------- schema
    def class_of(self, name: str) -> dict[str, Any]:
        """The class called ``name`` (its first letter upper-cased, as the server looks it up)."""
        cls = self.classes.get(upper_first(name))
        if cls is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"class {upper_first(name)} not found")
        return cls

    def create_class(self, body: Any) -> dict[str, Any]:
        cls = normalise_class(body)
        if cls["class"] in self.classes:
            raise SchemaError(f"class name {cls['class']!r} already exists")
        self.classes[cls["class"]] = cls
        self.data[cls["class"]] = {}
        return cls

    def add_property(self, name: str, raw: Any) -> dict[str, Any]:
        cls = self.class_of(name)
        prop = normalise_property(raw)
        if any(p["name"].lower() == prop["name"].lower() for p in cls["properties"]):
            raise SchemaError(f"class {cls['class']!r}: conflict for property {prop['name']!r}: "
                              "already in use or provided multiple times")
        cls["properties"].append(prop)
        return prop

    def prop_schema(self, cls_name: str, prop: str) -> dict[str, Any]:
        for p in self.class_of(cls_name)["properties"]:
            if p["name"] == prop:
                return p
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                    f"no such prop with name '{prop}' found in class '{cls_name}' in the schema")

    def vector_index(self, cls: dict[str, Any], target: str) -> tuple[str, str]:
        """(vector name, distance metric) of ``target`` ("" = the only/legacy vector)."""
        named = cls.get("vectorConfig")
        if not named:
            if target not in ("", "default"):  # "default" names the legacy vector too
                raise Abort(grpc.StatusCode.UNKNOWN, f"class {cls['class']} does not have named vector "
                                                     f"{target} configured. Available named vectors []")
            return "", cls["vectorIndexConfig"]["distance"]
        if not target:
            if len(named) > 1:
                raise Abort(grpc.StatusCode.UNKNOWN, f"class {cls['class']} has multiple vectors, but "
                                                     "no target vectors were provided")
            target = next(iter(named))
        if target not in named:
            raise Abort(grpc.StatusCode.UNKNOWN, f"class {cls['class']} does not have named vector "
                                                 f"{target} configured. Available named vectors {list(named)}")
        return target, named[target]["vectorIndexConfig"]["distance"]

    # ------------------------------------------------------------------------------ tenants
    def shard(self, cls_name: str, tenant: str, create: bool = False) -> dict[str, StoredObject]:
        cls = self.class_of(cls_name)
        mt = cls["multiTenancyConfig"]
        if mt["enabled"] and not tenant:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"class {cls['class']} has multi-tenancy enabled, but request was without tenant")
        if not mt["enabled"] and tenant:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"class {cls['class']} has multi-tenancy disabled, but request was with tenant")
        shards = self.data[cls["class"]]
        if tenant not in shards:
            if tenant and not (create and mt["autoTenantCreation"]):
                raise Abort(grpc.StatusCode.NOT_FOUND, f"tenant not found: {tenant!r}")
            shards[tenant] = {}
        return shards[tenant]

    def add_tenant(self, cls_name: str, tenant: str) -> None:
        import re

        cls = self.class_of(cls_name)
        if not cls["multiTenancyConfig"]["enabled"]:
            raise SchemaError(f"multi-tenancy is not enabled for class {cls['class']!r}")
        if not re.match(TENANT_NAME, tenant):
            raise SchemaError(f" '{tenant}' is not a valid tenant name. should only contain alphanumeric "
                              "characters (a-z, A-Z, 0-9), underscore (_), and hyphen (-), with a length "
                              "between 1 and 64 characters")
        self.data[cls["class"]].setdefault(tenant, {})

    # ------------------------------------------------------------------------------ objects
    def put_object(self, cls_name: str, tenant: str, uid: str, props: dict[str, Any],
                   vectors: dict[str, np.ndarray], keep_created: int | None = None) -> StoredObject:
        """Write one object as the server does: auto-schema, then validation, then the write."""
        if upper_first(cls_name) not in self.classes:  # auto-schema creates the class
            self.create_class({"class": cls_name, "description": "This property was generated by "
                               "Weaviate's auto-schema feature"})
        cls = self.class_of(cls_name)
        props = {check_property_name(k): v for k, v in props.items()}
        known = {p["name"]: p for p in cls["properties"]}
        for name, value in props.items():  # auto-schema adds what is not declared yet
            if name not in known:
                known[name] = self.add_property(cls["class"], {"name": name, "dataType": [infer_data_type(value)]})
        stored = {n: check_value(cls["class"], known[n], v) for n, v in props.items()}
        vectors = self._vector_slots(cls, vectors)
        shard = self.shard(cls["class"], tenant, create=True)
        for name, vec in vectors.items():
            other = next((o.vectors[name] for o in shard.values() if name in o.vectors), None)
            if other is not None and len(other) != len(vec):
                raise SchemaError(f"new node has a vector with length {len(vec)}. Existing nodes have "
                                  f"vectors with length {len(other)}")
        now = self.now_ms()
        self._doc_ids += 1
        obj = StoredObject({k: v for k, v in stored.items() if v is not None}, vectors,
                           keep_created or now, now, self._doc_ids)
        shard[uid] = obj
        return obj


    @staticmethod
    def _vector_slots(cls: dict[str, Any], vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Vectors by index name, as ``usecases/objects/validation/vector_validation.go`` places them:
        "default" is the legacy vector of a class without named vectors, and the unnamed vector
        goes to the only named vector of a class that has exactly one."""
        named = cls.get("vectorConfig") or {}
        vectors = {k: v for k, v in vectors.items() if len(v)}
        if not named and "default" in vectors:
            vectors[""] = vectors.pop("default")
        if named and "" in vectors:
            if len(named) != 1:
                raise SchemaError(f"collection {cls['class']} configuration does not have single vector index")
            vectors[next(iter(named))] = vectors.pop("")
        for name in vectors:
            if name and name not in named:
                raise SchemaError(f"collection {cls['class']} does not have configuration for vector {name}")
        return vectors


_SINGLETON: FakeWeaviate | None = None
_START_LOCK = threading.Lock()


def _start() -> FakeWeaviate:
    from tests.fakes.weaviate_grpc import Servicer, health_handler
    from tests.fakes.weaviate_rest import handler_for

    fake = FakeWeaviate()
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    fake.http_port = http.server_address[1]
    serve_in_thread(http, "weaviate-fake-http")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(Servicer(fake), server)
    server.add_generic_rpc_handlers((health_handler(),))
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
