"""How bge-vdb lays a collection out in Milvus, what each server version can hold, and the index.

A collection made by bge-vdb: a VARCHAR primary key ``id`` holding the user's id as is, a
FLOAT_VECTOR ``vector`` with a COSINE index (FLAT, exact, by default), ``text``, ``metadata``
(JSON, returned to the user), ``metadata_typed`` (JSON, filtered on: see
:mod:`bge_vdb.connectors.milvus_expr`) and ``content_hash``.

``text`` and ``content_hash`` may be None. Servers from Milvus 2.5 (and Milvus Lite) have
nullable fields. Older servers (2.3, 2.4) silently ignore ``nullable=True`` and refuse a row
without a value, so on them a collection gets one more field, ``null_fields``: the names of the
fields that are None in that row, which then hold "". A row therefore reads back exactly as it
was written on every server, and a collection keeps its layout if the server is upgraded (the
layout is read from the collection's own schema, never from the server version).

A hybrid collection (``hybrid=True``, Milvus 2.5+ and Milvus Lite) has two more fields: ``terms``,
a VARCHAR with ``enable_analyzer=True`` (the ``standard`` tokenizer) holding the text's terms as
bge-vdb's analyzer makes them, joined by spaces (so Milvus's tokenizer splits them again into
the same terms), and ``bm25``, a SPARSE_FLOAT_VECTOR that Milvus's ``BM25`` function fills from
it, with an index of ``metric_type="BM25"`` carrying the collection's k1 and b.

Collections made outside bge-vdb are read as they are: the first VARCHAR primary key, the field
named ``vector`` or else the first FLOAT_VECTOR, and ``text`` / ``metadata`` / ``content_hash``
where fields of those names and types exist. Such a collection has no ``null_fields``: where its
``text`` is not nullable, None is written as "".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import CollectionSchema, DataType, MilvusClient

from .. import lexical
from ..errors import ConfigError, ConnectorError
from ..types import Record
from .milvus_expr import quote, typed_leaves

ID_MAX_LENGTH = 2048  # bytes; bge_vdb ids are at most MAX_ID_BYTES (1024)
TEXT_MAX_BYTES = 65535  # Milvus's largest VARCHAR; checked in UTF-8 bytes, the stricter reading
JSON_MAX_BYTES = 65536  # Milvus's default limit of one JSON value
HASH_MAX_LENGTH = 256
NULLS_FIELD = "null_fields"
NULLABLE = ("text", "content_hash")

MIN_SERVER = (2, 3)  # upsert, count(*), JSON `exists` and ordered query iterators arrived in 2.3
NULLABLE_SINCE = (2, 5)
BM25_SINCE = (2, 5)  # the BM25 function and SPARSE_FLOAT_VECTOR fields filled by it
TERMS_FIELD, SPARSE_FIELD = "terms", "bm25"


# ---------------------------------------------------------------------------- server version

@dataclass(frozen=True)
class ServerInfo:
    """What the connector needs to know about the server it talks to."""

    reported: str  # what get_server_version() said, e.g. "v2.3.5-lite", "milvus_lite-3.2.2"
    version: tuple[int, ...] | None  # None when the string names no version: taken as current

    @classmethod
    def parse(cls, reported: str) -> ServerInfo:
        found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", reported or "")
        version = tuple(int(g) for g in found.groups() if g is not None) if found else None
        return cls(reported, version)

    @property
    def is_lite(self) -> bool:
        return self.reported.startswith("milvus_lite")

    @property
    def nullable_fields(self) -> bool:
        """Milvus 2.5+ and Milvus Lite 2.5+ (Lite's versions follow the server's until 3.x)."""
        return self.version is None or self.version >= NULLABLE_SINCE

    @property
    def nul_in_json_paths(self) -> bool:
        """Can a JSON path in a filter name a key containing NUL? Milvus 2.3 finds nothing under
        such a key; Milvus Lite 3.x (a Python engine) does."""
        return self.is_lite and self.version is not None and self.version >= (3,)

    @property
    def bm25(self) -> bool:
        """Milvus 2.5+ and Milvus Lite 2.5+ have the BM25 function (hybrid collections)."""
        return self.version is None or self.version >= BM25_SINCE

    def check_supported(self, location: str) -> None:
        """Refuse, in plain words, a server too old for what the connector sends."""
        if self.version is not None and self.version < MIN_SERVER:
            raise ConnectorError(
                f"the Milvus server at {location} is version {self.reported}; bge-vdb needs Milvus "
                f"{MIN_SERVER[0]}.{MIN_SERVER[1]} or newer (it uses upsert, count(*) queries, JSON "
                f"'exists' filters and primary-key-ordered query pages, which arrived in 2.3)"
            )


# ----------------------------------------------------------------------------------- index

INDEX_TYPES = ("FLAT", "HNSW", "AUTOINDEX")


@dataclass(frozen=True)
class IndexChoice:
    """The vector index of collections this store creates, and the HNSW search width.

    FLAT (the default) is exact. HNSW is approximate: ``hnsw_m`` links per node and
    ``hnsw_ef_construction`` at build time, ``search_ef`` (at least k) candidates per search.
    The defaults keep top-10 recall of 10,000 random 384-d vectors at 0.997 on Milvus 2.3.5
    (tested; random vectors are the worst case, M=16/ef=128 gives 0.61 there). AUTOINDEX lets
    the server choose its index and search parameters.
    """

    index_type: str = "FLAT"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    search_ef: int = 512

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ConfigError(f"Milvus index_type must be one of {', '.join(INDEX_TYPES)}, got {self.index_type!r}")
        for name in ("hnsw_m", "hnsw_ef_construction", "search_ef"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Milvus {name} must be a positive integer, got {getattr(self, name)!r}")

    def build_params(self) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        return {}

    def search_params(self, collection_index: str, k: int) -> dict[str, Any]:
        """Search parameters for a collection whose vector index is ``collection_index``."""
        params: dict[str, Any] = {"metric_type": "COSINE"}
        if collection_index == "HNSW":  # Milvus refuses ef < k
            params["params"] = {"ef": max(self.search_ef, k)}
        return params


# ---------------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class Layout:
    """Field names of one collection (ours, or one made outside bge-vdb)."""

    pk: str
    vector: str
    dim: int
    text: str | None
    metadata: str | None
    typed: str | None
    content_hash: str | None
    text_max_bytes: int = TEXT_MAX_BYTES
    nulls: str | None = None  # NULLS_FIELD where the collection has it
    nullable: frozenset[str] = frozenset()  # fields the server stores None in
    index_type: str = "FLAT"
    terms: str | None = None  # TERMS_FIELD and SPARSE_FIELD on a hybrid collection
    sparse: str | None = None
    lexical_spec: lexical.LexicalSpec | None = None  # the collection's analyzer settings, when hybrid

    def output_fields(self, with_vectors: bool) -> list[str]:
        names = [self.pk, self.text, self.metadata, self.content_hash, self.nulls]
        return [n for n in names if n] + ([self.vector] if with_vectors else [])


def new_schema(dim: int, nullable: bool, hybrid: bool = False) -> CollectionSchema:
    """The schema of a bge-vdb collection on a server with or without nullable fields."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    maybe_null: dict[str, Any] = {"nullable": True} if nullable else {}
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES, **maybe_null)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("metadata_typed", DataType.JSON)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=HASH_MAX_LENGTH, **maybe_null)
    if not nullable:
        schema.add_field(NULLS_FIELD, DataType.VARCHAR, max_length=64)
    if hybrid:
        from pymilvus import Function, FunctionType

        schema.add_field(TERMS_FIELD, DataType.VARCHAR, max_length=TEXT_MAX_BYTES, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bge_vdb_bm25", function_type=FunctionType.BM25,
                                     input_field_names=[TERMS_FIELD], output_field_names=[SPARSE_FIELD]))
    return schema


