"""SQL building blocks of the pgvector connector: exact JSON, filters over ``jsonb``, vectors.

Metadata lives in a ``jsonb`` column. jsonb keeps numbers as ``numeric``, so ``1`` and ``1.0`` stay
apart on the way back (``1.0`` keeps its decimal point) and big integers stay exact. Only floats
written in exponent form would come back as integers (``1e+20`` is printed ``100000000000000000000``)
and compare wrongly with integers (the float ``1e23`` is not the integer ``10**23``): :func:`to_json`
writes every integral float as its exact integer value plus ``.0``, both in stored metadata and in
filter values, so storage and filters agree with Python's exact int/float comparisons.

Filters translate to SQL with the semantics of :func:`bge_vdb.filters.matches`:

* ``metadata -> 'a' -> 'b'`` walks nested objects only (a text key on an array gives NULL, unlike
  ``#>`` which would index arrays with "0"), and a missing key is SQL NULL;
* every leaf is wrapped so it is TRUE or FALSE, never NULL, so ``NOT`` is the exact negation
  (``$ne`` and ``$nin`` are true on a missing key);
* equality is jsonb equality: a string never equals a number, ``true`` never equals ``1``, numbers
  compare as numerics (``2020 = 2020.0``), a list or object never equals a scalar;
* ``$gt``... compare only values whose ``jsonb_typeof`` is ``number`` (``CASE`` guards the cast);
* every value and key is a bound parameter; identifiers go through :func:`ident`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.adapt import Dumper, Loader, PyFormat
from psycopg.pq import Format
from psycopg.types.json import Jsonb
from psycopg.types.string import StrDumperUnknown

from .. import filters
from ..errors import InputError
from ..lexical import LexicalSpec
from ..types import Distance, Record

# ------------------------------------------------------------------------------ exact JSON


def number_text(value: int | float) -> str:
    """A number as exact decimal text for ``numeric``: integral floats in full, with ``.0``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"JSON has no {value!r}")
        if value.is_integer():
            return f"{int(value)}.0"
        return repr(value)
    return str(int(value))


def to_json(value: Any) -> str:
    """JSON text that jsonb reads back with the same types (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return number_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    raise InputError(f"cannot store {type(value).__name__} {value!r:.60} as JSON")


# ------------------------------------------------------------------------------ identifiers


def ident(*names: str) -> sql.Identifier:
    """A quoted identifier that is safe in a statement run with parameters.

    psycopg looks for placeholders in the whole statement text, quoted identifiers included: a
    table named ``%s`` would be taken for one. Doubled, ``%`` comes out of psycopg as one ``%``;
    so every statement with an identifier must be executed with parameters (``{}`` if none).
    """
    return sql.Identifier(*(n.replace("%", "%%") for n in names))


# --------------------------------------------------------------------------------- filters


@dataclass
class Params:
    """Named bound parameters of one statement (``%(p0)s``, ``%(p1)s``...)."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any, cast: str | None = None, binary: bool = False) -> sql.Composable:
        name = f"p{len(self.values)}"
        self.values[name] = value
        holder = sql.Placeholder(name, format=PyFormat.BINARY if binary else PyFormat.AUTO)
        return sql.SQL("{}::{}").format(holder, sql.SQL(cast)) if cast else holder


def _path(meta: sql.Composable, key: tuple[str, ...], params: Params) -> sql.Composable:
    expr = meta
    for part in key:
        expr = sql.SQL("({} -> {})").format(expr, params.add(part, "text"))
    return expr


def _leaf(node: filters.Cmp, meta: sql.Composable, params: Params) -> sql.Composable:
    value = _path(meta, node.key, params)
    op = node.op
    if op in ("eq", "ne"):
        test = sql.SQL("COALESCE({} = {}, false)").format(value, params.add(to_json(node.value), "jsonb"))
        return test if op == "eq" else sql.SQL("NOT {}").format(test)
    if op in ("in", "nin"):
        choices = params.add([to_json(v) for v in node.value], "text[]::jsonb[]")
        test = sql.SQL("COALESCE({} = ANY({}), false)").format(value, choices)
        return test if op == "in" else sql.SQL("NOT {}").format(test)
    if op == "exists":
        test = sql.SQL("COALESCE({} <> 'null'::jsonb, false)").format(value)
        return test if node.value else sql.SQL("NOT {}").format(test)
    compare = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    # CASE, not AND: SQL does not promise to test the type before casting a string to numeric.
    return sql.SQL("CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric {op} {x} ELSE false END").format(
        v=value, op=sql.SQL(compare), x=params.add(number_text(node.value), "numeric"))


