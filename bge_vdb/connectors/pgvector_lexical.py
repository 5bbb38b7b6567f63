"""BM25 on PostgreSQL + pgvector: the lexical side of hybrid collections, with ``sparsevec``.

A hybrid collection's table has two more columns::

    bm25        sparsevec   the record's BM25 term weights without IDF (bge_vdb.lexical), NULL
                            when its text has no terms
    bm25_terms  int4[]      the terms it holds (their slots, below), with a GIN index

computed here when a record is written, exactly as for Qdrant and Pinecone. A term is stored at
its *slot*, ``term_id % SLOTS``: pgvector's sparse vectors have at most 10**9 dimensions, fewer
than the 2**32 term ids, so two terms share a slot about 4 times as often as they share a term id
(about 5 pairs among 100,000 terms); terms sharing a slot count as one term, as on Qdrant.

**IDF from the data, not from kept statistics.** A lexical search first counts, in the same
transaction, ``N`` (the table's rows) and each query term's document frequency
(``bm25_terms @> ARRAY[slot]``, served by the GIN index), then sends the query as a sparse vector
of ``count * idf`` and ranks the rows holding some query term (``bm25_terms && slots``, the GIN
index again) by inner product (``<#>``): a scan of those rows, not an approximate index. Pinecone
needs journaled statistics because it has no transactions and no way to count; here the counts
are read from the rows themselves at query time, so nothing can drift: incremental syncs,
overwrites, deletes by id or by filter, concurrent writers, a write that failed half-way (rolled
back) and rows deleted with plain SQL all leave N and the frequencies right by construction (a
text changed with plain SQL keeps its old ``bm25`` columns: write through bge-vdb). The
price is a GIN-served count per query term (each proportional to that term's frequency) on every
lexical search, and GIN upkeep on writes; stopwords are dropped, so the commonest words cost nothing.

``sparsevec`` needs pgvector 0.7 or newer: older ones are refused (NotHybrid) saying so.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from .. import filters, lexical
from ..errors import ConnectorError, InputError, NotHybrid
from ..types import Hit, Record
from . import pgvector_sql as q

SLOTS = 1_000_000_000  # pgvector's largest sparsevec dimension (SPARSEVEC_MAX_DIM)
MAX_NONZERO = 16_000  # pgvector's largest number of non-zero elements in one sparsevec
SPARSEVEC_SINCE = (0, 7)
BM25_COL = "bm25"
TERMS_COL = "bm25_terms"


def slot(term: str) -> int:
    """Where ``term`` is in a sparse vector and in ``bm25_terms`` (see the module docstring)."""
    return lexical.term_id(term) % SLOTS


def version_tuple(text: str) -> tuple[int, ...]:
    """``"0.8.1"`` -> ``(0, 8, 1)`` (what ``pg_extension.extversion`` says)."""
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def refusal(version: str | None, where: str) -> str | None:
    """Why pgvector ``version`` (None: not available at all) cannot hold hybrid collections."""
    if version is None:
        return f"{where} has no pgvector extension available"
    if version_tuple(version) < SPARSEVEC_SINCE:
        return (f"{where} has pgvector {version}, which has no sparsevec type for BM25 term weights "
                f"(use pgvector 0.7 or newer)")
    return None


def record_terms(record: Record, spec: lexical.LexicalSpec) -> tuple[dict[int, float] | None, list[int] | None]:
    """The ``bm25`` and ``bm25_terms`` values of a record (None, None when its text has no terms)."""
    weights = lexical.term_weights(lexical.analyze(record.text or "", spec), spec)
    if not weights:
        return None, None
    merged: dict[int, float] = {}
    for term, w in weights.items():
        s = slot(term)
        merged[s] = merged.get(s, 0.0) + w
    return merged, sorted(merged)


def too_many_terms(sparse: dict[int, float] | None) -> str | None:
    if sparse is not None and len(sparse) > MAX_NONZERO:
        return (f"the text has {len(sparse):,} distinct terms; a pgvector sparsevec holds at most "
                f"{MAX_NONZERO:,}: split the document")
    return None


def query_counts(query: lexical.LexicalQuery) -> dict[int, int]:
    """The query's term counts by slot."""
    counts: dict[int, int] = {}
    for term, c in query.counts.items():
        s = slot(term)
        counts[s] = counts.get(s, 0) + c
    return counts


def query_vector(counts: dict[int, int], n_docs: int, df: dict[int, int]) -> dict[int, float] | None:
    """``count * idf`` over the query's slots found in the corpus, None when none is."""
    found = {s: c * lexical.idf(n_docs, df[s]) for s, c in counts.items() if df.get(s, 0) > 0}
    if len(found) > MAX_NONZERO:
        raise InputError(f"the query has {len(found):,} distinct terms found in the corpus, over "
                         f"pgvector's {MAX_NONZERO:,} non-zero elements of a sparsevec")
    return found or None


def statistics_sql(table: sql.Composable) -> sql.Composed:
    """N and the document frequency of each slot of ``%(slots)s``, in that order."""
    return sql.SQL(
        "SELECT (SELECT count(*) FROM {t}), ARRAY(SELECT (SELECT count(*) FROM {t} WHERE {c} @> ARRAY[s]) "
        "FROM unnest(%(slots)s::int4[]) WITH ORDINALITY AS u(s, i) ORDER BY i)").format(
            t=table, c=sql.Identifier(TERMS_COL))


