"""The REST half of the Weaviate fake: meta, schema, tenants and single objects (v1.32.5 routes).

Implemented routes are the ones weaviate-client's collection, schema, tenant and data APIs call.
Any other ``/v1/...`` route answers 501 (the fake does not model it) rather than 404, so that a
client never mistakes an unmodelled route for "not found"; errors use the server's body shape
``{"error": [{"message": ...}]}``.
"""

from __future__ import annotations

import json
import uuid as uuid_lib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
import numpy as np

from tests.fakes.http_base import JsonHandler
from tests.fakes.weaviate_schema import (
    NotModelled,
    SchemaError,
    go_decode,
    normalise_class,
    upper_first,
)

if TYPE_CHECKING:
    from tests.fakes.weaviate_server import FakeWeaviate, StoredObject

_OBJECT = dict.fromkeys(("additional", "class", "creationTimeUnix", "id", "lastUpdateTimeUnix",
                         "properties", "tenant", "vector", "vectorWeights", "vectors"))
_HTTP_OF_GRPC = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.UNIMPLEMENTED: 501}
# Class settings that PUT /v1/schema/{class} may change; anything else must stay as it is.
_MUTABLE_VECTOR_INDEX = {"ef", "dynamicEfMin", "dynamicEfMax", "dynamicEfFactor", "flatSearchCutoff",
                         "vectorCacheMaxObjects", "cleanupIntervalSeconds", "filterStrategy"}


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"error": [{"message": message}]}


def handler_for(fake: FakeWeaviate) -> type[JsonHandler]:
    return type("WeaviateHandler", (_Http,), {"fake": fake})