def read_layout(name: str, fields: Sequence[Mapping[str, Any]], index_type: str) -> Layout:
    by_name = {f["name"]: f for f in fields}
    pk = next((f for f in fields if f.get("is_primary")), None)
    vectors = [f for f in fields if f["type"] == DataType.FLOAT_VECTOR]
    if pk is None or not vectors:
        raise ConnectorError(f"Milvus collection {name!r} has no primary key or no FLOAT_VECTOR field")
    if pk["type"] != DataType.VARCHAR:
        raise ConnectorError(
            f"Milvus collection {name!r} has a {pk['type'].name} primary key {pk['name']!r}; "
            f"bge-vdb ids are strings and need a VARCHAR primary key"
        )
    vector = by_name["vector"] if "vector" in by_name and by_name["vector"] in vectors else vectors[0]

    def named(field: str, kind: DataType) -> str | None:
        return field if field in by_name and by_name[field]["type"] == kind else None

    text = named("text", DataType.VARCHAR)
    text_max = int(by_name[text]["params"].get("max_length", TEXT_MAX_BYTES)) if text else TEXT_MAX_BYTES
    return Layout(
        pk=pk["name"], vector=vector["name"], dim=int(vector["params"]["dim"]), text=text,
        metadata=named("metadata", DataType.JSON), typed=named("metadata_typed", DataType.JSON),
        content_hash=named("content_hash", DataType.VARCHAR), text_max_bytes=text_max,
        nulls=named(NULLS_FIELD, DataType.VARCHAR),
        nullable=frozenset(f for f in NULLABLE if by_name.get(f, {}).get("nullable")),
        index_type=index_type.upper(),
        terms=TERMS_FIELD if TERMS_FIELD in by_name and SPARSE_FIELD in by_name else None,
        sparse=SPARSE_FIELD if TERMS_FIELD in by_name and SPARSE_FIELD in by_name else None,
    )