def to_sql(node: filters.Node | None, meta: sql.Composable, params: Params) -> sql.Composable:
    """A boolean SQL expression (never NULL) over the jsonb expression ``meta``."""
    if node is None:
        return sql.SQL("true")
    if isinstance(node, filters.Cmp):
        return _leaf(node, meta, params)
    if isinstance(node, filters.Not):
        return sql.SQL("NOT ({})").format(to_sql(node.child, meta, params))
    joiner = sql.SQL(" AND ") if isinstance(node, filters.And) else sql.SQL(" OR ")
    return sql.SQL("({})").format(joiner.join(to_sql(c, meta, params) for c in node.children))


# --------------------------------------------------------------------------------- vectors

_HEADER = struct.Struct(">HH")  # pgvector's binary format: dimensions, unused, big-endian float4s


class VectorDumper(Dumper):
    """numpy array -> pgvector ``vector`` in binary; subclassed per database with its type oid."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        arr = np.asarray(obj, dtype=">f4")
        return _HEADER.pack(arr.shape[0], 0) + arr.tobytes()


class VectorLoader(Loader):
    """pgvector ``vector`` in binary -> float32 numpy array."""

    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        dim, _ = _HEADER.unpack_from(data)
        return np.frombuffer(data, dtype=">f4", count=dim, offset=_HEADER.size).astype(np.float32)


_DUMPERS: dict[int, type[Dumper]] = {}


def vector_dumper(oid: int) -> type[Dumper]:
    if oid not in _DUMPERS:
        _DUMPERS[oid] = type("BoundVectorDumper", (VectorDumper,), {"oid": oid})
    return _DUMPERS[oid]


# ---------------------------------------------------------------------------------- layout

TEXT_COLUMNS = ("text", "content", "document", "page_content", "chunk")
METADATA_COLUMNS = ("metadata", "metadata_", "cmetadata", "meta")
HASH_COLUMN = "content_hash"
TEXT_TYPES = ("text", "varchar", "bpchar", "name")
_OPCLASSES = {
    "vector_cosine_ops": Distance.COSINE,
    "vector_l2_ops": Distance.EUCLID,
    "vector_ip_ops": Distance.DOT,
    "vector_l1_ops": Distance.MANHATTAN,
}

COLUMNS_SQL = """
SELECT a.attname, t.typname, a.atttypmod,
       coalesce(a.attnum = ANY(pk.indkey::int2[]), false), coalesce(cardinality(pk.indkey::int2[]), 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
ORDER BY a.attnum
"""

INDEXES_SQL = """
SELECT a.attname, am.amname, opc.opcname
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
JOIN pg_opclass opc ON opc.oid = i.indclass[0]
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""


@dataclass(frozen=True)
class Layout:
    """Where a collection's parts are in its table (ours, or one made by another tool)."""

    table: sql.Composable
    id_col: str
    id_is_text: bool
    vector_col: str
    dim: int  # 0 for a ``vector`` column declared without dimensions
    text_col: str | None
    meta_col: str | None
    meta_is_jsonb: bool
    hash_col: str | None
    distance: Distance
    hnsw: bool  # an HNSW vector_cosine_ops index: searched through it, with iterative scans
    has_bm25: bool = False  # the bm25 sparsevec and bm25_terms int4[] columns (pgvector_lexical)
    lexical: LexicalSpec | None = None  # a hybrid collection: has_bm25 and recorded in the catalogue

    def id_text(self) -> sql.Composable:
        """The primary key as text (the record id)."""
        col = ident(self.id_col)
        return col if self.id_is_text else sql.SQL("{}::text").format(col)

    def select_list(self, with_vectors: bool) -> sql.Composable:
        """id, text, metadata, hash[, vector] for :func:`record`; NULL where the table has no such
        column; aliased, so a query can wrap them in a CTE."""
        def col(name: str | None, alias: str) -> sql.Composable:
            return sql.SQL("{} AS {}").format(ident(name) if name else sql.SQL("NULL"), ident(alias))

        cols = [sql.SQL("{} AS _id").format(self.id_text()), col(self.text_col, "_text"),
                col(self.meta_col, "_meta"), col(self.hash_col, "_hash")]
        if with_vectors:
            cols.append(col(self.vector_col, "_vec"))
        return sql.SQL(", ").join(cols)

    def refusal(self, record: Record) -> str | None:
        """Why this table cannot hold ``record`` as it is (None when it can)."""
        for part, value in (("id", record.id), ("text", record.text), ("metadata", record.metadata),
                            ("content hash", record.content_hash)):
            if _has_nul(value):
                return f"PostgreSQL text cannot hold the NUL character (\\x00), found in the {part}"
        if record.text is not None and self.text_col is None:
            return f"the table has no text column ({', '.join(TEXT_COLUMNS)}) for the text"
        if record.metadata and self.meta_col is None:
            return f"the table has no json/jsonb metadata column ({', '.join(METADATA_COLUMNS)})"
        return None

    def meta_expr(self) -> sql.Composable:
        if self.meta_col is None:
            return sql.SQL("'{}'::jsonb")
        col = ident(self.meta_col)
        return col if self.meta_is_jsonb else sql.SQL("({}::jsonb)").format(col)


class LayoutError(Exception):
    """A table bge-vdb cannot use as a collection; the message says why."""


def read_layout(table: sql.Composable, name: str, columns: list[tuple[Any, ...]],
                indexes: list[tuple[Any, ...]]) -> Layout:
    """Build the layout from COLUMNS_SQL and INDEXES_SQL rows."""
    vectors = [c for c in columns if c[1] == "vector"]
    if len(vectors) != 1:
        found = ", ".join(str(c[0]) for c in vectors) or "none"
        raise LayoutError(f"table {name!r} needs exactly one pgvector `vector` column (found: {found})")
    vector_col, dim = str(vectors[0][0]), max(int(vectors[0][2]), 0)
    pk = [c for c in columns if c[3]]
    if len(pk) != 1 or int(pk[0][4]) != 1:
        raise LayoutError(f"table {name!r} needs a single-column primary key to serve as the record id")
    by_name = {str(c[0]): c for c in columns}
    text_col = next((n for n in TEXT_COLUMNS if n in by_name and by_name[n][1] in TEXT_TYPES), None)
    meta_col = next((n for n in METADATA_COLUMNS if n in by_name and by_name[n][1] in ("jsonb", "json")), None)
    hash_col = HASH_COLUMN if HASH_COLUMN in by_name and by_name[HASH_COLUMN][1] in TEXT_TYPES else None
    opclasses = {(str(am), str(opc)) for col, am, opc in indexes if col == vector_col}
    metrics = {_OPCLASSES[opc] for _, opc in opclasses if opc in _OPCLASSES}
    # No vector index: no metric is fixed, and exact search uses cosine.
    distance = Distance.COSINE if not metrics or Distance.COSINE in metrics else sorted(metrics)[0]
    return Layout(
        table=table, id_col=str(pk[0][0]), id_is_text=pk[0][1] in TEXT_TYPES,
        vector_col=vector_col, dim=dim, text_col=text_col, meta_col=meta_col,
        meta_is_jsonb=meta_col is not None and by_name[meta_col][1] == "jsonb", hash_col=hash_col,
        distance=distance, hnsw=("hnsw", "vector_cosine_ops") in opclasses,
        has_bm25=by_name.get("bm25", ("", ""))[1] == "sparsevec" and by_name.get("bm25_terms", ("", ""))[1] == "_int4",
    )


def record(row: Sequence[Any], with_vectors: bool) -> Record:
    """A Record from a row of :meth:`Layout.select_list`."""
    meta = row[2]
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):  # a table made elsewhere holding a JSON array or scalar
        meta = {"metadata": meta}
    return Record(id=row[0], vector=row[4] if with_vectors else None, text=row[1],
                  metadata=meta, content_hash=row[3])


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


