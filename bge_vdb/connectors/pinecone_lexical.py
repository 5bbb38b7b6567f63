"""Term statistics for BM25 on Pinecone, kept correct as a corpus is written incrementally.

Pinecone scores a sparse query as a plain dot product, so bge-vdb stores each record's BM25 term
weights *without* IDF (they depend on the record alone, :mod:`bge_vdb.lexical`) and applies IDF
on the query side only: the query's sparse values are ``count(t) * idf(t)``, from ``N`` (the
records of the namespace) and ``n(t)`` (the records holding term ``t``). Those statistics live in
records of bge-vdb's reserved namespace (``__bge_vdb__``), never seen by searches of the data:

* ``N`` in one record, and the document frequencies in :data:`SHARDS` records, a term in the shard
  ``term_id % SHARDS``, packed as little-endian ``uint32`` pairs (term id, count), base64;
* every write and delete of hybrid records updates them from the difference between the terms the
  records held before (fetched first) and after. So that a retried or interrupted write can
  neither miss nor double-count a change, the old terms are first written to a *journal*; the
  data is written; the difference is applied to each statistics record, which remembers the
  journals it has applied; then the journal is deleted. The next write finds a journal left by a
  failed or killed write and finishes it: the difference is computed between the journal's old
  terms and what the records hold *now*, which is right whether or not the data write landed.

Limits: one writer at a time per collection (as ``sync_corpus`` writes): two processes writing
the same namespace at once can overwrite each other's statistics records (Pinecone has no
conditional writes). :meth:`TermStatistics.rebuild` recounts everything from the data. Searches
read the statistics and never repair them (read-only); a search racing a write sees the
statistics before or after that write.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import filters, lexical
from ..errors import CollectionNotFound, ConnectorError, InputError, NotHybrid
from ..types import CollectionSpec, Hit
from .pinecone_mapping import (
    MAX_TOP_K,
    META_NAMESPACE,
    index_name,
    pinecone_id,
    to_pinecone_filter,
    url_chunks,
)

SHARDS = 256
MAX_SPARSE_VALUES = 2048  # Pinecone's limit of non-zero values in one sparse vector
_JOURNAL_PART_BYTES = 30_000  # under Pinecone's 40 KB of metadata per record
_APPLIED_KEPT = 64
TermSets = dict[str, list[int] | None]  # pinecone id -> sorted term ids (None: no such record)


def pack(pairs: Iterable[tuple[int, int]]) -> str:
    arr = np.asarray(sorted(pairs), dtype="<u4").reshape(-1)
    return base64.b64encode(arr.tobytes()).decode()


def unpack(blob: str) -> dict[int, int]:
    arr = np.frombuffer(base64.b64decode(blob), dtype="<u4").reshape(-1, 2)
    return {int(a): int(b) for a, b in arr}


class TermStatistics:
    """N and document frequencies of one namespace of one index.

    ``index`` returns the index's data-plane client; ``record_id`` maps a reserved-namespace key
    to a Pinecone id; ``dim`` is the index dimension (a record needs a non-zero dense vector).
    """

    def __init__(self, index: Callable[[], Any], namespace: str, meta_namespace: str,
                 record_id: Callable[[str], str], dim: int) -> None:
        self._index = index
        self._ns = namespace
        self._meta_ns = meta_namespace
        self._id = record_id
        self._values = [1.0] + [0.0] * (dim - 1)
        self._prefix = record_id(f"lexical:{namespace}:")

    # ------------------------------------------------------------------------------- keys
    def _shard_id(self, shard: int | str) -> str:
        return self._id(f"lexical:{self._ns}:stats:{shard}")

    def _journal_id(self, batch: str, part: int) -> str:
        return self._id(f"lexical:{self._ns}:journal:{batch}:{part:04d}")

    # ------------------------------------------------------------------------------ reads
    def _fetch_meta(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        got = self._index().fetch(ids=list(ids), namespace=self._meta_ns).vectors
        return {i: dict(got[i].metadata or {}) for i in ids if i in got}

    def lookup(self, term_ids: Iterable[int]) -> tuple[int, dict[int, int]]:
        """``N`` and the document frequency of each of ``term_ids`` (0 when unseen)."""
        wanted = sorted(set(term_ids))
        shards = sorted({t % SHARDS for t in wanted})
        records = self._fetch_meta([self._shard_id("n")] + [self._shard_id(s) for s in shards])
        n_docs = int(records.get(self._shard_id("n"), {}).get("n", 0))
        df: dict[int, int] = {}
        for s in shards:
            blob = records.get(self._shard_id(s), {}).get("df")
            counts = unpack(blob) if blob else {}
            df.update((t, counts.get(t, 0)) for t in wanted if t % SHARDS == s)
        return n_docs, df

    def term_sets(self, data_ns_fetch: Callable[[Sequence[str]], Mapping[str, Any]], pids: Sequence[str]) -> TermSets:
        """The term ids each record holds now (from its sparse values), None when it does not exist."""
        got = data_ns_fetch(pids)
        out: TermSets = {}
        for pid in pids:
            vec = got.get(pid)
            if vec is None:
                out[pid] = None
            else:
                sparse = getattr(vec, "sparse_values", None)
                out[pid] = sorted(int(i) for i in (getattr(sparse, "indices", None) or []))
        return out

    # ----------------------------------------------------------------------------- writes
    def write_journal(self, old: TermSets) -> tuple[str, list[str]]:
        """Persist the terms records held before a write; returns the batch id and record ids."""
        batch = uuid.uuid4().hex[:16]
        entries = [(pid, terms) for pid, terms in old.items()]
        parts: list[list[Any]] = [[]]
        size = 0
        for pid, terms in entries:
            packed = None if terms is None else pack((t, 0) for t in terms)
            n = len(pid) + len(packed or "") + 8
            if parts[-1] and size + n > _JOURNAL_PART_BYTES:
                parts.append([])
                size = 0
            parts[-1].append([pid, packed])
            size += n
        ids = [self._journal_id(batch, i) for i in range(len(parts))]
        vectors = [{"id": jid, "values": self._values,
                    "metadata": {"batch": batch, "parts": len(parts), "old": json.dumps(part)}}
                   for jid, part in zip(ids, parts, strict=True)]
        for start in range(0, len(vectors), 40):  # 40 x 30 KB stays under the 2 MB request limit
            self._index().upsert(vectors=vectors[start:start + 40], namespace=self._meta_ns)
        return batch, ids

    def apply(self, batch: str, old: TermSets, new: TermSets) -> None:
        """Add the difference between ``new`` and ``old`` to the statistics, once per record."""
        n_delta = sum(t is not None for t in new.values()) - sum(t is not None for t in old.values())
        delta: Counter[int] = Counter()
        for pid in set(old) | set(new):
            delta.update(new.get(pid) or [])
            delta.subtract(old.get(pid) or [])
        touched: dict[str, dict[int, int]] = {}
        for term, d in delta.items():
            if d:
                touched.setdefault(self._shard_id(term % SHARDS), {})[term] = d
        keys = [self._shard_id("n"), *touched]
        current = self._fetch_meta(keys)
        updates = []
        for key in keys:
            meta = current.get(key, {})
            applied = list(meta.get("applied") or [])
            if batch in applied:
                continue  # this journal reached that record before a failure
            if key == self._shard_id("n"):
                if n_delta == 0 and key in current:
                    continue
                meta = {"n": max(0, int(meta.get("n", 0)) + n_delta)}
            else:
                counts = unpack(meta["df"]) if meta.get("df") else {}
                for term, d in touched[key].items():
                    counts[term] = counts.get(term, 0) + d
                    if counts[term] <= 0:
                        del counts[term]
                meta = {"df": pack(counts.items())}
                if len(meta["df"]) > 38_000:
                    raise ConnectorError(
                        f"bge-vdb's Pinecone term statistics shard {key!r} would exceed Pinecone's 40 KB "
                        f"of metadata: the corpus has more distinct terms than {SHARDS} shards hold "
                        f"(about {SHARDS * 4700:,})")
            meta["applied"] = ([*applied, batch])[-_APPLIED_KEPT:]
            updates.append({"id": key, "values": self._values, "metadata": meta})
        for start in range(0, len(updates), 40):
            self._index().upsert(vectors=updates[start:start + 40], namespace=self._meta_ns)

    def finish(self, journal_ids: Sequence[str]) -> None:
        self._index().delete(ids=list(journal_ids), namespace=self._meta_ns)

    def recover(self, fetch_data: Callable[[Sequence[str]], Mapping[str, Any]]) -> int:
        """Finish the journals a failed write left behind; returns how many there were."""
        prefix = self._id(f"lexical:{self._ns}:journal:")
        ids: list[str] = []
        token = None
        while True:
            page = self._index().list_paginated(prefix=prefix, limit=100, pagination_token=token,
                                                namespace=self._meta_ns)
            ids.extend(v.id for v in page.vectors if v.id)
            token = page.pagination.next if page.pagination else None
            if not token:
                break
        batches: dict[str, list[str]] = {}
        for jid in ids:
            batches.setdefault(jid[len(prefix):].split(":")[0], []).append(jid)
        for batch, parts in batches.items():
            records = self._fetch_meta(parts)
            expected = {int(m.get("parts", 0)) for m in records.values()}
            old: TermSets = {}
            for meta in records.values():
                for pid, packed in json.loads(meta["old"]):
                    old[pid] = None if packed is None else sorted(unpack(packed))
            if len(expected) != 1 or len(records) != expected.pop():
                # The journal itself was cut short: the data write never started.
                self.finish(parts)
                continue
            self.apply(batch, old, self.term_sets(fetch_data, list(old)))
            self.finish(parts)
        return len(batches)

    def rebuild(self, all_term_sets: Iterable[list[int]]) -> None:
        """Replace the statistics by a recount (after concurrent writers, say)."""
        n_docs = 0
        df: Counter[int] = Counter()
        for terms in all_term_sets:
            n_docs += 1
            df.update(terms)
        shards: dict[int, dict[int, int]] = {s: {} for s in range(SHARDS)}
        for term, count in df.items():
            shards[term % SHARDS][term] = count
        stamp = ["rebuild-" + uuid.uuid4().hex[:8]]
        updates = [{"id": self._shard_id("n"), "values": self._values, "metadata": {"n": n_docs, "applied": stamp}}]
        updates += [{"id": self._shard_id(s), "values": self._values,
                     "metadata": {"df": pack(c.items()), "applied": stamp}} for s, c in shards.items()]
        for start in range(0, len(updates), 40):
            self._index().upsert(vectors=updates[start:start + 40], namespace=self._meta_ns)


def query_sparse(query: lexical.LexicalQuery, n_docs: int, df: Mapping[int, int]) -> dict[str, list[Any]] | None:
    """The sparse query vector ``count * idf`` over the query's terms present in the corpus (the
    others match nothing), or None when no term is."""
    weights: dict[int, float] = {}
    for term, count in query.counts.items():
        tid = lexical.term_id(term)
        if df.get(tid, 0) > 0:
            weights[tid] = weights.get(tid, 0.0) + count
    if not weights:
        return None
    indices = sorted(weights)
    return {"indices": indices, "values": [weights[i] * lexical.idf(n_docs, df[i]) for i in indices]}


class PineconeHybrid:
    """The hybrid half of :class:`~bge_vdb.connectors.pinecone.PineconeStore` (a mixin: it uses
    the store's ``_index``, ``_data``, ``_hit``, ``namespace`` and ``describe_collection``)."""

    _lexical: dict[str, tuple[lexical.LexicalSpec, TermStatistics] | None]
    namespace: str

    if TYPE_CHECKING:  # provided by PineconeStore
        def _index(self, iname: str) -> Any: ...
        def _data(self, name: str, what: str) -> AbstractContextManager[Any]: ...
        def _hit(self, m: Any, with_vectors: bool) -> Hit: ...
        def describe_collection(self, name: str) -> CollectionSpec | None: ...

    def _stats(self, iname: str, dim: int) -> TermStatistics:
        return TermStatistics(lambda: self._index(iname), self.namespace, META_NAMESPACE, pinecone_id, dim)

    def _hybrid(self, name: str) -> tuple[lexical.LexicalSpec, TermStatistics] | None:
        if name not in self._lexical and self.describe_collection(name) is None:
            raise CollectionNotFound(f"collection {name!r} (Pinecone index {index_name(name)!r}) does not exist")
        return self._lexical[name]

    def _write(self, name: str, hybrid: tuple[lexical.LexicalSpec, TermStatistics] | None, new: TermSets,
               write: Any) -> None:
        """One data write; on a hybrid collection inside the journaled statistics update."""
        if hybrid is None:
            with self._data(name, "upsert") as index:
                write(index)
            return
        stats = hybrid[1]
        fetch = self._fetch_vectors(name)
        with self._data(name, "term statistics") as index:
            stats.recover(fetch)
            old = stats.term_sets(fetch, list(new))
            batch, journal = stats.write_journal(old)
            write(index)
            stats.apply(batch, old, new)
            stats.finish(journal)

    def _fetch_vectors(self, name: str) -> Any:
        def fetch(pids: Sequence[str]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for chunk in url_chunks(pids):
                out.update(self._index(index_name(name)).fetch(ids=chunk, namespace=self.namespace).vectors)
            return out
        return fetch

    def rebuild_term_statistics(self, name: str) -> None:
        """Recount a hybrid collection's term statistics from its records (see :mod:`.pinecone_lexical`)."""
        hybrid = self._hybrid(name)
        if hybrid is None:
            raise InputError(f"collection {name!r} is not hybrid: it has no term statistics")
        fetch = self._fetch_vectors(name)
        term_sets: list[list[int]] = []
        cursor = None
        while True:
            with self._data(name, "list") as index:
                page = index.list_paginated(limit=100, pagination_token=cursor, namespace=self.namespace)
            pids = [item.id for item in page.vectors if item.id]
            with self._data(name, "fetch"):
                term_sets.extend(t or [] for t in hybrid[1].term_sets(fetch, pids).values())
            cursor = (page.pagination.next if page.pagination else None) or None
            if cursor is None:
                break
        with self._data(name, "term statistics"):
            hybrid[1].rebuild(term_sets)

    def lexical_query(
        self, name: str, query: lexical.LexicalQuery, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        hybrid = self._hybrid(name)
        if hybrid is None:
            raise NotHybrid(f"collection {name!r} is dense-only")
        if k > MAX_TOP_K:
            raise InputError(f"Pinecone returns at most {MAX_TOP_K} hits per query, k={k} was asked")
        with self._data(name, "term statistics"):
            n_docs, df = hybrid[1].lookup(lexical.term_id(t) for t in query.counts)
        sparse = query_sparse(query, n_docs, df)
        if sparse is None:
            return []
        if len(sparse["indices"]) > MAX_SPARSE_VALUES:
            raise InputError(f"the query has {len(sparse['indices'])} distinct terms found in the corpus, over "
                             f"Pinecone's {MAX_SPARSE_VALUES} sparse values per query")
        dim = len(hybrid[1]._values)
        with self._data(name, "query") as index:
            res = index.query(vector=[0.0] * dim, sparse_vector=sparse, top_k=k, filter=to_pinecone_filter(where),
                              include_metadata=True, include_values=with_vectors, namespace=self.namespace)
        return [self._hit(m, with_vectors) for m in res.matches if m.score > 0]  # 0: no query term
