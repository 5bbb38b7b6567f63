"""The numpy reference store: exact cosine search over in-process arrays.

It defines the semantics the other connectors are tested against (filters via
:func:`bge_vdb.filters.matches`, ties broken by insertion order, BM25 and fusion exactly as
:mod:`bge_vdb.lexical` defines them, with term statistics kept up to date on every write). ``memory://`` opens a new empty
store; ``memory://NAME`` returns the same store for the same NAME within one process.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np

from .. import filters, lexical
from ..errors import CollectionNotFound, ConfigError, FailedRecord
from ..store import Cursor, VectorStore, refuse_unknown, url_options
from ..types import CollectionSpec, Hit, Record

_NAMED: dict[str, MemoryStore] = {}
_NAMED_LOCK = threading.Lock()


class _Table:
    def __init__(self, spec: CollectionSpec) -> None:
        self.spec = spec
        self.rows: dict[str, Record] = {}  # insertion ordered; an overwrite keeps the position
        # Hybrid collections: each record's BM25 term weights, and how many records hold a term.
        self.weights: dict[str, dict[str, float]] = {}
        self.df: Counter[str] = Counter()

    def index(self, rec: Record) -> None:
        self.unindex(rec.id)
        spec = self.spec.lexical
        if spec is not None:
            weights = lexical.term_weights(lexical.analyze(rec.text or "", spec), spec)
            self.weights[rec.id] = weights
            self.df.update(weights.keys())

    def unindex(self, rid: str) -> None:
        old = self.weights.pop(rid, None)
        if old:
            self.df.subtract(old.keys())


class MemoryStore(VectorStore):
    scheme: ClassVar[str] = "memory"
    supports_lexical: ClassVar[bool] = True

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._tables: dict[str, _Table] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStore:
        refuse_unknown(options, (), "memory store option")
        cls.check_url(url)
        name = urlsplit(url).netloc or None
        if name is None:
            return cls()
        with _NAMED_LOCK:
            if name not in _NAMED:
                _NAMED[name] = cls(name)
            return _NAMED[name]

    @classmethod
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        url_options(url, (), "memory store")
        if urlsplit(url).path not in ("", "/"):
            raise ConfigError(f"a memory store URL is memory:// or memory://NAME, got {url!r}")

    def __repr__(self) -> str:
        return f"MemoryStore({self.name!r})" if self.name else "MemoryStore()"

    def _table(self, name: str) -> _Table:
        try:
            return self._tables[name]
        except KeyError:
            raise CollectionNotFound(f"collection {name!r} does not exist") from None

    def list_collections(self) -> list[str]:
        return sorted(self._tables)

    def describe_collection(self, name: str) -> CollectionSpec | None:
        t = self._tables.get(name)
        return t.spec if t else None

    def create_collection(self, spec: CollectionSpec) -> None:
        with self._lock:
            self._tables.setdefault(spec.name, _Table(spec))

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)

    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        t = self._table(name)
        t.spec = replace(t.spec, fingerprint=copy.deepcopy(fingerprint))

    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        t = self._table(name)
        with self._lock:
            for r in records:
                t.rows[r.id] = Record(
                    id=r.id,
                    vector=np.array(r.vector, dtype=np.float32),
                    text=r.text,
                    metadata=copy.deepcopy(dict(r.metadata)),
                    content_hash=r.content_hash,
                )
                t.index(r)
        return []

    @staticmethod
    def _out(r: Record, with_vectors: bool) -> Record:
        return Record(
            id=r.id,
            vector=r.vector.copy() if with_vectors else None,
            text=r.text,
            metadata=copy.deepcopy(dict(r.metadata)),
            content_hash=r.content_hash,
        )

    def query(
        self, name: str, vector: np.ndarray, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        t = self._table(name)
        rows = [r for r in t.rows.values() if filters.matches(where, r.metadata)]
        if not rows:
            return []
        mat = np.stack([r.vector for r in rows])
        scores = mat @ np.asarray(vector, dtype=np.float32)
        return self._ranked(rows, scores, k, with_vectors)

    def lexical_query(
        self, name: str, query: lexical.LexicalQuery, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        t = self._table(name)
        n_docs = len(t.rows)  # every record counts, with or without text (as in Milvus and Weaviate)
        with self._lock:
            rows, scores = [], []
            for r in t.rows.values():
                weights = t.weights.get(r.id)
                if weights and any(term in weights for term in query.counts) and filters.matches(where, r.metadata):
                    rows.append(r)
                    scores.append(lexical.bm25(query, weights, n_docs, t.df))
        return self._ranked(rows, np.asarray(scores, dtype=np.float64), k, with_vectors)

    @staticmethod
    def _ranked(rows: Sequence[Record], scores: np.ndarray, k: int, with_vectors: bool) -> list[Hit]:
        # Stable sort on -score keeps insertion order among ties.
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(
                id=rows[i].id,
                score=float(scores[i]),
                text=rows[i].text,
                metadata=copy.deepcopy(dict(rows[i].metadata)),
                vector=rows[i].vector.copy() if with_vectors else None,
            )
            for i in order
        ]

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        t = self._table(name)
        return [self._out(t.rows[i], with_vectors) for i in ids if i in t.rows]

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        t = self._table(name)
        with self._lock:
            for i in ids:
                t.rows.pop(i, None)
                t.unindex(i)

    def delete_where(self, name: str, where: filters.Node) -> int:
        t = self._table(name)
        with self._lock:
            doomed = [i for i, r in t.rows.items() if filters.matches(where, r.metadata)]
            for i in doomed:
                del t.rows[i]
                t.unindex(i)
        return len(doomed)

    def scroll_page(
        self, name: str, cursor: Cursor, limit: int, where: filters.Node | None, with_vectors: bool
    ) -> tuple[list[Record], Cursor]:
        # The cursor is the last id returned: stable under concurrent inserts at the end and
        # under deletes of rows already seen.
        t = self._table(name)
        ids = sorted(i for i, r in t.rows.items() if filters.matches(where, r.metadata))
        start = 0 if cursor is None else int(np.searchsorted(np.array(ids, dtype=object), cursor, side="right"))
        page_ids = ids[start : start + limit]
        page = [self._out(t.rows[i], with_vectors) for i in page_ids]
        nxt = page_ids[-1] if start + limit < len(ids) else None
        return page, nxt

    def count(self, name: str, where: filters.Node | None = None) -> int:
        t = self._table(name)
        if where is None:
            return len(t.rows)
        return sum(1 for r in t.rows.values() if filters.matches(where, r.metadata))