# ---------------------------------------------------------------------------------- writes


def catalogue_exists(cur: Any, schema: str, catalogue: str) -> bool:
    # The quoted name is a value here, not SQL: plain Identifier, no doubled "%".
    row = cur.execute("SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, catalogue).as_string(cur),)).fetchone()
    return bool(row and row[0])


def catalogue_row(cur: Any, schema: str, catalogue: str, name: str) -> dict[str, Any]:
    """The catalogue's row for ``name`` as a dict ({} when there is none, or no catalogue): read
    as JSON, so a catalogue made before a column was added reads without it."""
    if not catalogue_exists(cur, schema, catalogue):
        return {}
    row = cur.execute(sql.SQL("SELECT to_jsonb(c) FROM {} c WHERE name = %s").format(ident(schema, catalogue)),
                      (name,)).fetchone()
    return dict(row[0]) if row else {}


def create_catalogue(cur: Any, schema: str, catalogue: str) -> None:
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, dim integer NOT NULL, "
                        "distance text NOT NULL, fingerprint jsonb, index jsonb, "
                        "created_at timestamptz NOT NULL DEFAULT now())").format(ident(schema, catalogue)), {})


def add_hnsw(cur: Any, table: sql.Composable, column: str, m: int, ef_construction: int) -> None:
    cur.execute(sql.SQL("CREATE INDEX ON {} USING hnsw ({} vector_cosine_ops) WITH (m = {}, ef_construction = {})")
                .format(table, ident(column), sql.Literal(m), sql.Literal(ef_construction)), {})