# ------------------------------------------------------------------------------------ rows

def ids_expr(pk: str, ids: Sequence[str]) -> str:
    return f"{pk} in [{', '.join(quote(i) for i in ids)}]"


def to_row(rec: Record, layout: Layout) -> tuple[dict[str, Any], str | None]:
    """The Milvus row of a record, or the reason it cannot be stored in this collection."""
    row: dict[str, Any] = {layout.pk: rec.id, layout.vector: np.asarray(rec.vector, dtype=np.float32).tolist()}
    nulls: list[str] = []

    def put(field: str, value: str | None) -> None:
        if value is None and field not in layout.nullable:
            nulls.append(field)
            value = ""
        row[field] = value

    if rec.text is not None:
        size = len(rec.text.encode())
        if layout.text is None:
            return row, "collection has no 'text' field to store the text in"
        if size > layout.text_max_bytes:
            return row, f"text is {size} bytes in UTF-8, over Milvus's VARCHAR limit of {layout.text_max_bytes}"
    if layout.text:
        put(layout.text, rec.text)
    if layout.metadata:
        row[layout.metadata] = dict(rec.metadata)
    elif rec.metadata:
        return row, "collection has no 'metadata' JSON field to store the metadata in"
    if layout.typed:
        typed = typed_leaves(rec.metadata)
        size = len(json.dumps(typed, ensure_ascii=False).encode())
        if size > JSON_MAX_BYTES:
            return row, f"metadata needs {size} bytes of filter index, over Milvus's JSON limit of {JSON_MAX_BYTES}"
        row[layout.typed] = typed
    if layout.content_hash:
        put(layout.content_hash, rec.content_hash)
    elif rec.content_hash is not None:
        return row, "collection has no 'content_hash' field"
    if layout.terms:
        terms = " ".join(lexical.analyze(rec.text or "", layout.lexical_spec))
        size = len(terms.encode())
        if size > layout.text_max_bytes:
            return row, (f"the text's terms for BM25 take {size} bytes in UTF-8 (Chinese text is cut "
                         f"into overlapping pairs), over Milvus's VARCHAR limit of {layout.text_max_bytes}")
        row[layout.terms] = terms
    if layout.nulls:
        row[layout.nulls] = ",".join(nulls)
    return row, None


def to_record(row: Mapping[str, Any], layout: Layout, with_vectors: bool) -> Record:
    meta = row.get(layout.metadata) if layout.metadata else None
    if isinstance(meta, str):  # some Milvus versions hand JSON back undecoded
        meta = json.loads(meta)
    nulls = set(str(row.get(layout.nulls) or "").split(",")) if layout.nulls else set()

    def get(field: str | None) -> Any:
        return None if field is None or field in nulls else row.get(field)

    return Record(
        id=str(row[layout.pk]),
        vector=np.asarray(row[layout.vector], dtype=np.float32) if with_vectors else None,
        text=get(layout.text),
        metadata=meta or {},
        content_hash=get(layout.content_hash),
    )
