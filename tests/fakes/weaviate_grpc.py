"""The gRPC half of the Weaviate fake: the ``weaviate.v1.Weaviate`` service (batch writes, search,
batch deletes, counts, tenants) and the health check, on the state of :class:`FakeWeaviate`.

Before a request is served, :func:`weaviate_fields.unmodelled_field` checks it: a field the fake
does not implement answers ``UNIMPLEMENTED`` naming it. Injected faults apply before the request,
or after it was applied (a lost reply).
"""

from __future__ import annotations

import uuid as uuid_lib
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
    tenants_pb2,
    weaviate_pb2_grpc,
)

from tests.fakes.weaviate_fields import unmodelled_field
from tests.fakes.weaviate_filters import matches, validate
from tests.fakes.weaviate_query import search
from tests.fakes.weaviate_schema import NotModelled, SchemaError
from tests.fakes.weaviate_server import Abort, FakeWeaviate


class Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, fake: FakeWeaviate) -> None:
        self.fake = fake

    def _run(self, method: str, request: Any, context: grpc.ServicerContext, fn: Any) -> Any:
        fake = self.fake
        fake.requests.append(f"grpc {method}")
        fault = fake.take_fault("grpc", method)
        if fault is not None and not fault.after_apply:
            context.abort(fault.code, f"injected {fault.code.name}")
        unknown = unmodelled_field(method, request)
        if unknown is not None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"{method}: the Weaviate fake does not implement the request field {unknown!r}")
        try:
            with fake.lock:
                reply = fn()
        except Abort as exc:
            context.abort(exc.code, str(exc))
        except NotModelled as exc:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"the Weaviate fake does not model this: {exc}")
        except SchemaError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, str(exc))
        if fault is not None:
            context.abort(fault.code, f"injected {fault.code.name} after applying the request")
        return reply

    def BatchObjects(self, request: Any, context: Any) -> Any:
        return self._run("BatchObjects", request, context, lambda: self._batch(request))

    def _batch(self, request: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        if any(v.type == base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32 for o in request.objects for v in o.vectors):
            raise NotModelled("multi-vectors (VECTOR_TYPE_MULTI_FP32)")
        injected = self.fake.take_fault("object_errors", "")
        errors = []
        for i, obj in enumerate(request.objects):
            try:
                if injected is not None and obj.uuid in injected.errors:
                    raise SchemaError(injected.errors[obj.uuid])
                self._store(obj)
            except (SchemaError, Abort) as exc:
                errors.append(batch_pb2.BatchObjectsReply.BatchError(index=i, error=str(exc)))
        return batch_pb2.BatchObjectsReply(took=0.001, errors=errors)

    def _store(self, obj: batch_pb2.BatchObject) -> None:
        try:
            uid = str(uuid_lib.UUID(obj.uuid))
        except ValueError:
            raise SchemaError(f"invalid UUID length: {len(obj.uuid)}") from None
        pb = obj.properties
        props: dict[str, Any] = json_format.MessageToDict(pb.non_ref_properties)
        for arr in pb.text_array_properties:
            props[arr.prop_name] = list(arr.values)
        for arr in pb.boolean_array_properties:
            props[arr.prop_name] = list(arr.values)
        for arr in pb.int_array_properties:
            props[arr.prop_name] = list(arr.values)
        for narr in pb.number_array_properties:
            props[narr.prop_name] = (np.frombuffer(narr.values_bytes, dtype="<f8").tolist()
                                     if narr.values_bytes else list(narr.values))
        for name in pb.empty_list_props:
            props[name] = []
        vectors = {v.name: np.frombuffer(v.vector_bytes, dtype="<f4").copy() for v in obj.vectors}
        if obj.vector_bytes or obj.vector:
            vectors[""] = (np.frombuffer(obj.vector_bytes, dtype="<f4").copy() if obj.vector_bytes
                           else np.asarray(obj.vector, dtype=np.float32))
        self.fake.put_object(obj.collection, obj.tenant, uid, props, vectors)

    def Search(self, request: Any, context: Any) -> Any:
        return self._run("Search", request, context, lambda: search(self.fake, request))

    def BatchDelete(self, request: Any, context: Any) -> Any:
        def run() -> batch_delete_pb2.BatchDeleteReply:
            cls = self.fake.class_of(request.collection)["class"]
            shard = self.fake.shard(cls, request.tenant)
            if not request.HasField("filters"):
                raise Abort(grpc.StatusCode.UNKNOWN, "batch delete: filters must be set")
            validate(self.fake, cls, request.filters)
            rows = [(u, o) for u, o in shard.items() if matches(self.fake, cls, request.filters, u, o)]
            if not request.dry_run:
                for uid, _ in rows:
                    del shard[uid]
            objects = [batch_delete_pb2.BatchDeleteObject(uuid=_uuid_bytes(u), successful=True)
                       for u, _ in rows] if request.verbose else []
            return batch_delete_pb2.BatchDeleteReply(took=0.001, matches=len(rows), successful=len(rows),
                                                     objects=objects)

        return self._run("BatchDelete", request, context, run)

    def Aggregate(self, request: Any, context: Any) -> Any:
        def run() -> aggregate_pb2.AggregateReply:
            cls = self.fake.class_of(request.collection)["class"]
            shard = self.fake.shard(cls, request.tenant)
            flt = request.filters if request.HasField("filters") else None
            if flt is not None:
                validate(self.fake, cls, flt)
            n = sum(1 for u, o in shard.items() if flt is None or matches(self.fake, cls, flt, u, o))
            return aggregate_pb2.AggregateReply(
                single_result=aggregate_pb2.AggregateReply.Single(objects_count=n))

        return self._run("Aggregate", request, context, run)

    def TenantsGet(self, request: Any, context: Any) -> Any:
        def run() -> tenants_pb2.TenantsGetReply:
            cls = self.fake.class_of(request.collection)
            if not cls["multiTenancyConfig"]["enabled"]:
                raise Abort(grpc.StatusCode.UNKNOWN, f"multi-tenancy is not enabled for class {cls['class']!r}")
            names = [t for t in self.fake.data[cls["class"]] if t]
            if request.HasField("names"):
                names = [n for n in names if n in request.names.values]
            return tenants_pb2.TenantsGetReply(tenants=[
                tenants_pb2.Tenant(name=n, activity_status=tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE)
                for n in names])

        return self._run("TenantsGet", request, context, run)

    def BatchReferences(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the Weaviate fake does not model cross-references")

    def BatchStream(self, request_iterator: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the Weaviate fake does not model batch streaming")


def _uuid_bytes(uid: str) -> bytes:
    return uuid_lib.UUID(uid).bytes


def health_handler() -> grpc.GenericRpcHandler:
    def check(request: Any, context: Any) -> Any:
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING)

    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
            response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString)})
