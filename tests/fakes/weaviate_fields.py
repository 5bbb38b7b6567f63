"""Which fields of Weaviate's gRPC requests the fake implements; every other field is refused.

A proto3 server ignores fields it does not read, so a fake that merely skipped what it does not
model would answer a ``group_by`` or ``rerank`` query with plausible, wrong results. Instead the
servicer checks each request against :data:`IMPLEMENTED` before doing anything and answers
``UNIMPLEMENTED`` naming the first field it does not model. Paths are dotted field names from the
request message; a field whose message type is the enclosing type (``Filters.filters``) shares
its parent's path. ``tests/fidelity/test_weaviate_walk.py`` walks every field of every request
message the SDK can send and checks each is either implemented or refused.

Some implemented fields still have values the fake refuses (a filter operator, a multi-vector
type); those are listed in :data:`REFUSED_VALUES` and refused where they are read.
"""

from __future__ import annotations

from typing import Any

_FILTER_VALUES = ("value_text", "value_int", "value_boolean", "value_number",
                  "value_text_array", "value_text_array.values", "value_int_array",
                  "value_int_array.values", "value_boolean_array", "value_boolean_array.values",
                  "value_number_array", "value_number_array.values")
_FILTERS = ("operator", "on", "filters", "target", "target.property", *_FILTER_VALUES)
_VECTORS = ("name", "vector_bytes", "type")  # one single-vector entry
_NEAR_VECTOR = ("vector", "vector_bytes", "distance", "certainty", "target_vectors", "vectors",
                *(f"vectors.{f}" for f in _VECTORS))
_METADATA = ("uuid", "vector", "vectors", "creation_time_unix", "last_update_time_unix", "distance",
             "certainty", "score", "is_consistent")
_OPERATOR = ("operator", "minimum_or_tokens_match")


def _under(prefix: str, fields: tuple[str, ...]) -> set[str]:
    return {prefix} | {f"{prefix}.{f}" for f in fields}


IMPLEMENTED: dict[str, set[str]] = {
    "Search": {
        "collection", "tenant", "consistency_level", "limit", "offset", "autocut", "after",
        "uses_123_api", "uses_125_api", "uses_127_api",
        *_under("properties", ("non_ref_properties", "return_all_nonref_properties")),
        *_under("metadata", _METADATA),
        *_under("sort_by", ("ascending", "path")),
        *_under("filters", _FILTERS),
        *_under("near_vector", _NEAR_VECTOR),
        *_under("near_object", ("id", "distance", "certainty", "target_vectors")),
        *_under("bm25_search", ("query", "properties", "search_operator",
                                *(f"search_operator.{f}" for f in _OPERATOR))),
        *_under("hybrid_search", ("query", "properties", "vector", "alpha", "fusion_type", "vector_bytes",
                                  "target_vectors", "vector_distance", "near_vector",
                                  *(f"near_vector.{f}" for f in _NEAR_VECTOR), "vectors",
                                  *(f"vectors.{f}" for f in _VECTORS), "bm25_search_operator",
                                  *(f"bm25_search_operator.{f}" for f in _OPERATOR))),
    },
    "BatchObjects": {
        "consistency_level",
        *_under("objects", ("uuid", "vector", "vector_bytes", "collection", "tenant", "vectors",
                            *(f"vectors.{f}" for f in _VECTORS), "properties",
                            "properties.non_ref_properties", "properties.empty_list_props",
                            *(f"properties.{kind}_array_properties{f}"
                              for kind in ("number", "int", "text", "boolean")
                              for f in ("", ".values", ".prop_name")),
                            "properties.number_array_properties.values_bytes")),
    },
    "BatchDelete": {"collection", "tenant", "consistency_level", "verbose", "dry_run",
                    *_under("filters", _FILTERS)},
    "Aggregate": {"collection", "tenant", "objects_count", *_under("filters", _FILTERS)},
    "TenantsGet": {"collection", *_under("names", ("values",))},
}

# Values of implemented fields that the fake still refuses, by (method, path).
REFUSED_VALUES: dict[tuple[str, str], str] = {
    **{(method, "filters.operator"): "OPERATOR_WITHIN_GEO_RANGE" for method in ("Search", "BatchDelete", "Aggregate")},
    **{("Search", f"{kind}.vectors.type"): "VECTOR_TYPE_MULTI_FP32"
       for kind in ("near_vector", "hybrid_search", "hybrid_search.near_vector")},
    ("BatchObjects", "objects.vectors.type"): "VECTOR_TYPE_MULTI_FP32",
}

# Message types whose contents are free-form values rather than request fields.
_OPAQUE = {"google.protobuf.Struct"}


def unmodelled_field(method: str, request: Any) -> str | None:
    """The first field set in ``request`` that the fake does not implement, or None."""
    return _first_unknown(request, IMPLEMENTED[method], "")


def _first_unknown(msg: Any, implemented: set[str], prefix: str) -> str | None:
    for field, value in msg.ListFields():
        path = prefix + field.name
        if path not in implemented:
            return path
        sub = field.message_type
        if sub is None or sub.full_name in _OPAQUE or sub.GetOptions().map_entry:
            continue
        inner = prefix if sub.full_name == msg.DESCRIPTOR.full_name else path + "."
        for item in [value] if hasattr(value, "ListFields") else value:  # one message or a repeated field
            found = _first_unknown(item, implemented, inner)
            if found is not None:
                return found
    return None