def _target(layout: Layout) -> tuple[list[sql.Composable], sql.Composable]:
    names = [layout.id_col, layout.vector_col, layout.text_col, layout.meta_col, layout.hash_col]
    names += ["bm25", "bm25_terms"] if layout.lexical else []
    cols: list[sql.Composable] = [ident(c) for c in names if c]
    update = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
        cols[0], sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=c) for c in cols[1:]))
    return cols, update


def copy_rows(cur: Any, layout: Layout, rows: list[list[Any]], vector_oid: int, sparse_oid: int = 0) -> None:
    """Binary COPY into a temporary table, then one INSERT ... ON CONFLICT DO UPDATE: faster than a
    pipelined executemany of the same rows (benchmarks/pgvector.py writes). The table is made
    and dropped inside the caller's transaction: a rollback or a lost connection leaves nothing.
    ``rows`` are [id, vector, text?, metadata JSON?, hash?, bm25?, bm25_terms?] as the layout has
    those columns (``sparse_oid``: the sparsevec type's, for a hybrid collection)."""
    cols, update = _target(layout)
    stage = ident("bge_vdb_stage")
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{s}; CREATE TEMP TABLE {s} AS SELECT {c} FROM {t} "
                        "WITH NO DATA").format(s=stage, c=sql.SQL(", ").join(cols), t=layout.table), {})
    types = [25, vector_oid] + [25] * bool(layout.text_col)  # 25: text, also for varchar columns
    types += [3802 if layout.meta_is_jsonb else 114] * bool(layout.meta_col) + [25] * bool(layout.hash_col)
    types += [sparse_oid, 1007] if layout.lexical else []  # 1007: int4[]
    meta_at = 2 + bool(layout.text_col) if layout.meta_col else -1
    with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(stage)) as copy:
        copy.set_types(types)
        for row in rows:
            if meta_at >= 0:  # already exact JSON text: sent as it is
                row[meta_at] = Jsonb(row[meta_at], dumps=_as_is)
            copy.write_row(row)
    # ORDER BY id: rows are locked in one order, so concurrent writers cannot deadlock.
    cur.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s} ORDER BY {i}{u}; DROP TABLE {s}").format(
        t=layout.table, c=sql.SQL(", ").join(cols), s=stage, i=cols[0], u=update), {})


def insert_rows(cur: Any, layout: Layout, rows: list[list[Any]]) -> None:
    """One pipelined INSERT ... ON CONFLICT per row, strings untyped so PostgreSQL reads them as
    the column's type: for tables made elsewhere whose id is not text (uuid, bigint...)."""
    cols, update = _target(layout)
    holders = [sql.Placeholder(format=PyFormat.BINARY) if i == 1 else sql.Placeholder() for i in range(len(cols))]
    cur.adapters.register_dumper(str, StrDumperUnknown)
    cur.executemany(sql.SQL("INSERT INTO {} ({}) VALUES ({}){}").format(
        layout.table, sql.SQL(", ").join(cols), sql.SQL(", ").join(holders), update), rows)


def _as_is(text: str) -> str:
    return text