class _Http(JsonHandler):
    fake: FakeWeaviate

    def _handle(self, method: str) -> None:
        from tests.fakes.weaviate_server import Abort

        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake.requests.append(f"{method} {path}")
        if fake.take_fault("drop", path) is not None:
            return self._drop()  # no reply at all: the client sees a dropped connection
        fault = fake.take_fault("http", path)
        if fault is not None:
            hdr = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._send(fault.status, {"error": [{"message": f"injected {fault.status}"}]}, hdr)
        try:
            body = json.loads(raw) if raw else None
            with fake.lock:
                status, out = self._route(method, [unquote(p) for p in path.split("/")[2:]], query, body)
        except ValueError as exc:  # SchemaError, or a body that is not JSON
            status, out = _error(422, str(exc))
        except NotModelled as exc:
            status, out = _error(501, f"the Weaviate fake does not model this: {exc}")
        except Abort as exc:
            status, out = _error(_HTTP_OF_GRPC.get(exc.code, 422), str(exc))
        self._send(status, out)

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if parts in (["well-known", "ready"], [".well-known", "ready"], [".well-known", "live"]):
            return 200, None
        if parts == ["meta"] and method == "GET":
            return 200, {"version": fake_version(), "hostname": "http://[::]:8080", "modules": {},
                         "grpcMaxMessageSize": 104858000}
        if parts == ["nodes"] and method == "GET":
            return 200, {"nodes": [{"name": "fake-node", "status": "HEALTHY", "version": fake_version(),
                                    "gitHash": "fake", "shards": None,
                                    "stats": {"objectCount": 0, "shardCount": 0}}]}
        if parts[:1] == ["schema"]:
            return self._schema(method, parts[1:], body)
        if parts[:1] == ["objects"]:
            return self._objects(method, parts[1:], query, body)
        return _error(501, f"the Weaviate fake does not model the route {method} /v1/{'/'.join(parts)}")

    # ------------------------------------------------------------------------------- schema
    def _schema(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        fake = self.fake
        if not parts and method == "GET":
            return 200, {"classes": list(fake.classes.values())}
        if not parts and method == "POST":
            return 200, fake.create_class(body)
        if not parts:
            return _error(405, f"method {method} not allowed")
        name = upper_first(parts[0])
        if len(parts) == 1 and method == "DELETE":
            fake.classes.pop(name, None)
            fake.data.pop(name, None)
            return 200, None
        if name not in fake.classes:
            return _error(404, f"class {name!r} not found") if method != "GET" else (404, None)
        cls = fake.classes[name]
        if len(parts) == 1 and method == "GET":
            return 200, cls
        if len(parts) == 1 and method == "PUT":
            return 200, _update_class(fake, cls, body)
        if parts[1:] == ["properties"] and method == "POST":
            return 200, fake.add_property(name, body)
        if parts[1:2] == ["tenants"]:
            return self._tenants(method, cls, parts[2:], body)
        return _error(501, f"the Weaviate fake does not model the route {method} /v1/schema/{'/'.join(parts)}")

    def _tenants(self, method: str, cls: dict[str, Any], rest: list[str], body: Any) -> tuple[int, Any]:
        fake, name = self.fake, cls["class"]
        if not cls["multiTenancyConfig"]["enabled"]:
            raise SchemaError(f"multi-tenancy is not enabled for class {name!r}")
        shards = fake.data[name]
        if rest:  # GET / HEAD /v1/schema/{class}/tenants/{tenant}
            if method not in ("GET", "HEAD"):
                return _error(405, f"method {method} not allowed")
            if rest[0] not in shards or not rest[0]:
                return 404, None
            return 200, {"name": rest[0], "activityStatus": "HOT"}
        if method == "GET":
            return 200, [{"name": t, "activityStatus": "HOT"} for t in shards if t]
        if method == "DELETE":
            for t in body or []:
                shards.pop(t, None)
            return 200, None
        for t in body or []:
            status = t.get("activityStatus") or "HOT"
            if status not in ("HOT", "ACTIVE"):
                raise NotModelled(f"tenant activity status {status!r} (the fake keeps every tenant active)")
            if method == "POST":
                fake.add_tenant(name, t["name"])
            elif t["name"] not in shards:
                return _error(404, f"tenant {t['name']!r} not found")
        if method in ("POST", "PUT"):
            return 200, [{"name": t["name"], "activityStatus": "HOT"} for t in body or []]
        return _error(405, f"method {method} not allowed")

    # ------------------------------------------------------------------------------ objects
    def _objects(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        fake = self.fake
        if not parts and method == "POST":
            obj = go_decode(body, _OBJECT)
            uid = _uuid(obj.get("id") or str(uuid_lib.uuid4()))
            cls_name, tenant = upper_first(obj.get("class") or ""), obj.get("tenant") or ""
            if cls_name in fake.classes and uid in fake.data[cls_name].get(tenant, {}):
                raise SchemaError(f"id '{uid}' already exists")
            stored = fake.put_object(cls_name, tenant, uid, obj.get("properties") or {}, _vectors(obj))
            return 200, _object_json(upper_first(cls_name), uid, stored, tenant, True)
        if len(parts) != 2:
            return _error(501, f"the Weaviate fake does not model the route {method} /v1/objects/{'/'.join(parts)}")
        cls_name, uid = fake.class_of(parts[0])["class"], _uuid(parts[1])
        tenant = query.get("tenant", "")
        shard = fake.shard(cls_name, tenant)
        current = shard.get(uid)
        if method in ("GET", "HEAD"):
            if current is None:
                return 404, None
            if method == "HEAD":
                return 204, None
            return 200, _object_json(cls_name, uid, current, tenant, "vector" in query.get("include", ""))
        if current is None:
            return 404, None
        if method == "DELETE":
            del shard[uid]
            return 204, None
        obj = go_decode(body, _OBJECT)
        if method == "PUT":  # replace: a new object, the creation time kept
            stored = fake.put_object(cls_name, tenant, uid, obj.get("properties") or {}, _vectors(obj),
                                     keep_created=current.created)
            return 200, _object_json(cls_name, uid, stored, tenant, True)
        if method == "PATCH":  # merge: properties and vectors not mentioned are kept
            props = {**current.props, **(obj.get("properties") or {})}
            fake.put_object(cls_name, tenant, uid, props, {**current.vectors, **_vectors(obj)},
                            keep_created=current.created)
            return 204, None
        return _error(405, f"method {method} not allowed")


def fake_version() -> str:
    from tests.fakes.weaviate_server import VERSION

    return VERSION


def _uuid(text: str) -> str:
    try:
        return str(uuid_lib.UUID(text))
    except ValueError:
        raise SchemaError(f"invalid UUID {text!r}") from None


def _vectors(obj: dict[str, Any]) -> dict[str, np.ndarray]:
    if obj.get("vectorWeights"):
        raise NotModelled("vectorWeights (a text2vec module setting)")
    out = {name: np.asarray(v, dtype=np.float32) for name, v in (obj.get("vectors") or {}).items()}
    if obj.get("vector"):
        out[""] = np.asarray(obj["vector"], dtype=np.float32)
    for name, vec in out.items():
        if vec.ndim != 1:
            raise NotModelled(f"multi-vector {name!r}")
    return out


def _object_json(cls_name: str, uid: str, obj: StoredObject, tenant: str, with_vector: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"class": cls_name, "id": uid, "properties": dict(obj.props),
                           "creationTimeUnix": obj.created, "lastUpdateTimeUnix": obj.updated}
    if tenant:
        out["tenant"] = tenant
    if with_vector:
        if "" in obj.vectors:
            out["vector"] = obj.vectors[""].tolist()
        named = {n: v.tolist() for n, v in obj.vectors.items() if n}
        if named:
            out["vectors"] = named
    return out


def _update_class(fake: FakeWeaviate, cls: dict[str, Any], body: Any) -> dict[str, Any]:
    """PUT /v1/schema/{class}: only the mutable settings may differ from the stored class."""
    new = normalise_class(body)
    name = cls["class"]
    if new["class"] != name:
        raise SchemaError(f"class name is immutable: attempted change from {name!r} to {new['class']!r}")
    if [(p["name"], p["dataType"]) for p in new["properties"]] not in (
            [], [(p["name"], p["dataType"]) for p in cls["properties"]]):
        raise SchemaError("properties cannot be updated through updating the class. Use the add "
                          "property feature (e.g. \"POST /v1/schema/{className}/properties\") to add "
                          "additional properties")
    if new["multiTenancyConfig"]["enabled"] != cls["multiTenancyConfig"]["enabled"]:
        raise SchemaError("enabling multi-tenancy for an existing class is not supported")
    for key in ("vectorIndexType", "vectorizer"):
        if new.get(key) != cls.get(key):
            raise SchemaError(f"{key} is immutable: attempted change from {cls.get(key)!r} to {new.get(key)!r}")
    old_vecs = cls.get("vectorConfig") or {"": cls}
    new_vecs = new.get("vectorConfig") or {"": new}
    if set(old_vecs) != set(new_vecs):
        raise SchemaError("named vectors cannot be added or removed by updating the class")
    for vname, vec in new_vecs.items():
        before, after = old_vecs[vname]["vectorIndexConfig"], vec["vectorIndexConfig"]
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        if changed - _MUTABLE_VECTOR_INDEX:
            raise SchemaError(f"vector index config {sorted(changed - _MUTABLE_VECTOR_INDEX)} is immutable")
    new["properties"] = cls["properties"]
    fake.classes[name] = new
    return new


