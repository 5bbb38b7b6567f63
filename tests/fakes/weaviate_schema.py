"""Class definitions, property values and auto-schema for the Weaviate fake (server 1.32.5 rules).

What the server does and this module does too (read in weaviate/weaviate at v1.32.5):

* JSON keys of a class definition are decoded as Go's ``encoding/json`` decodes them into
  ``models.Class``: an exact key match first, else a case-insensitive one, unknown keys ignored
  (``MultiTenancyConfig`` *is* ``multiTenancyConfig``). Free-form maps (``vectorIndexConfig``,
  ``shardingConfig``, ``moduleConfig``) keep their keys as sent.
* The class name's first letter is upper-cased and property names' first letters lower-cased
  (``schema.UppercaseClassName`` / ``LowercaseFirstLetter``) before the name rules apply;
  ``_additional``, ``_id`` and ``id`` are reserved property names.
* Auto-schema (on by default): an undeclared property is added with the type its first value
  implies (RFC 3339 string -> date, UUID string -> uuid, other string or null -> text, number ->
  number, bool -> boolean, lists likewise, ``usecases/objects/auto_schema.go``).

What the fake does not model is refused with :class:`NotModelled` (HTTP 501 / gRPC
UNIMPLEMENTED) instead of being stored and ignored: modules and vectorizers (a server with no
modules answers 422, as here), vector quantization and multi-vectors, object, geo, phone, blob
and cross-reference properties, and the trigram/gse/kagome tokenizations.
"""

from __future__ import annotations

import copy
import re
import uuid as uuid_lib
from typing import Any

CLASS_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]{0,254}$")
PROP_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")
RESERVED_PROPS = ("_additional", "_id", "id")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
SCALAR_TYPES = ("text", "number", "int", "boolean", "date", "uuid")
DATA_TYPES = SCALAR_TYPES + tuple(t + "[]" for t in SCALAR_TYPES)
TOKENIZATIONS = ("word", "lowercase", "whitespace", "field")
DISTANCES = ("cosine", "dot", "l2-squared", "manhattan", "hamming")
INDEX_TYPES = ("hnsw", "flat", "dynamic")
QUANTIZERS = ("pq", "bq", "sq", "rq")

# Go struct fields of the models the server decodes into; a nested dict is decoded the same way,
# None marks a free-form map (kept as sent), ("list"|"map", spec) a list or map of such models.
_PROPERTY: dict[str, Any] = dict.fromkeys(
    ("dataType", "description", "indexFilterable", "indexInverted", "indexRangeFilters",
     "indexSearchable", "moduleConfig", "name", "nestedProperties", "tokenization"))
_VECTOR_CONFIG: dict[str, Any] = dict.fromkeys(("vectorIndexConfig", "vectorIndexType", "vectorizer"))
_CLASS: dict[str, Any] = {
    "class": None, "description": None, "moduleConfig": None, "shardingConfig": None,
    "vectorIndexConfig": None, "vectorIndexType": None, "vectorizer": None,
    "properties": ("list", _PROPERTY),
    "vectorConfig": ("map", _VECTOR_CONFIG),
    "multiTenancyConfig": dict.fromkeys(("autoTenantActivation", "autoTenantCreation", "enabled")),
    "replicationConfig": dict.fromkeys(("asyncEnabled", "deletionStrategy", "factor")),
    "invertedIndexConfig": {
        "bm25": dict.fromkeys(("b", "k1")), "cleanupIntervalSeconds": None, "indexNullState": None,
        "indexPropertyLength": None, "indexTimestamps": None, "usingBlockMaxWAND": None,
        "stopwords": dict.fromkeys(("additions", "preset", "removals"))},
}

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


class NotModelled(Exception):
    """A request the real server would act on but the fake does not model (501 / UNIMPLEMENTED)."""


class SchemaError(ValueError):
    """A request the real server refuses (422 / a per-object batch error)."""


