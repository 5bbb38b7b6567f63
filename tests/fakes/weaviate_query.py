"""The gRPC ``Search`` of the Weaviate fake: listing, sort, cursor, nearVector, nearObject, BM25,
hybrid, autocut, pagination and the reply (as ``adapters/handlers/grpc/v1`` builds it, 1.32.5)."""

from __future__ import annotations

import uuid as uuid_lib
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from weaviate.proto.v1 import base_pb2, base_search_pb2, properties_pb2, search_get_pb2

from tests.fakes.weaviate_filters import matches, validate
from tests.fakes.weaviate_schema import lower_first
from tests.fakes.weaviate_search import (
    HYBRID_MAX_RESULTS,
    Doc,
    autocut,
    bm25,
    certainty,
    distance,
    fuse_ranked,
    fuse_relative_score,
)

if TYPE_CHECKING:
    from tests.fakes.weaviate_server import FakeWeaviate, StoredObject

DEFAULT_LIMIT = 10  # QUERY_DEFAULTS_LIMIT
MAX_RESULTS = 10_000  # QUERY_MAXIMUM_RESULTS
Row = tuple[str, "StoredObject"]


def _abort(message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> Exception:
    from tests.fakes.weaviate_server import Abort

    return Abort(code, message)


def search(fake: FakeWeaviate, req: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
    cls = fake.class_of(req.collection)
    shard = fake.shard(cls["class"], req.tenant)
    kinds = [k for k in ("near_vector", "near_object", "bm25_search", "hybrid_search") if req.HasField(k)]
    if len(kinds) > 1:
        raise _abort(f"conflict: only one of {kinds} can be used at a time")
    if req.after and (req.HasField("filters") or kinds):
        raise _abort("cursor api: invalid 'after' parameter: where and near parameters must be nil",
                     grpc.StatusCode.INVALID_ARGUMENT)
    if req.sort_by and kinds:
        raise _abort("sorting cannot be combined with search")
    limit = req.limit or DEFAULT_LIMIT
    if req.offset + limit > MAX_RESULTS and not req.after:
        raise _abort(f"query maximum results exceeded: offset + limit > {MAX_RESULTS}")
    flt = req.filters if req.HasField("filters") else None
    if flt is not None:
        validate(fake, cls["class"], flt)
    by_order = sorted(shard.items(), key=lambda r: r[1].order)  # the server's doc-id order
    allowed = [r for r in by_order if flt is None or matches(fake, cls["class"], flt, r[0], r[1])]
    scores: dict[str, float] = {}
    dists: dict[str, float] = {}
    if req.HasField("near_vector") or req.HasField("near_object"):
        rows, dists = _vector_search(fake, cls, shard, req, allowed)
        rows = rows[req.offset: req.offset + limit]
        if req.autocut > 0:
            rows = rows[: autocut([dists[u] for u, _ in rows], req.autocut)]
    elif req.HasField("bm25_search"):
        bm = req.bm25_search
        op = bm.search_operator if bm.HasField("search_operator") else None
        ranked = _bm25(cls, by_order, allowed, bm.query, list(bm.properties), op)
        rows = [(d.uid, shard[d.uid]) for d, _ in ranked][req.offset: req.offset + limit]
        scores = {d.uid: s for d, s in ranked}
        if req.autocut > 0:
            rows = rows[: autocut([scores[u] for u, _ in rows], req.autocut)]
    elif req.HasField("hybrid_search"):
        rows, scores = _hybrid(fake, cls, shard, req, by_order, allowed, limit)
    else:
        rows = _list(fake, cls, req, by_order, allowed, flt is not None)[req.offset: req.offset + limit]
    dist_metric = fake.vector_index(cls, _target(req))[1] if dists else ""
    results = [_result(cls, req, u, o, dists.get(u), scores.get(u), dist_metric) for u, o in rows]
    return search_get_pb2.SearchReply(took=0.001, results=results)


def _target(req: Any) -> str:
    for kind in ("near_vector", "near_object", "hybrid_search"):
        if req.HasField(kind):
            targets = list(getattr(req, kind).target_vectors)
            if len(targets) > 1:
                raise _abort("the Weaviate fake does not combine several target vectors",
                             grpc.StatusCode.UNIMPLEMENTED)
            return targets[0] if targets else ""
    return ""


def _query_vector(nv: Any) -> np.ndarray:
    if nv.vectors:
        if len(nv.vectors) > 1 or nv.vectors[0].type == base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32:
            raise _abort("the Weaviate fake does not model multi-vector queries", grpc.StatusCode.UNIMPLEMENTED)
        return np.frombuffer(nv.vectors[0].vector_bytes, dtype="<f4")
    if nv.vector_bytes:
        return np.frombuffer(nv.vector_bytes, dtype="<f4")
    return np.asarray(nv.vector, dtype=np.float32)


def _ranked_by_distance(shard_rows: list[Row], name: str, metric: str, q: np.ndarray) -> tuple[list[Row], dict[str, float]]:
    dists: dict[str, float] = {}
    rows = []
    for uid, obj in shard_rows:
        vec = obj.vectors.get(name)
        if vec is None:
            continue
        if len(vec) != len(q):
            raise _abort(f"vector search: knn search: distance between entrypoint and query node: "
                         f"vector lengths don't match: {len(q)} vs {len(vec)}")
        dists[uid] = distance(metric, vec, q)
        rows.append((uid, obj))
    rows.sort(key=lambda r: dists[r[0]])  # stable: equal distances keep doc-id order
    return rows, dists


def _vector_search(fake: FakeWeaviate, cls: dict[str, Any], shard: dict[str, StoredObject], req: Any,
                   allowed: list[Row]) -> tuple[list[Row], dict[str, float]]:
    name, metric = fake.vector_index(cls, _target(req))
    if req.HasField("near_vector"):
        spec: Any = req.near_vector
        q = _query_vector(spec)
    else:
        spec = req.near_object
        try:
            origin = shard.get(str(uuid_lib.UUID(spec.id)))
        except ValueError:
            raise _abort(f"near_object: invalid id {spec.id!r}") from None
        if origin is None or name not in origin.vectors:
            raise _abort(f"explorer: get class: vectorize search vector: nearObject params: vector not "
                         f"found for id {spec.id}")
        q = origin.vectors[name]
    if spec.HasField("distance") and spec.HasField("certainty"):
        raise _abort("near_vector: cannot provide distance and certainty")
    rows, dists = _ranked_by_distance(allowed, name, metric, q)
    if spec.HasField("certainty"):
        if metric != "cosine":
            raise _abort(f"can't compute and return certainty when vector index is configured with {metric} distance")
        rows = [r for r in rows if certainty(dists[r[0]]) >= spec.certainty]
    if spec.HasField("distance"):
        rows = [r for r in rows if dists[r[0]] <= spec.distance]
    return rows, dists


def _bm25(cls: dict[str, Any], by_order: list[Row], allowed: list[Row] | None, query: str,
          properties: list[str], operator: Any) -> list[tuple[Doc, float]]:
    boosts: dict[str, float] = {}
    names = []
    for raw in properties:
        name, _, boost = raw.partition("^")
        name = lower_first(name)
        names.append(name)
        boosts[name] = float(int(boost)) if boost.isdigit() else 1.0
    schema = {p["name"]: p for p in cls["properties"]}
    if not names:
        names = [n for n, p in schema.items() if p["indexSearchable"]]
        if not names:
            raise _abort("No properties provided, and no indexed properties found in class")
    for name in names:
        if name not in schema or not schema[name]["indexSearchable"]:
            raise _abort(f"Search index for property {name!r} not found: is `indexSearchable` option "
                         "of property enabled? Set it to `true` or leave empty")
    docs = [Doc(o.order, u, o.props) for u, o in by_order]
    op_and = operator is not None and operator.operator == base_search_pb2.SearchOperatorOptions.OPERATOR_AND
    min_match = operator.minimum_or_tokens_match if operator is not None and not op_and else 0
    keep = None if allowed is None else {u for u, _ in allowed}
    return bm25(docs, keep, query, [schema[n] for n in names], boosts, cls["invertedIndexConfig"],
                op_and, min_match)


def _hybrid(fake: FakeWeaviate, cls: dict[str, Any], shard: dict[str, StoredObject], req: Any,
            by_order: list[Row], allowed: list[Row], limit: int) -> tuple[list[Row], dict[str, float]]:
    hs = req.hybrid_search
    alpha = float(hs.alpha)
    sub_limit = max(HYBRID_MAX_RESULTS, req.offset + limit)
    sets: list[list[tuple[str, float]]] = []
    weights: list[float] = []
    below: set[str] | None = None
    q = None  # parsed whether or not alpha uses it, as the server parses the request first
    if hs.HasField("near_vector"):
        q = _query_vector(hs.near_vector)
    elif hs.vectors or hs.vector_bytes or hs.vector:
        q = _query_vector(hs)
    if alpha > 0:
        name, metric = fake.vector_index(cls, _target(req))
        if q is None:
            raise _abort("no vector or modules provided for hybrid search: the class has no vectorizer")
        rows, dists = _ranked_by_distance(allowed, name, metric, q)
        rows = rows[:sub_limit]
        if hs.HasField("vector_distance"):
            rows = [r for r in rows if dists[r[0]] <= hs.vector_distance]
            below = {u for u, _ in rows}
        sets.append([(u, 1.0 - dists[u]) for u, _ in rows])
        weights.append(alpha)
    if 1 - alpha > 0:
        keyword: list[tuple[str, float]] = []
        if hs.query:
            op = hs.bm25_search_operator if hs.HasField("bm25_search_operator") else None
            ranked = _bm25(cls, by_order, allowed, hs.query, list(hs.properties), op)[:sub_limit]
            keyword = [(d.uid, s) for d, s in ranked if below is None or d.uid in below]
        sets.append(keyword)
        weights.append(1 - alpha)
    fuse = fuse_ranked if hs.fusion_type == base_search_pb2.Hybrid.FUSION_TYPE_RANKED else fuse_relative_score
    fused = fuse(weights, sets)[: req.offset + limit]
    if req.autocut > 0:
        fused = fused[: autocut([f.score for f in fused], req.autocut)]
    fused = fused[req.offset: req.offset + limit]
    return [(f.uid, shard[f.uid]) for f in fused], {f.uid: f.score for f in fused}


def _list(fake: FakeWeaviate, cls: dict[str, Any], req: Any, by_order: list[Row], allowed: list[Row],
          filtered: bool) -> list[Row]:
    if req.sort_by:
        rows = list(allowed)
        for sort in reversed(req.sort_by):  # stable sorts, least significant key first
            rows = _sorted(fake, cls, rows, list(sort.path), sort.ascending)
        return rows
    if filtered:
        return allowed  # an allow-list is read in doc-id order
    return sorted((r for r in by_order if r[0] > req.after), key=lambda r: r[0])  # the objects bucket: uuid order


def _sorted(fake: FakeWeaviate, cls: dict[str, Any], rows: list[Row], path: list[str], ascending: bool) -> list[Row]:
    if len(path) != 1:
        raise _abort(f"sort: the Weaviate fake does not sort on reference paths {path}", grpc.StatusCode.UNIMPLEMENTED)
    name = path[0]
    if name in ("_id", "id"):
        def key(r: Row) -> Any:
            return r[0]
    elif name in ("_creationTimeUnix", "_lastUpdateTimeUnix"):
        def key(r: Row) -> Any:
            return r[1].created if name == "_creationTimeUnix" else r[1].updated
    else:
        prop = fake.prop_schema(cls["class"], name)
        text = prop["dataType"][0].startswith("text")

        def key(r: Row) -> Any:
            value = r[1].props.get(name)
            if isinstance(value, list):
                return [v.lower() for v in value] if text else value
            return value.lower() if text and value is not None else value
    present = [r for r in rows if key(r) is not None]
    missing = [r for r in rows if key(r) is None]  # nil sorts first ascending, last descending
    present.sort(key=key, reverse=not ascending)
    return missing + present if ascending else present + missing


def _value(dtype: str, v: Any) -> properties_pb2.Value:
    base, array = dtype.rstrip("[]"), dtype.endswith("[]")
    if array:
        if base == "text":
            lv = properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=v))
        elif base == "number":
            lv = properties_pb2.ListValue(number_values=properties_pb2.NumberValues(
                values=np.asarray(v, dtype="<f8").tobytes()))
        elif base == "int":
            lv = properties_pb2.ListValue(int_values=properties_pb2.IntValues(
                values=np.asarray(v, dtype="<i8").tobytes()))
        elif base == "boolean":
            lv = properties_pb2.ListValue(bool_values=properties_pb2.BoolValues(values=v))
        elif base == "date":
            lv = properties_pb2.ListValue(date_values=properties_pb2.DateValues(values=v))
        else:
            lv = properties_pb2.ListValue(uuid_values=properties_pb2.UuidValues(values=v))
        return properties_pb2.Value(list_value=lv)
    field = {"text": "text_value", "number": "number_value", "int": "int_value", "boolean": "bool_value",
             "date": "date_value", "uuid": "uuid_value"}[base]
    return properties_pb2.Value(**{field: v})


