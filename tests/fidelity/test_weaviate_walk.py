"""Every field of every gRPC request weaviate-client can send is either implemented by the Weaviate
fake or refused with UNIMPLEMENTED naming it — a proto3 server would otherwise skip it silently.

The walk reads the request messages' descriptors from the installed SDK's protos, so a client
upgrade that adds a field is walked too: the field is refused until the fake implements it.
Below a refused field nothing more is walked (the whole subtree is refused with it). Enum values
of implemented fields are walked as well; the few the fake refuses are listed in
``weaviate_fields.REFUSED_VALUES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from weaviate.proto.v1 import (
    aggregate_pb2,
    batch_delete_pb2,
    batch_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from tests.fakes.weaviate_fields import IMPLEMENTED, REFUSED_VALUES

REQUESTS: dict[str, Any] = {
    "Search": search_get_pb2.SearchRequest, "BatchObjects": batch_pb2.BatchObjectsRequest,
    "BatchDelete": batch_delete_pb2.BatchDeleteRequest, "Aggregate": aggregate_pb2.AggregateRequest,
    "TenantsGet": tenants_pb2.TenantsGetRequest,
}
_OPAQUE = {"google.protobuf.Struct"}


def _paths(descriptor: Any, implemented: set[str], prefix: str = "", seen: tuple[str, ...] = ()) -> Iterator[str]:
    """Dotted paths of ``descriptor``'s fields, not descending below an unimplemented one."""
    for field in descriptor.fields:
        path = prefix + field.name
        yield path
        sub = field.message_type
        if path not in implemented or sub is None or sub.full_name in _OPAQUE or sub.GetOptions().map_entry:
            continue
        if sub.full_name == descriptor.full_name:
            continue  # Filters.filters shares its parent's path: already walked
        if sub.full_name not in seen:
            yield from _paths(sub, implemented, path + ".", (*seen, descriptor.full_name))


def _set(msg: Any, path: str, enum_value: int | None = None) -> None:
    """Set the field at ``path`` in ``msg`` to a non-default value, creating what lies above it."""
    head, _, rest = path.partition(".")
    field = msg.DESCRIPTOR.fields_by_name[head]
    repeated = hasattr(getattr(msg, head), "append") or hasattr(getattr(msg, head), "add")
    if field.message_type is not None and not field.message_type.GetOptions().map_entry:
        child = getattr(msg, head).add() if repeated else getattr(msg, head)
        if rest:
            _set(child, rest, enum_value)
        else:
            child.SetInParent()
        return
    if field.message_type is not None:  # a map: one entry
        entry = getattr(msg, head)
        if field.message_type.fields_by_name["value"].message_type is not None:
            entry["k"].SetInParent()
        else:
            entry["k"] = b"\x00\x00\x80?"
        return
    value: Any = {
        field.TYPE_STRING: "x", field.TYPE_BYTES: b"\x00\x00\x80?", field.TYPE_BOOL: True,
        field.TYPE_FLOAT: 0.5, field.TYPE_DOUBLE: 0.5,
    }.get(field.type, 1)
    if field.enum_type is not None:
        value = enum_value if enum_value is not None else field.enum_type.values[-1].number
    if repeated:
        getattr(msg, head).append(value)
    else:
        setattr(msg, head, value)


def _base(method: str) -> Any:
    request = REQUESTS[method]()
    if method != "BatchObjects":
        request.collection = "Walk"
    return request


@pytest.fixture(scope="module")
def stub() -> Iterator[Any]:
    from tests.fakes.weaviate_server import running_weaviate_fake

    with running_weaviate_fake() as fake:
        fake.create_class({"class": "Walk", "properties": [
            {"name": "title", "dataType": ["text"], "tokenization": "field"},
            {"name": "n", "dataType": ["number"]}]})
        channel = grpc.insecure_channel(f"127.0.0.1:{fake.grpc_port}")
        try:
            yield weaviate_pb2_grpc.WeaviateStub(channel)
        finally:
            channel.close()


def _call(stub: Any, method: str, request: Any) -> tuple[grpc.StatusCode, str]:
    try:
        getattr(stub, method)(request, timeout=10)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


CASES = [(m, p) for m in REQUESTS for p in _paths(REQUESTS[m].DESCRIPTOR, IMPLEMENTED[m])]


def test_the_walk_covers_both_outcomes() -> None:
    refused = [c for c in CASES if c[1] not in IMPLEMENTED[c[0]]]
    assert len(CASES) > 150 and 30 < len(refused) < len(CASES)
    assert {p for m, p in CASES if m == "Search"} >= {"group_by", "rerank", "generative", "near_text", "boost"}


@pytest.mark.parametrize("method, path", CASES, ids=[f"{m}:{p}" for m, p in CASES])
def test_each_request_field_is_implemented_or_refused(stub: Any, method: str, path: str) -> None:
    request = _base(method)
    _set(request, path)
    code, details = _call(stub, method, request)
    if path in IMPLEMENTED[method]:
        assert "does not implement the request field" not in details, details
    else:
        assert code == grpc.StatusCode.UNIMPLEMENTED and repr(path) in details, (code, details)


def _enum_field(descriptor: Any, path: str) -> Any:
    """The enum field at ``path``, or None if it is not an enum."""
    field = None
    for part in path.split("."):
        field = descriptor.fields_by_name[part]
        descriptor = field.message_type or descriptor
    return field if field is not None and field.enum_type is not None else None


ENUMS = [(m, p, v.name, v.number) for m in REQUESTS for p in sorted(IMPLEMENTED[m])
         if (f := _enum_field(REQUESTS[m].DESCRIPTOR, p)) is not None for v in f.enum_type.values if v.number]


@pytest.mark.parametrize("method, path, name, number", ENUMS, ids=[f"{m}:{p}={n}" for m, p, n, _ in ENUMS])
def test_each_enum_value_is_implemented_or_refused(stub: Any, method: str, path: str, name: str, number: int) -> None:
    request = _base(method)
    _set(request, path, enum_value=number)
    if path == "filters.operator":  # a filter the fake can evaluate, but for the operator
        request.filters.target.property = "title"
        request.filters.value_text = "x"
    code, details = _call(stub, method, request)
    if REFUSED_VALUES.get((method, path)) == name:
        assert code == grpc.StatusCode.UNIMPLEMENTED, (code, details)
    else:
        assert code != grpc.StatusCode.UNIMPLEMENTED or "does not" not in details, (code, details)