def go_decode(value: Any, spec: Any) -> Any:
    """``value`` decoded the way Go's encoding/json fills the struct ``spec`` describes."""
    if spec is None or value is None:
        return copy.deepcopy(value)
    if isinstance(spec, tuple):
        kind, inner = spec
        if kind == "list" and isinstance(value, list):
            return [go_decode(v, inner) for v in value]
        if kind == "map" and isinstance(value, dict):
            return {k: go_decode(v, inner) for k, v in value.items()}
        raise SchemaError(f"cannot decode {type(value).__name__} into a {kind}")
    if not isinstance(value, dict):
        raise SchemaError(f"cannot decode {type(value).__name__} into an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = key if key in spec else next((k for k in spec if k.lower() == key.lower()), None)
        if field is not None:  # unknown keys are ignored, as Go does
            out[field] = go_decode(item, spec[field])
    return out


def upper_first(name: str) -> str:
    return name[:1].upper() + name[1:]


def lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def check_property_name(name: str) -> str:
    name = lower_first(name)
    if not PROP_NAME.match(name):
        raise SchemaError(f"'{name}' is not a valid property name. Property names in Weaviate are "
                          "restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]{0,230}/”")
    if name in RESERVED_PROPS:
        raise SchemaError(f"'{name}' is a reserved property name")
    return name


def normalise_property(raw: dict[str, Any]) -> dict[str, Any]:
    """A property definition as the server stores it (names, defaults), or an error."""
    prop = go_decode(raw, _PROPERTY)
    name = check_property_name(str(prop.get("name") or ""))
    types = prop.get("dataType") or []
    if len(types) != 1 or types[0] not in DATA_TYPES:
        if types and all(isinstance(t, str) and t[:1].isupper() for t in types):
            raise NotModelled(f"property {name!r}: cross-references are not modelled by the fake")
        raise NotModelled(f"property {name!r}: data type {types} is not modelled by the fake "
                          f"(it stores {', '.join(DATA_TYPES)})")
    if prop.get("nestedProperties"):
        raise NotModelled(f"property {name!r}: nestedProperties are not modelled")
    if set(prop.get("moduleConfig") or {}) - {"none"}:  # the SDK sends {"none": {...}} for no vectorizer
        raise NotModelled(f"property {name!r}: moduleConfig for modules (the fake runs none)")
    text = types[0].startswith("text")
    tokenization = prop.get("tokenization") or ("word" if text else None)
    if text and tokenization not in TOKENIZATIONS:
        raise NotModelled(f"property {name!r}: tokenization {tokenization!r} is not modelled")
    if not text and tokenization:
        raise SchemaError(f"Tokenization is not allowed for data type '{types[0]}'")
    searchable = prop.get("indexSearchable")
    if searchable and not text:
        raise SchemaError(f"`indexSearchable` is not allowed for other than text/text[] data types "
                          f"(property {name!r})")
    filterable = prop.get("indexFilterable")
    if prop.get("indexInverted") is False:  # the deprecated switch turns both indexes off
        filterable = searchable = False
    return {"name": name, "dataType": list(types), "description": prop.get("description", ""),
            "indexFilterable": True if filterable is None else bool(filterable),
            "indexSearchable": text if searchable is None else bool(searchable),
            "indexRangeFilters": bool(prop.get("indexRangeFilters", False)),
            "tokenization": tokenization}


def _vector_index(kind: Any, config: Any, where: str) -> tuple[str, dict[str, Any]]:
    kind = kind or "hnsw"
    if kind not in INDEX_TYPES:
        raise SchemaError(f"{where}: unsupported vector index type {kind!r}")
    config = dict(config or {})
    for q in QUANTIZERS:
        if (config.get(q) or {}).get("enabled"):
            raise NotModelled(f"{where}: {q} quantization is not modelled (scores would be approximate)")
    if (config.get("multivector") or {}).get("enabled"):
        raise NotModelled(f"{where}: multi-vectors are not modelled")
    distance = config.get("distance", "cosine")
    if distance not in DISTANCES:
        raise SchemaError(f"{where}: invalid distance metric {distance!r}")
    return kind, {**HNSW_DEFAULTS, **config}


def _no_vectorizer(vectorizer: Any, where: str) -> None:
    if isinstance(vectorizer, dict):  # a named vector's {"none": {}}
        names = list(vectorizer)
        if names not in ([], ["none"]):
            raise SchemaError(f"{where}: vectorizer: no module with name {names[0]!r} present")
    elif vectorizer not in (None, "", "none"):
        raise SchemaError(f"{where}: vectorizer: no module with name {vectorizer!r} present")


def normalise_class(raw: Any) -> dict[str, Any]:
    """A class definition as POST /v1/schema stores it (with the server's defaults), or an error."""
    cls = go_decode(raw, _CLASS)
    name = upper_first(str(cls.get("class") or ""))
    if not CLASS_NAME.match(name):
        raise SchemaError(f"'{name}' is not a valid class name")
    if cls.get("moduleConfig"):
        raise NotModelled(f"class {name}: moduleConfig is not modelled (the fake runs no modules)")
    props, seen = [], set()
    for raw_prop in cls.get("properties") or []:
        prop = normalise_property(raw_prop)
        if prop["name"].lower() in seen:
            raise SchemaError(f"class {name!r}: conflict for property {prop['name']!r}: already in "
                              "use or provided multiple times")
        seen.add(prop["name"].lower())
        props.append(prop)
    inverted = cls.get("invertedIndexConfig") or {}
    stop = inverted.get("stopwords") or {}
    if stop.get("preset", "en") not in ("en", "none"):
        raise SchemaError(f"stopwords: unrecognized preset {stop.get('preset')!r}")
    repl = cls.get("replicationConfig") or {}
    if repl.get("factor", 1) not in (0, 1):
        raise SchemaError(f"not enough storage replicas: found 1 want {repl['factor']}")
    shard = dict(cls.get("shardingConfig") or {})
    if shard.get("desiredCount", 1) not in (0, 1):
        raise NotModelled("shardingConfig.desiredCount > 1: the fake is a single node with one shard")
    mt = cls.get("multiTenancyConfig") or {}
    out: dict[str, Any] = {
        "class": name, "description": cls.get("description", ""), "properties": props,
        "invertedIndexConfig": {
            "bm25": {"b": 0.75, "k1": 1.2, **(inverted.get("bm25") or {})},
            "cleanupIntervalSeconds": inverted.get("cleanupIntervalSeconds", 60),
            "stopwords": {"preset": stop.get("preset", "en"), "additions": stop.get("additions"),
                          "removals": stop.get("removals")},
            "indexTimestamps": bool(inverted.get("indexTimestamps", False)),
            "indexNullState": bool(inverted.get("indexNullState", False)),
            "indexPropertyLength": bool(inverted.get("indexPropertyLength", False)),
            "usingBlockMaxWAND": bool(inverted.get("usingBlockMaxWAND", True)),
        },
        "multiTenancyConfig": {"enabled": bool(mt.get("enabled", False)),
                               "autoTenantCreation": bool(mt.get("autoTenantCreation", False)),
                               "autoTenantActivation": bool(mt.get("autoTenantActivation", False))},
        "replicationConfig": {"factor": 1, "asyncEnabled": bool(repl.get("asyncEnabled", False)),
                              "deletionStrategy": repl.get("deletionStrategy", "NoAutomatedResolution")},
        "shardingConfig": {
            "virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1, "desiredVirtualCount": 128,
            "actualVirtualCount": 128, "key": "_id", "strategy": "hash", "function": "murmur3", **shard},
    }
    if cls.get("vectorConfig"):
        out["vectorConfig"] = {}
        for vname, vec in cls["vectorConfig"].items():
            where = f"class {name} vector {vname!r}"
            _no_vectorizer(vec.get("vectorizer"), where)
            kind, config = _vector_index(vec.get("vectorIndexType"), vec.get("vectorIndexConfig"), where)
            out["vectorConfig"][vname] = {"vectorizer": {"none": {}}, "vectorIndexType": kind,
                                          "vectorIndexConfig": config}
    else:
        _no_vectorizer(cls.get("vectorizer"), f"class {name}")
        out["vectorizer"] = "none"
        out["vectorIndexType"], out["vectorIndexConfig"] = _vector_index(
            cls.get("vectorIndexType"), cls.get("vectorIndexConfig"), f"class {name}")
    return out


def is_uuid(text: str) -> bool:
    """Go's uuid.Parse: the 36-character form, with ``urn:uuid:`` or braces, or 32 hex digits."""
    if len(text) not in (32, 36, 38, 45):
        return False
    try:
        uuid_lib.UUID(text)
    except ValueError:
        return False
    return len(text) != 38 or (text[0], text[-1]) == ("{", "}")


def infer_data_type(value: Any) -> str:
    """Auto-schema's data type for the first value of an undeclared property."""
    if value is None:
        return "text"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "date" if RFC3339.match(value) else "uuid" if is_uuid(value) else "text"
    if isinstance(value, list):
        if not value:
            return "text[]"
        kinds = [infer_data_type(v) for v in value]
        if any(k.endswith("[]") for k in kinds) or None in value:
            raise SchemaError(f"unrecognized data type of value '{value}'")
        if set(kinds) <= {"text", "date", "uuid"} and len(set(kinds)) > 1:
            return "text[]"
        if len(set(kinds)) > 1:
            raise SchemaError(f"element [1]: mismatched data type - '{kinds[0]}' expected, got '{kinds[1]}'")
        return kinds[0] + "[]"
    if isinstance(value, dict):
        raise NotModelled("object, geoCoordinates and phoneNumber properties are not modelled")
    raise SchemaError(f"unrecognized data type of value '{value}'")


def check_value(cls_name: str, prop: dict[str, Any], value: Any) -> Any:
    """``value`` as stored for ``prop`` (numbers as float, ints as int), or the server's error."""
    dtype, name = prop["dataType"][0], prop["name"]
    if value is None:
        return None
    if dtype.endswith("[]"):
        if not isinstance(value, list):
            raise SchemaError(f"invalid {dtype} property '{name}' on class '{cls_name}': not a list: {value!r}")
        return [_scalar(cls_name, name, dtype[:-2], v) for v in value]
    return _scalar(cls_name, name, dtype, value)


def _scalar(cls_name: str, name: str, dtype: str, v: Any) -> Any:
    bad = SchemaError(f"invalid {dtype} property '{name}' on class '{cls_name}': the given value is {v!r}")
    if dtype == "text":
        if not isinstance(v, str):
            raise bad
        return v
    if dtype in ("number", "int"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        if dtype == "int":
            if not float(v).is_integer():
                raise SchemaError(f"invalid integer property '{name}' on class '{cls_name}': "
                                  f"requires an integer, the given value is {v!r}")
            return int(v)
        return float(v)
    if dtype == "boolean":
        if not isinstance(v, bool):
            raise bad
        return v
    if dtype == "date":
        if not isinstance(v, str) or not RFC3339.match(v):
            raise SchemaError(f"invalid date property '{name}' on class '{cls_name}': requires a "
                              f"string with a RFC3339 formatted date, but the given value is {v!r}")
        return v
    if not isinstance(v, str) or not is_uuid(v):  # uuid
        raise bad
    return str(uuid_lib.UUID(v))
