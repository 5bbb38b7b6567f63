"""PostgreSQL + pgvector connector: any server (``postgresql://``), or an embedded one (``pgvector:///dir``).

Layout of a collection made here: one table named after the collection::

    id text COLLATE "C" PRIMARY KEY, embedding vector(dim) NOT NULL, text text,
    metadata jsonb NOT NULL, content_hash text

and a row in the catalogue table ``bge_vdb_collections`` (name, dim, distance, fingerprint, index).
A table made by another tool is a collection too when it has one ``vector`` column and a
single-column primary key (its text and jsonb columns are found by name, see pgvector_sql.py).

Search is exact (a sequential scan) unless the collection has an HNSW ``vector_cosine_ops`` index
(``index="hnsw"`` at creation). Then it goes through the index with ``hnsw.ef_search`` and
iterative scans, so a filter that drops most candidates still yields k results; should the index
still come back short, the query is answered exactly instead. Filters are translated in
:mod:`bge_vdb.connectors.pgvector_sql`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .. import filters
from ..errors import (
    CollectionError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    FailedRecord,
    InputError,
    NotHybrid,
)
from ..lexical import LexicalSpec
from ..retry import RetryPolicy, call_with_retry
from ..store import Cursor, VectorStore, refuse_unknown
from ..types import CollectionSpec, Hit, Record
from . import pgvector_lexical as lex
from . import pgvector_sql as q
from .pgvector_client import KEYWORD_OPTIONS, PgClient, map_errors, parse_url
from .pgvector_embedded import EmbeddedServer, check_directory

CATALOGUE = "bge_vdb_collections"
MAX_NAME_BYTES = 63  # PostgreSQL truncates longer identifiers: refuse them instead
DEFAULT_EF_SEARCH = 100
_LOCK_KEY = 0x6267_6576_6462  # pg_advisory_xact_lock key serialising our DDL ("bgevdb")
_INDEXES = (None, "hnsw")


class PgVectorStore(lex.PgVectorHybrid, VectorStore):
    """PostgreSQL with pgvector. Build it with :meth:`from_url`, or around a psycopg connection,
    a connection pool or a libpq connection string: ``PgVectorStore(conn)``."""

    scheme: ClassVar[str] = "postgresql"
    supports_lexical: ClassVar[bool] = True  # with pgvector >= 0.7 (sparsevec), see pgvector_lexical
    max_batch_count: ClassVar[int] = 500
    max_batch_bytes: ClassVar[int] = 16 * 1024 * 1024

    def __init__(self, source: Any, *, schema: str = "public", index: str | None = None, m: int = 16,
                 ef_construction: int = 64, ef_search: int = DEFAULT_EF_SEARCH,
                 retry_policy: RetryPolicy | None = None, where: str | None = None,
                 server: EmbeddedServer | None = None, secret: str | None = None) -> None:
        if index not in _INDEXES:
            raise ConfigError(f"index must be 'hnsw' or None (exact search), got {index!r}")
        for key, value in (("m", m), ("ef_construction", ef_construction), ("ef_search", ef_search)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive int, got {value!r}")
        if not isinstance(schema, str) or not schema:
            raise ConfigError(f"schema must be a non-empty string, got {schema!r}")
        self._client = PgClient(source)
        self._where = where or ("a user-supplied connection" if not isinstance(source, str) else "PostgreSQL")
        self._schema = schema
        self._index, self._m, self._ef_construction, self._ef_search = index, m, ef_construction, ef_search
        self._server = server
        self._secret = secret
        self._layouts: dict[str, q.Layout] = {}
        self._vector_oid: int | None = None
        self._sparse_oid: int | None = None
        #: How many HNSW searches came back short and were answered exactly instead.
        self.exact_fallbacks = 0
        if retry_policy is not None:
            self.retry_policy = retry_policy

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PgVectorStore:
        """``postgresql://user:pass@host:5432/db?sslmode=require`` (also ``postgres://``; the
        password from the URL, ``PGPASSWORD`` or ~/.pgpass, as libpq does), or
        ``pgvector:///abs/dir`` / ``pgvector://./rel/dir`` (an embedded server for that directory,
        stopped on close). Options in the query string or as keywords: ``schema``, ``index=hnsw``,
        ``m``, ``ef_construction``, ``ef_search``; libpq takes the other query parameters."""
        refuse_unknown(options, KEYWORD_OPTIONS, "pgvector option")
        cls.check_url(url)
        parsed = parse_url(url)
        for key, value in parsed.settings.items():
            options.setdefault(key, value)
        if parsed.embedded is None:
            return cls(parsed.conninfo, where=parsed.shown, secret=parsed.secret, **options)
        server = EmbeddedServer(parsed.embedded)
        conninfo = server.acquire()
        try:
            return cls(conninfo, where=f"pgvector://{server.directory}", server=server, **options)
        except BaseException:
            server.release()
            raise

    @classmethod
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        """Known options only (ours, and libpq's for a server); an embedded store's path must be a
        directory, and with ``must_exist`` one holding a database already."""
        parsed = parse_url(url)
        if parsed.embedded is not None:
            check_directory(parsed.embedded, must_exist=must_exist)

    def __repr__(self) -> str:  # never shows a password: _where is built without it
        return f"PgVectorStore({self._where!r})"

    def close(self) -> None:
        self._client.close()
        if self._server is not None:
            server, self._server = self._server, None
            server.release()

    # ---------------------------------------------------------------------------- errors
    def _map_errors(self, action: str) -> Any:
        return map_errors(self._where, action, self._secret, on_schema_change=self._forget)

    def _forget(self) -> None:
        """Tables (or the extension) changed under us: read layouts and the type oid again."""
        self._layouts.clear()
        self._vector_oid = None
        self._sparse_oid = None

    def _read(self, action: str, fn: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        with self._map_errors(action):
            return self._client.read(fn)

    def _write(self, action: str, fn: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        with self._map_errors(action):
            return self._client.write(fn)

    # ----------------------------------------------------------------------- helpers
    def _table(self, name: str) -> sql.Composable:
        return q.ident(self._schema, name)

    @staticmethod
    def _check_name(name: str) -> None:
        if len(name.encode()) > MAX_NAME_BYTES or "\x00" in name:
            raise InputError(f"collection name {name!r} is not a PostgreSQL table name "
                             f"(at most {MAX_NAME_BYTES} bytes, no NUL)")
        if name == CATALOGUE:
            raise InputError(f"{CATALOGUE!r} is bge-vdb's catalogue table, not a collection")

    def _load_layout(self, cur: psycopg.Cursor[Any], name: str) -> q.Layout | None:
        columns = cur.execute(q.COLUMNS_SQL, (self._schema, name)).fetchall()
        if not columns:
            return None
        indexes = cur.execute(q.INDEXES_SQL, (self._schema, name)).fetchall()
        try:
            layout = q.read_layout(self._table(name), name, columns, indexes)
        except q.LayoutError as exc:
            raise CollectionError(str(exc)) from None
        if layout.has_bm25:  # hybrid when the catalogue also records its lexical settings
            recorded = q.catalogue_row(cur, self._schema, CATALOGUE, name).get("lexical")
            if recorded:
                layout = replace(layout, lexical=LexicalSpec.from_dict(recorded))
        return layout

    def _layout(self, cur: psycopg.Cursor[Any], name: str) -> q.Layout:
        layout = self._layouts.get(name)
        if layout is None:
            layout = self._load_layout(cur, name)
            if layout is None:
                raise CollectionNotFound(f"collection {name!r} does not exist in {self!r}")
            self._layouts[name] = layout
        return layout

    def _vectors(self, cur: psycopg.Cursor[Any]) -> None:
        """Let this cursor send numpy arrays as ``vector`` and read ``vector`` as numpy arrays."""
        if self._vector_oid is None:
            row = cur.execute("SELECT to_regtype('vector')::oid").fetchone()
            if not row or row[0] is None:
                raise ConnectorError(f"the pgvector extension is not installed in {self!r}")
            self._vector_oid = int(row[0])
        cur.adapters.register_dumper(np.ndarray, q.vector_dumper(self._vector_oid))
        cur.adapters.register_loader(self._vector_oid, q.VectorLoader)

    # ------------------------------------------------------------------------ collections
    def list_collections(self) -> list[str]:
        def run(cur: psycopg.Cursor[Any]) -> list[str]:
            rows = cur.execute(
                "SELECT DISTINCT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND t.typname = 'vector'",
                (self._schema,)).fetchall()
            return sorted(str(r[0]) for r in rows)

        return self._read("listing collections", run)  # type: ignore[no-any-return]

    def describe_collection(self, name: str) -> CollectionSpec | None:
        self._check_name(name)

        def run(cur: psycopg.Cursor[Any]) -> CollectionSpec | None:
            self._layouts.pop(name, None)
            layout = self._load_layout(cur, name)
            if layout is None:
                return None
            self._layouts[name] = layout
            fingerprint = q.catalogue_row(cur, self._schema, CATALOGUE, name).get("fingerprint")
            return CollectionSpec(name, layout.dim, layout.distance, fingerprint or None, layout.lexical)

        return self._read(f"describing collection {name!r}", run)  # type: ignore[no-any-return]

    def create_collection(self, spec: CollectionSpec) -> None:
        self._check_name(spec.name)
        if spec.lexical is not None and (why := self.hybrid_refusal()):
            raise NotHybrid(f"{why}, so it cannot hold a hybrid collection")
        catalogue = q.ident(self._schema, CATALOGUE)
        table = self._table(spec.name)
        index = {"method": "hnsw", "m": self._m, "ef_construction": self._ef_construction} if self._index else None

        def run(cur: psycopg.Cursor[Any]) -> None:
            # Two processes creating at once would collide on the system catalogues: take turns.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if self._load_layout(cur, spec.name) is not None:
                return
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            q.create_catalogue(cur, self._schema, CATALOGUE)
            cur.execute(sql.SQL(
                "CREATE TABLE {} (id text COLLATE \"C\" PRIMARY KEY, embedding vector({}) NOT NULL, "
                "text text, metadata jsonb NOT NULL DEFAULT '{{}}', content_hash text)").format(
                    table, sql.Literal(spec.dim)), {})
            if index:
                q.add_hnsw(cur, table, "embedding", self._m, self._ef_construction)
            if spec.lexical is not None:
                for statement in lex.columns_sql(table):
                    cur.execute(statement, {})
            cur.execute(sql.SQL(
                "INSERT INTO {} (name, dim, distance, fingerprint, index) VALUES (%s, %s, 'cosine', %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET dim = EXCLUDED.dim, distance = EXCLUDED.distance, "
                "fingerprint = EXCLUDED.fingerprint, index = EXCLUDED.index, created_at = now()").format(catalogue),
                (spec.name, spec.dim, Jsonb(dict(spec.fingerprint)) if spec.fingerprint else None,
                 Jsonb(index) if index else None))
            if spec.lexical is not None:
                cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS lexical jsonb").format(catalogue), {})
                cur.execute(sql.SQL("UPDATE {} SET lexical = %s WHERE name = %s").format(catalogue),
                            (Jsonb(spec.lexical.to_dict()), spec.name))

        self._layouts.pop(spec.name, None)
        self._write(f"creating collection {spec.name!r}", run)

    def drop_collection(self, name: str) -> None:
        self._check_name(name)

        def run(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._table(name)), {})
            if q.catalogue_exists(cur, self._schema, CATALOGUE):
                cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(
                    q.ident(self._schema, CATALOGUE)), (name,))

        self._layouts.pop(name, None)
        self._write(f"dropping collection {name!r}", run)

    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        catalogue = q.ident(self._schema, CATALOGUE)

        def run(cur: psycopg.Cursor[Any]) -> None:
            layout = self._layout(cur, name)
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            q.create_catalogue(cur, self._schema, CATALOGUE)
            cur.execute(sql.SQL(
                "INSERT INTO {} (name, dim, distance, fingerprint) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET fingerprint = EXCLUDED.fingerprint").format(catalogue),
                (name, layout.dim, layout.distance.value, Jsonb(dict(fingerprint)) if fingerprint else None))

        self._write(f"storing the fingerprint of {name!r}", run)

    def create_index(self, name: str, *, m: int | None = None, ef_construction: int | None = None) -> None:
        """Build an HNSW cosine index on an existing collection; searches then go through it.

        Building once after a large first load is several times faster than keeping the index up
        to date row by row (what ``index="hnsw"`` at creation does). Nothing happens when the
        collection already has one.
        """
        m, ef_construction = m or self._m, ef_construction or self._ef_construction
        catalogue = q.ident(self._schema, CATALOGUE)

        def run(cur: psycopg.Cursor[Any]) -> None:
            self._layouts.pop(name, None)
            layout = self._layout(cur, name)
            if layout.hnsw:
                return
            q.add_hnsw(cur, layout.table, layout.vector_col, m, ef_construction)
            if q.catalogue_exists(cur, self._schema, CATALOGUE):
                cur.execute(sql.SQL("UPDATE {} SET index = %s WHERE name = %s").format(catalogue),
                            (Jsonb({"method": "hnsw", "m": m, "ef_construction": ef_construction}), name))
            self._layouts.pop(name, None)

        call_with_retry(self._write, f"indexing {name!r}", run, policy=self.retry_policy)

    # ------------------------------------------------------------------------------ records
    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        def run(cur: psycopg.Cursor[Any]) -> list[FailedRecord]:
            layout = self._layout(cur, name)
            self._vectors(cur)
            sparse_oid = self._sparse(cur) if layout.lexical else 0
            refused: list[FailedRecord] = []
            rows = []
            for r in sorted(records, key=lambda r: r.id):  # one lock order: concurrent writers cannot deadlock
                terms = lex.record_terms(r, layout.lexical) if layout.lexical else None
                reason = layout.refusal(r) or (lex.too_many_terms(terms[0]) if terms else None)
                if reason:
                    refused.append(FailedRecord(r.id, reason))
                    continue
                row: list[Any] = [r.id, np.asarray(r.vector, dtype=np.float32)]
                row += [r.text] if layout.text_col else []
                row += [q.to_json(dict(r.metadata))] if layout.meta_col else []
                row += [r.content_hash] if layout.hash_col else []
                if terms is not None:
                    row += [lex.SparseWeights(terms[0]) if terms[0] else None, terms[1]]
                rows.append(row)
            if rows:
                if layout.id_is_text:
                    assert self._vector_oid is not None  # set by self._vectors(cur)
                    q.copy_rows(cur, layout, rows, self._vector_oid, sparse_oid)
                else:
                    q.insert_rows(cur, layout, rows)
            return refused

        return self._write(f"writing {len(records)} records to {name!r}", run)  # type: ignore[no-any-return]

    def _search(self, cur: psycopg.Cursor[Any], layout: q.Layout, vector: np.ndarray, k: int,
                where: filters.Node | None, with_vectors: bool, exact: bool) -> list[Any]:
        params = q.Params()
        cond = q.to_sql(where, layout.meta_expr(), params)
        distance = sql.SQL("({} <=> {})").format(q.ident(layout.vector_col),
                                                 params.add(np.asarray(vector, dtype=np.float32), binary=True))
        # Exact: ORDER BY distance + 0, which no index can serve, so the plan is a scan and a sort
        # whatever the settings. (Turning enable_indexscan off is not enough: psycopg prepares a
        # statement after 5 runs, and PostgreSQL may reuse a generic plan made with the index.)
        order = sql.SQL("{} + 0").format(distance) if exact else distance
        inner = sql.SQL("SELECT {}, {} AS _distance FROM {} WHERE {} ORDER BY {} LIMIT {}").format(
            layout.select_list(with_vectors), distance, layout.table, cond, order, sql.Literal(k))
        if exact:
            return cur.execute(inner, params.values, binary=True).fetchall()
        # Iterative scans: the index keeps searching until k rows pass the filter (pgvector >= 0.8).
        # relaxed_order finds more of them but returns them slightly out of order, and re-sorting
        # in SQL does not work: PostgreSQL 17+ drops an outer ORDER BY over a CTE it believes is
        # already sorted by the index (pgvector issue #862). So the k rows are sorted here.
        cur.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                    "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                    (str(min(1000, max(self._ef_search, k))),))
        rows = cur.execute(inner, params.values, binary=True).fetchall()
        return sorted(rows, key=lambda row: row[-1])

    def query(
        self, name: str, vector: np.ndarray, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        def run(cur: psycopg.Cursor[Any]) -> list[Any]:
            layout = self._layout(cur, name)
            self._vectors(cur)
            rows = self._search(cur, layout, vector, k, where, with_vectors, exact=not layout.hnsw)
            if layout.hnsw and len(rows) < k:
                # Short even with iterative scans (hnsw.max_scan_tuples reached): answer exactly.
                self.exact_fallbacks += 1
                rows = self._search(cur, layout, vector, k, where, with_vectors, exact=True)
            return rows

        rows = self._read(f"searching {name!r}", run)
        hits = []
        for row in rows:
            rec = q.record(row, with_vectors)
            hits.append(Hit(id=rec.id, score=1.0 - float(row[-1]), text=rec.text, metadata=rec.metadata,
                            vector=rec.vector))
        return hits

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        def run(cur: psycopg.Cursor[Any]) -> list[Any]:
            layout = self._layout(cur, name)
            if with_vectors:
                self._vectors(cur)
            stmt = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s::text[])").format(
                layout.select_list(with_vectors), layout.table, layout.id_text())
            return cur.execute(stmt, (list(ids),), binary=True).fetchall()

        rows = self._read(f"fetching from {name!r}", run)
        return [q.record(r, with_vectors) for r in rows]

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return

        def run(cur: psycopg.Cursor[Any]) -> None:
            layout = self._layout(cur, name)
            cur.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::text[])").format(
                layout.table, layout.id_text()), (list(ids),))

        self._write(f"deleting from {name!r}", run)

    def delete_where(self, name: str, where: filters.Node) -> int:
        def run(cur: psycopg.Cursor[Any]) -> int:
            layout = self._layout(cur, name)
            params = q.Params()
            cond = q.to_sql(where, layout.meta_expr(), params)
            cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(layout.table, cond), params.values)
            return cur.rowcount

        return int(self._write(f"deleting by filter from {name!r}", run))

    def scroll_page(
        self, name: str, cursor: Cursor, limit: int, where: filters.Node | None, with_vectors: bool
    ) -> tuple[list[Record], Cursor]:
        # Keyset paging on the primary key: stable under inserts and deletes of rows already seen.
        def run(cur: psycopg.Cursor[Any]) -> list[Any]:
            layout = self._layout(cur, name)
            if with_vectors:
                self._vectors(cur)
            params = q.Params()
            cond = q.to_sql(where, layout.meta_expr(), params)
            ident = q.ident(layout.id_col)
            after = sql.SQL("true") if cursor is None else sql.SQL("{} > {}").format(ident, params.add(cursor))
            stmt = sql.SQL("SELECT {}, {} AS _key FROM {} WHERE {} AND {} ORDER BY {} LIMIT {}").format(
                layout.select_list(with_vectors), ident, layout.table, after, cond, ident,
                sql.Literal(limit + 1))
            return cur.execute(stmt, params.values, binary=True).fetchall()

        rows = self._read(f"scrolling {name!r}", run)
        page = [q.record(r, with_vectors) for r in rows[:limit]]
        return page, (rows[limit - 1][-1] if len(rows) > limit else None)

    def count(self, name: str, where: filters.Node | None = None) -> int:
        def run(cur: psycopg.Cursor[Any]) -> int:
            layout = self._layout(cur, name)
            params = q.Params()
            cond = q.to_sql(where, layout.meta_expr(), params)
            row = cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(layout.table, cond),
                              params.values).fetchone()
            return int(row[0]) if row else 0

        return int(self._read(f"counting {name!r}", run))