def columns_sql(table: sql.Composable) -> list[sql.Composed]:
    """What makes a new table hybrid: the two columns and the GIN index (two statements)."""
    return [sql.SQL("ALTER TABLE {} ADD COLUMN {} sparsevec, ADD COLUMN {} int4[]").format(
                table, sql.Identifier(BM25_COL), sql.Identifier(TERMS_COL)),
            sql.SQL("CREATE INDEX ON {} USING gin ({})").format(table, sql.Identifier(TERMS_COL))]


_SPARSE_HEADER = struct.Struct(">iii")


class SparseDumper(Dumper):
    """``{slot: value}`` -> pgvector ``sparsevec`` in binary (dim, nnz, unused, int32 indices
    from 0, float4 values, big-endian); subclassed per database with its type oid."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        keys = sorted(obj)
        return (_SPARSE_HEADER.pack(SLOTS, len(keys), 0) + struct.pack(f">{len(keys)}i", *keys)
                + struct.pack(f">{len(keys)}f", *(obj[k] for k in keys)))


_DUMPERS: dict[int, type[Dumper]] = {}


def sparse_dumper(oid: int) -> type[Dumper]:
    if oid not in _DUMPERS:
        _DUMPERS[oid] = type("BoundSparseDumper", (SparseDumper,), {"oid": oid})
    return _DUMPERS[oid]


class SparseWeights(dict[int, float]):
    """A dict of slot -> weight that is dumped as a sparsevec (plain dicts are dumped as JSON)."""


class PgVectorHybrid:
    """The hybrid half of :class:`~bge_vdb.connectors.pgvector.PgVectorStore` (a mixin: it uses
    the store's ``_layout``, ``_read``, ``_vectors`` and ``_sparse_oid``)."""

    _sparse_oid: int | None

    if TYPE_CHECKING:  # provided by PgVectorStore
        def _layout(self, cur: psycopg.Cursor[Any], name: str) -> q.Layout: ...
        def _read(self, action: str, fn: Callable[[psycopg.Cursor[Any]], Any]) -> Any: ...
        def _vectors(self, cur: psycopg.Cursor[Any]) -> None: ...

    def _sparse(self, cur: psycopg.Cursor[Any]) -> int:
        """Let this cursor send :class:`~.pgvector_lexical.SparseWeights` as ``sparsevec``."""
        if self._sparse_oid is None:
            row = cur.execute("SELECT to_regtype('sparsevec')::oid").fetchone()
            if not row or row[0] is None:
                raise ConnectorError(f"pgvector in {self!r} has no sparsevec type (pgvector 0.7 or newer has)")
            self._sparse_oid = int(row[0])
        cur.adapters.register_dumper(SparseWeights, sparse_dumper(self._sparse_oid))
        return self._sparse_oid

    def hybrid_refusal(self) -> str | None:
        """Why this database cannot hold hybrid collections: a pgvector older than 0.7 (no
        ``sparsevec``) or none at all; None when it can."""
        def run(cur: psycopg.Cursor[Any]) -> str | None:
            row = cur.execute("SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                              "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))").fetchone()
            return refusal(row[0] if row else None, repr(self))

        return self._read("reading the pgvector version", run)  # type: ignore[no-any-return]

    def lexical_query(
        self, name: str, query: lexical.LexicalQuery, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        """BM25 with IDF counted from the rows in the same transaction (see :mod:`.pgvector_lexical`)."""
        def run(cur: psycopg.Cursor[Any]) -> list[Any]:
            layout = self._layout(cur, name)
            if layout.lexical is None:
                raise NotHybrid(f"collection {name!r} is dense-only: it has no bm25 column")
            counts = query_counts(query)
            slots = sorted(counts)
            row = cur.execute(statistics_sql(layout.table), {"slots": slots}).fetchone()
            assert row is not None
            weights = query_vector(counts, int(row[0]), dict(zip(slots, map(int, row[1]), strict=True)))
            if weights is None:
                return []
            self._sparse(cur)
            if with_vectors:
                self._vectors(cur)
            params = q.Params()
            cond = q.to_sql(where, layout.meta_expr(), params)
            distance = sql.SQL("({} <#> {})").format(q.ident(BM25_COL),
                                                     params.add(SparseWeights(weights), binary=True))
            stmt = sql.SQL("SELECT {}, {} AS _distance FROM {} WHERE {} && {} AND {} ORDER BY {}, {} LIMIT {}").format(
                layout.select_list(with_vectors), distance, layout.table, q.ident(TERMS_COL),
                params.add(sorted(weights), "int4[]"), cond, distance, layout.id_text(), sql.Literal(k))
            return cur.execute(stmt, params.values, binary=True).fetchall()

        rows = self._read(f"BM25 search of {name!r}", run)
        hits = []
        for row in rows:
            rec = q.record(row, with_vectors)
            hits.append(Hit(id=rec.id, score=-float(row[-1]), text=rec.text, metadata=rec.metadata, vector=rec.vector))
        return hits

