"""Every operation of the pinecone SDK's data and control planes is either implemented by the fake
and exercised by a scenario, or refused with HTTP 501 — never answered with a plausible guess.

The operation lists below are checked against the SDK's public methods, so an SDK upgrade that
adds an operation fails here until it is classified. Assistants and the admin API live on other
services and are not walked; the gRPC data plane (``index(grpc=True)``) is not served at all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from pinecone import Pinecone
from pinecone.client.documents import Documents
from pinecone.errors.exceptions import ApiError
from pinecone.index import Index

from tests.fidelity import test_pinecone_control, test_pinecone_data

# Implemented operation -> the scenario that exercises it (its source must call the operation).
IMPLEMENTED: dict[str, str] = {
    "Index.upsert": "test_upsert_in_batches_and_from_a_dataframe", "Index.fetch": "test_upsert_then_fetch_round_trips",
    "Index.query": "test_query_by_vector_ranks_by_cosine",
    "Index.query_namespaces": "test_query_namespaces_merges_rankings",
    "Index.fetch_by_metadata": "test_fetch_by_metadata_pages_through_every_match",
    "Index.delete": "test_delete_by_ids_filter_and_all", "Index.update": "test_update_by_filter_with_dry_run",
    "Index.describe_index_stats": "test_describe_index_stats", "Index.list": "test_list_ids_with_prefix_and_pages",
    "Index.list_paginated": "test_default_namespace_is_addressable_as___default__",
    "Index.create_namespace": "test_namespaces_lifecycle", "Index.describe_namespace": "test_namespaces_lifecycle",
    "Index.delete_namespace": "test_namespaces_lifecycle", "Index.list_namespaces": "test_namespaces_lifecycle",
    "Index.list_namespaces_paginated": "test_namespaces_lifecycle",  # list_namespaces pages through it
    "Index.upsert_from_dataframe": "test_upsert_in_batches_and_from_a_dataframe",
    "indexes.create": "test_create_describe_list_and_exists", "indexes.describe": "test_create_describe_list_and_exists",
    "indexes.list": "test_create_describe_list_and_exists", "indexes.exists": "test_create_describe_list_and_exists",
    "indexes.configure": "test_configure_deletion_protection_and_tags",
    "indexes.delete": "test_configure_deletion_protection_and_tags",
    "pc.create_index": "test_create_waits_until_ready", "pc.describe_index": "test_create_describe_list_and_exists",
    "pc.list_indexes": "test_create_describe_list_and_exists", "pc.has_index": "test_create_describe_list_and_exists",
    "pc.configure_index": "test_configure_deletion_protection_and_tags",
    "pc.delete_index": "test_configure_deletion_protection_and_tags",
}
# Methods that send no request of their own (connection handling, enum types).
NO_REQUEST = {"Index.close", "inference.close", "inference.EmbedModel", "inference.RerankModel",
              "pc.Index", "pc.IndexAsyncio", "pc.index", "pc.close"}

Call = Callable[[Any, Any], Any]  # (pc, index) -> result
_NS = "ns"
REFUSED: dict[str, Call] = {
    "Index.upsert_records": lambda pc, ix: ix.upsert_records(records=[{"_id": "r", "text": "t"}], namespace=_NS),
    "Index.search": lambda pc, ix: ix.search(namespace=_NS, top_k=1, inputs={"text": "t"}),
    "Index.search_records": lambda pc, ix: ix.search_records(namespace=_NS, top_k=1, inputs={"text": "t"}),
    "Index.start_import": lambda pc, ix: ix.start_import("s3://bucket/path/"),
    "Index.describe_import": lambda pc, ix: ix.describe_import("1"),
    "Index.list_imports": lambda pc, ix: list(ix.list_imports()),
    "Index.list_imports_paginated": lambda pc, ix: ix.list_imports_paginated(),
    "Index.cancel_import": lambda pc, ix: ix.cancel_import("1"),
    "Documents.upsert": lambda pc, ix: ix.documents.upsert(namespace=_NS, documents=[{"_id": "d", "body": "b"}]),
    "Documents.batch_upsert": lambda pc, ix: _raise_batch_error(ix.documents.batch_upsert(
        namespace=_NS, documents=[{"_id": "d", "body": "b"}], show_progress=False)),
    "Documents.search": lambda pc, ix: ix.documents.search(
        namespace=_NS, top_k=1, score_by=[{"type": "dense_vector", "field": "v", "values": [1.0, 0.0]}]),
    "Documents.fetch": lambda pc, ix: ix.documents.fetch(namespace=_NS, ids=["d"]),
    "Documents.delete": lambda pc, ix: ix.documents.delete(namespace=_NS, ids=["d"]),
    "Documents.update": lambda pc, ix: ix.documents.update(namespace=_NS, filter={"k": "v"}, set_fields={"k": "w"}),
    "Documents.list": lambda pc, ix: list(ix.documents.list(namespace=_NS)),
    "indexes.create_for_model": lambda pc, ix: pc.indexes.create_for_model(
        name="embedded", cloud="aws", region="us-east-1",
        embed={"model": "multilingual-e5-large", "field_map": {"text": "chunk"}}, timeout=-1),
    "pc.create_index_for_model": lambda pc, ix: pc.create_index_for_model(
        name="embedded", cloud="aws", region="us-east-1",
        embed={"model": "multilingual-e5-large", "field_map": {"text": "chunk"}}, timeout=-1),
    "indexes.create_backup": lambda pc, ix: pc.indexes.create_backup("walk"),
    "indexes.describe_backup": lambda pc, ix: pc.indexes.describe_backup("bk-1"),
    "indexes.list_backups": lambda pc, ix: list(pc.indexes.list_backups("walk")),
    "pc.create_backup": lambda pc, ix: pc.create_backup(index_name="walk"),
    "pc.describe_backup": lambda pc, ix: pc.describe_backup(backup_id="bk-1"),
    "pc.list_backups": lambda pc, ix: pc.list_backups(index_name="walk"),
    "pc.delete_backup": lambda pc, ix: pc.delete_backup(backup_id="bk-1"),
    "pc.create_index_from_backup": lambda pc, ix: pc.create_index_from_backup(name="restored", backup_id="bk-1",
                                                                              timeout=-1),
    "backups.create": lambda pc, ix: pc.backups.create(index_name="walk"),
    "backups.describe": lambda pc, ix: pc.backups.describe(backup_id="bk-1"),
    "backups.get": lambda pc, ix: pc.backups.get(backup_id="bk-1"),
    "backups.list": lambda pc, ix: pc.backups.list(),
    "backups.delete": lambda pc, ix: pc.backups.delete(backup_id="bk-1"),
    "restore_jobs.describe": lambda pc, ix: pc.restore_jobs.describe(job_id="rj-1"),
    "restore_jobs.list": lambda pc, ix: pc.restore_jobs.list(),
    "pc.describe_restore_job": lambda pc, ix: pc.describe_restore_job(job_id="rj-1"),
    "pc.list_restore_jobs": lambda pc, ix: pc.list_restore_jobs(),
    "backup_schedules.create": lambda pc, ix: pc.backup_schedules.create(
        index_name="walk", name="nightly", frequency="daily", retention_days=7),
    "backup_schedules.describe": lambda pc, ix: pc.backup_schedules.describe(schedule_id="bs-1"),
    "backup_schedules.get": lambda pc, ix: pc.backup_schedules.get(schedule_id="bs-1"),
    "backup_schedules.list": lambda pc, ix: pc.backup_schedules.list(index_name="walk"),
    "backup_schedules.iter_schedules": lambda pc, ix: list(pc.backup_schedules.iter_schedules(index_name="walk")),
    "backup_schedules.update": lambda pc, ix: pc.backup_schedules.update(schedule_id="bs-1", enabled=False),
    "backup_schedules.delete": lambda pc, ix: pc.backup_schedules.delete(schedule_id="bs-1"),
    "backup_schedules.history": lambda pc, ix: pc.backup_schedules.history(schedule_id="bs-1"),
    "backup_schedules.iter_history": lambda pc, ix: list(pc.backup_schedules.iter_history(schedule_id="bs-1")),
    "collections.create": lambda pc, ix: pc.collections.create(name="snap", source="walk"),
    "collections.describe": lambda pc, ix: pc.collections.describe("snap"),
    "collections.list": lambda pc, ix: pc.collections.list(),
    "collections.delete": lambda pc, ix: pc.collections.delete("snap"),
    "pc.create_collection": lambda pc, ix: pc.create_collection(name="snap", source="walk"),
    "pc.describe_collection": lambda pc, ix: pc.describe_collection("snap"),
    "pc.list_collections": lambda pc, ix: pc.list_collections(),
    "pc.delete_collection": lambda pc, ix: pc.delete_collection("snap"),
    "inference.embed": lambda pc, ix: pc.inference.embed("multilingual-e5-large", ["hello"]),
    "inference.rerank": lambda pc, ix: pc.inference.rerank("bge-reranker-v2-m3", "q", ["a", "b"]),
    "inference.list_models": lambda pc, ix: pc.inference.list_models(),
    "inference.get_model": lambda pc, ix: pc.inference.get_model(model="multilingual-e5-large"),
}
# Request fields of implemented operations that the fake does not model.
REFUSED_FIELDS: dict[str, Call] = {
    "create: sparse index": lambda pc, ix: pc.indexes.create(name="sparse", vector_type="sparse", metric="dotproduct",
                                                            spec={"serverless": {"cloud": "aws", "region": "us-east-1"}},
                                                            timeout=-1),
    "create: pod deployment": lambda pc, ix: pc.indexes.create(
        name="pods", dimension=2, deployment={"deployment_type": "pod", "environment": "us-east-1-aws",
                                              "pod_type": "p1.x1", "pods": 1}, timeout=-1),
    "create: dedicated read capacity": lambda pc, ix: pc.indexes.create(
        name="dedicated", dimension=2, spec={"serverless": {"cloud": "aws", "region": "us-east-1"}},
        read_capacity={"mode": "Dedicated", "dedicated": {"node_type": "b1", "scaling": "Manual",
                                                          "manual": {"shards": 1, "replicas": 1}}}, timeout=-1),
    "create: cmek_id": lambda pc, ix: pc.indexes.create(name="cmek", dimension=2, cmek_id="key-1", timeout=-1,
                                                        spec={"serverless": {"cloud": "aws", "region": "us-east-1"}}),
    "configure: pod scaling": lambda pc, ix: pc.indexes.configure("walk", deployment={"replicas": 2}),
    "create_namespace: schema": lambda pc, ix: ix.create_namespace(
        name="typed", schema={"fields": {"genre": {"filterable": True}}}),
    "query: deprecated queries": lambda pc, ix: ix._http.post(
        "/query", json={"topK": 1, "queries": [{"values": [1.0, 0.0]}]}),
}


def _raise_batch_error(result: Any) -> None:
    """batch_upsert collects per-batch failures instead of raising: surface the first one."""
    for error in getattr(result, "errors", []) or []:
        raise getattr(error, "error", None) or ApiError(str(error), status_code=getattr(error, "status_code", 0))


def _sdk_operations() -> set[str]:
    pc = Pinecone(api_key="unused", host="http://127.0.0.1:9")
    groups: dict[str, Any] = {"Index": Index, "Documents": Documents, "pc": type(pc)}
    for name in ("indexes", "collections", "backups", "restore_jobs", "backup_schedules", "inference"):
        groups[name] = type(getattr(pc, name))
    return {f"{g}.{m}" for g, cls in groups.items() for m in dir(cls)
            if not m.startswith("_") and callable(getattr(cls, m))}


def test_every_sdk_operation_is_classified() -> None:
    ops = _sdk_operations()
    classified = set(IMPLEMENTED) | set(REFUSED) | NO_REQUEST
    assert ops - classified == set(), "new SDK operations: implement them in the fake or refuse them"
    assert classified - ops == set(), "operations the SDK no longer has"
    assert not set(IMPLEMENTED) & set(REFUSED)


@pytest.mark.parametrize("op", sorted(IMPLEMENTED))
def test_implemented_operation_has_a_scenario(op: str) -> None:
    scenario = IMPLEMENTED[op]
    fn = getattr(test_pinecone_data, scenario, None) or getattr(test_pinecone_control, scenario)
    method = op.split(".")[1]
    assert f".{method}(" in inspect.getsource(fn), f"{scenario} does not call {method}"


@pytest.fixture
def walk_index(make_index: Any) -> Any:
    return make_index("walk", 2, "cosine")


@pytest.mark.parametrize("op", sorted(REFUSED) + sorted(REFUSED_FIELDS))
def test_unmodelled_operation_is_refused_with_501(pc: Any, walk_index: Any, op: str) -> None:
    call = REFUSED.get(op) or REFUSED_FIELDS[op]
    with pytest.raises(ApiError) as err:
        call(pc, walk_index)
    assert err.value.status_code == 501, str(err.value)
    assert "does not model" in str(err.value)