def _result(cls: dict[str, Any], req: Any, uid: str, obj: StoredObject, dist: float | None,
            score: float | None, metric: str) -> search_get_pb2.SearchResult:
    md = req.metadata
    meta = search_get_pb2.MetadataResult(id=uid, id_as_bytes=uuid_lib.UUID(uid).bytes)
    if md.distance and dist is not None:
        meta.distance, meta.distance_present = dist, True
    if md.certainty and dist is not None and metric == "cosine":
        meta.certainty, meta.certainty_present = certainty(dist), True
    if md.score and score is not None:
        meta.score, meta.score_present = score, True
    if md.creation_time_unix:
        meta.creation_time_unix, meta.creation_time_unix_present = obj.created, True
    if md.last_update_time_unix:
        meta.last_update_time_unix, meta.last_update_time_unix_present = obj.updated, True
    if md.is_consistent:
        meta.is_consistent, meta.is_consistent_present = True, True
    for name, vec in obj.vectors.items():
        raw = vec.astype("<f4").tobytes()
        if name == "" and (md.vector or "default" in md.vectors):
            meta.vector_bytes = raw
        elif name and (md.vector or name in md.vectors):
            meta.vectors.append(base_pb2.Vectors(name=name, vector_bytes=raw,
                                                 type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32))
    schema = {p["name"]: p for p in cls["properties"]}
    if not req.HasField("properties") or req.properties.return_all_nonref_properties:
        names = list(schema)  # "No properties selected at all, return all non-ref properties"
    else:
        names = [lower_first(n) for n in req.properties.non_ref_properties]
    fields = {n: _value(schema[n]["dataType"][0], obj.props[n]) for n in names if n in obj.props and n in schema}
    props = search_get_pb2.PropertiesResult(non_ref_props=properties_pb2.Properties(fields=fields))
    return search_get_pb2.SearchResult(metadata=meta, properties=props)
