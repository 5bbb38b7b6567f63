"""``sync_corpus``: incremental, crash-safe ETL of documents into any collection.

Built only on the public :class:`~bge_vdb.store.Collection` API, so it behaves the same on every
connector. How it stays incremental and crash-safe:

* Every record carries ``content_hash = "<model digest>:<shape tag>:<content digest>"``. The model
  digest is :func:`~bge_vdb.types.fingerprint_digest` of the embedder, so a model change is told
  apart from a content change; the shape tag says how the document was stored (``w`` whole, ``t``
  whole but truncated, ``s<window>,<overlap>`` split, ``c`` a non-first chunk).
* Per batch, ONE ``fetch`` (no vectors) of ``[id, id#0]`` for every document decides unchanged /
  changed / new before anything is tokenized or embedded. Unchanged documents are neither embedded
  nor written.
* A split document is stored as ``id#0 .. id#n-1`` with ``parent_id`` in the metadata; ``id#0`` is
  the *marker*: it carries ``chunk_count`` and the whole document's hash and is written last,
  after every other chunk landed and the surplus chunks of an older, longer version were deleted.
  So a marker with a matching hash proves the whole document is stored, whatever point a previous
  run was killed at; chunks already written with a matching hash are not embedded again.
* Ids are deterministic, writes are upserts: re-running after a crash never duplicates.
* A failed record is simply not in the store with its new hash, so the next run picks it up.
* Ids seen in this run live in a SQLite file in a temporary directory (bounded memory for any
  corpus size); it serves duplicate detection and mirror mode. A "run stamp" in the metadata was
  rejected: it would force rewriting every unchanged record.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ConnectorError, DimensionMismatch, FailedRecord, InputError
from .store import (
    MAX_ID_BYTES,
    Collection,
    check_id,
    check_metadata,
    check_text,
    check_vector,
    describe_fingerprint,
)
from .sync_report import (  # noqa: F401  (re-exported: the public names live on bge_vdb.sync)
    CHUNK_KEY,
    COUNT_KEY,
    PARENT_KEY,
    RESERVED_KEYS,
    DocumentHits,
    SyncReport,
    group_hits,
)
from .types import Document, Record, UpsertResult, fingerprint_digest

ON_LONG = ("truncate", "split", "error")
_QUEUE_DEPTH = 2  # batches embedded ahead of the writer: bounds memory, keeps both busy


# ------------------------------------------------------------------------------- hashing

def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _parse_hash(value: str | None) -> tuple[str, str, str] | None:
    parts = (value or "").split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _chunk_id(doc_id: str, i: int) -> str:
    return f"{doc_id}#{i}"


# ------------------------------------------------------------------------------ planning

@dataclass
class _Plan:
    """What to do with one document; executed by the writer thread."""

    id: str
    status: str  # "added" | "updated" | "cleanup"
    records: list[Record] = field(default_factory=list)  # whole record or chunks 1..n-1
    marker: Record | None = None  # chunk 0 of a split document, written last
    delete_first: list[str] = field(default_factory=list)  # before the marker
    delete_last: list[str] = field(default_factory=list)  # after everything else landed
    reason: str | None = None


class _SeenSet:
    """Ids of this run in a SQLite file: duplicate detection and mirror mode in bounded memory."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bge-vdb-sync-")
        self.db = sqlite3.connect(os.path.join(self._dir.name, "seen.sqlite"))
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, n INTEGER)")
        self.db.execute("CREATE TABLE doomed (id TEXT PRIMARY KEY)")

    def add(self, doc_id: str) -> bool:
        """False when the id was already seen in this run."""
        try:
            self.db.execute("INSERT INTO seen VALUES (?, -1)", (doc_id,))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_chunks(self, pairs: Sequence[tuple[int, str]]) -> None:
        self.db.executemany("UPDATE seen SET n = ? WHERE id = ?", pairs)

    def keeps(self, rec: Record) -> bool:
        """Whether a stored record belongs to a document of this run, in its current shape."""
        parent, idx = rec.metadata.get(PARENT_KEY), rec.metadata.get(CHUNK_KEY)
        if isinstance(parent, str) and isinstance(idx, int) and rec.id == _chunk_id(parent, idx):
            row = self.db.execute("SELECT n FROM seen WHERE id = ?", (parent,)).fetchone()
            if row is not None and row[0] > idx:
                return True
        row = self.db.execute("SELECT n FROM seen WHERE id = ?", (rec.id,)).fetchone()
        return row is not None and row[0] <= 0

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()


class _Syncer:
    def __init__(self, col: Collection, embedder: Any, *, on_long: str, window: int | None,
                 overlap: int, dry_run: bool, report: SyncReport) -> None:
        self.col = col
        self.emb = embedder
        self.on_long = on_long
        self.window = window
        self.overlap = overlap
        self.dry_run = dry_run
        self.report = report
        self.fpd = fingerprint_digest(embedder.fingerprint) or "nofp"
        self.split_tag = f"s{window if window is not None else '-'},{overlap}"
        self.ok_tags = {"truncate": {"w", "t"}, "split": {"w", self.split_tag}, "error": {"w"}}[on_long]
        self.store_lock = threading.Lock()  # connectors need not be thread-safe
        self.report_lock = threading.Lock()
        self.max_meta = col.store.max_metadata_bytes

    # ---- input
    def validate(self, item: Any, pos: int, id_f: str, text_f: str, meta_f: str) -> Document:
        if isinstance(item, FailedRecord):  # a reader could not parse this row
            raise InputError(item.reason)
        raw_id: Any
        text: Any
        meta: Any
        if isinstance(item, Document):
            raw_id, text, meta = item.id, item.text, item.metadata
        elif isinstance(item, Mapping):
            raw_id, text, meta = item.get(id_f), item.get(text_f), item.get(meta_f)
        else:
            raise InputError(f"document {pos}: expected a Document or a dict, got {type(item).__name__}")
        where = f"document {pos} (id {raw_id!r})" if isinstance(raw_id, str) and raw_id else f"document {pos}"
        doc_id = check_id(raw_id, where)
        if len(doc_id.encode()) > MAX_ID_BYTES - 12:
            raise InputError(f"{where}: id is too long to take a chunk suffix (max {MAX_ID_BYTES - 12} bytes)")
        text = check_text(text, where)
        metadata = check_metadata(meta, where, self.max_meta)
        return Document(doc_id, text, metadata)

    def _hash(self, tag: str, *content: Any) -> str:
        return f"{self.fpd}:{tag}:{_digest(*content)}"

    def _matches(self, rec: Record | None, digest: str, tags: set[str]) -> bool:
        parsed = _parse_hash(rec.content_hash) if rec is not None else None
        return parsed is not None and parsed[0] == self.fpd and parsed[1] in tags and parsed[2] == digest

    # ---- one batch
    def plan_batch(self, docs: list[Document]) -> list[_Plan]:
        """Classify a batch (one fetch) and embed what changed; returns the writer's work."""
        rep = self.report
        ids = [x for d in docs for x in (d.id, _chunk_id(d.id, 0))]
        with self.store_lock:
            stored = {r.id: r for r in self.col.fetch(ids, with_vectors=False)}
        plans: list[_Plan] = []
        unchanged = 0
        todo: list[tuple[Document, str, Record | None, Record | None, str]] = []
        chunk_counts: list[tuple[int, str]] = []
        for d in docs:
            digest = _digest(d.text, d.metadata)
            bare = stored.get(d.id)
            marker = stored.get(_chunk_id(d.id, 0))
            if marker is not None and marker.metadata.get(PARENT_KEY) != d.id:
                marker = None  # a user's own record named like a chunk
            m = marker.metadata.get(COUNT_KEY) if marker is not None else None
            old_m = m if isinstance(m, int) and m >= 1 else 1
            if self._matches(bare, digest, self.ok_tags - {self.split_tag}):
                chunk_counts.append((0, d.id))
                if marker is None:
                    unchanged += 1
                else:  # a crash left the older split version behind
                    plans.append(_Plan(d.id, "cleanup", delete_first=[_chunk_id(d.id, i) for i in range(1, old_m)],
                                       delete_last=[_chunk_id(d.id, 0)]))
                continue
            if self._matches(marker, digest, {self.split_tag} & self.ok_tags) and isinstance(m, int):
                chunk_counts.append((m, d.id))
                if bare is None:
                    unchanged += 1
                else:
                    plans.append(_Plan(d.id, "cleanup", delete_last=[d.id]))
                continue
            old = bare or marker
            if old is None:
                reason = "added"
            else:
                parsed = _parse_hash(old.content_hash)
                if parsed is None or parsed[0] != self.fpd:
                    reason = "model changed" if parsed is not None else "not written by sync"
                elif parsed[2] != digest:
                    reason = "content changed"
                else:
                    reason = "stored shape changed (on_long/window/incomplete)"
            todo.append((d, reason, bare, marker, digest))
        with self.report_lock:  # the writer thread updates the report too
            rep.unchanged += unchanged
        self._plan_changed(todo, plans, chunk_counts)
        self.seen.set_chunks(chunk_counts)
        return plans

    def _plan_changed(self, todo: list[tuple[Document, str, Record | None, Record | None, str]],
                      plans: list[_Plan], chunk_counts: list[tuple[int, str]]) -> None:
        rep = self.report
        if not todo:
            return
        emb = self.emb
        counts = emb.count_tokens([d.text for d, *_ in todo])
        max_len = int(emb.max_length)
        pending: list[_Plan] = []
        split_lookup: list[str] = []
        for (d, reason, bare, marker, _), n_tok in zip(todo, counts, strict=True):
            m = marker.metadata.get(COUNT_KEY) if marker is not None else None
            old_m = m if isinstance(m, int) and m >= 1 else 1
            plan = _Plan(d.id, "added" if reason == "added" else "updated", reason=reason)
            too_long = n_tok > max_len
            if too_long and self.on_long == "error":
                rep.failed.append(FailedRecord(d.id, (
                    f"document is {n_tok} tokens, over the model's limit of {max_len}; "
                    f"sync with on_long='split' or 'truncate'")))
                chunk_counts.append((-1, d.id))
                continue
            if too_long and self.on_long == "split" and RESERVED_KEYS & set(d.metadata):
                rep.failed.append(FailedRecord(d.id, (
                    f"metadata uses {sorted(RESERVED_KEYS & set(d.metadata))}, which sync sets on "
                    f"the chunks of a split document; rename them")))
                chunk_counts.append((-1, d.id))
                continue
            if too_long and self.on_long == "split":
                chunks = list(emb.split_text(d.text, window=self.window, overlap=self.overlap))
            else:
                chunks = [d.text]
            if len(chunks) <= 1:
                tag = "t" if too_long else "w"
                rep.truncated += int(too_long)
                rep.tokens += min(n_tok, max_len)
                plan.records.append(Record(d.id, None, d.text, d.metadata, self._hash(tag, d.text, d.metadata)))
                if marker is not None:
                    plan.delete_first = [_chunk_id(d.id, i) for i in range(1, old_m)]
                    plan.delete_last = [_chunk_id(d.id, 0)]
                chunk_counts.append((0, d.id))
                pending.append(plan)
                continue
            n = len(chunks)
            rep.split += 1
            meta0 = {**d.metadata, PARENT_KEY: d.id, CHUNK_KEY: 0, COUNT_KEY: n}
            plan.marker = Record(_chunk_id(d.id, 0), None, chunks[0], meta0,
                                 self._hash(self.split_tag, d.text, d.metadata))
            for i in range(1, n):
                meta = {**d.metadata, PARENT_KEY: d.id, CHUNK_KEY: i}
                plan.records.append(Record(_chunk_id(d.id, i), None, chunks[i], meta,
                                           self._hash("c", chunks[i], meta)))
                split_lookup.append(_chunk_id(d.id, i))
            if marker is not None and old_m > n:
                plan.delete_first = [_chunk_id(d.id, i) for i in range(n, old_m)]
            if bare is not None:
                plan.delete_last = [d.id]
            chunk_counts.append((n, d.id))
            pending.append(plan)
        # Chunks an interrupted or earlier run already wrote (same text, same place) are kept.
        if split_lookup:
            with self.store_lock:
                have = {r.id: r.content_hash for r in self.col.fetch(split_lookup, with_vectors=False)}
            for plan in pending:
                if plan.marker is not None:
                    plan.records = [r for r in plan.records if have.get(r.id) != r.content_hash]
        self._embed(pending)
        plans.extend(pending)

    def _embed(self, plans: list[_Plan]) -> None:
        rep = self.report
        slots = [(p, i) for p in plans for i in range(len(p.records))]
        markers = [p for p in plans if p.marker is not None]
        texts = [p.records[i].text or "" for p, i in slots] + [p.marker.text or "" for p in markers if p.marker]
        chunk_texts = [p.records[i].text or "" for p, i in slots if p.marker is not None]
        chunk_texts += [p.marker.text or "" for p in markers if p.marker]
        if chunk_texts:  # whole documents were counted already
            max_len = int(self.emb.max_length)
            counts = self.emb.count_tokens(chunk_texts)
            rep.tokens += sum(min(c, max_len) for c in counts)
            # A window may re-tokenize a little longer than it was cut: counted, never silent.
            rep.truncated += sum(1 for c in counts if c > max_len)
        rep.embedded += len(texts)
        if self.dry_run or not texts:
            return
        vectors = self.emb.embed_documents(texts)
        bad: dict[str, str] = {}

        def with_vector(rec: Record, vec: Any) -> Record:
            try:
                v = check_vector(vec, self.col.dim, f"embedding of {rec.id!r}")
            except (InputError, DimensionMismatch) as exc:
                bad[rec.id] = str(exc)
                v = None
            return Record(rec.id, v, rec.text, rec.metadata, rec.content_hash)

        for k, (p, i) in enumerate(slots):
            p.records[i] = with_vector(p.records[i], vectors[k])
        for k, p in enumerate(markers, start=len(slots)):
            assert p.marker is not None
            p.marker = with_vector(p.marker, vectors[k])
        if bad:
            for p in plans:
                ids = [r.id for r in p.records] + ([p.marker.id] if p.marker else [])
                reasons = [f"{i}: {bad[i]}" for i in ids if i in bad]
                if reasons:
                    rep.failed.append(FailedRecord(p.id, "; ".join(reasons)))
                    p.status = "failed"

    # ---- writer side
    def execute(self, plans: list[_Plan]) -> None:
        """Write one batch's plans in the crash-safe order; runs on the writer thread."""
        rep = self.report
        live = [p for p in plans if p.status != "failed"]
        failed: dict[str, list[str]] = {}
        owner = {r.id: p.id for p in live for r in p.records}
        owner.update({p.marker.id: p.id for p in live if p.marker is not None})

        def write(records: list[Record]) -> None:
            if not records:
                return
            with self.store_lock:
                res = self.col.write(records, UpsertResult())
            rep.written += res.written
            for f in res.failed:
                failed.setdefault(owner.get(f.id, f.id), []).append(f"{f.id}: {f.reason}")

        def delete(which: str) -> None:
            ids = [x for p in live if p.id not in failed for x in getattr(p, which)]
            if not ids:
                return
            try:
                with self.store_lock:
                    self.col.delete(ids)
            except ConnectorError as exc:
                for p in live:
                    if getattr(p, which) and p.id not in failed:
                        failed[p.id] = [f"stale records not deleted: {exc}"]
                return
            rep.stale_deleted += len(ids)

        write([r for p in live for r in p.records])
        delete("delete_first")
        write([p.marker for p in live if p.marker is not None and p.id not in failed])
        delete("delete_last")
        with self.report_lock:
            self._tally(live, failed)

    def _tally(self, live: list[_Plan], failed: dict[str, list[str]]) -> None:
        rep = self.report
        for p in live:
            if p.id in failed:
                rep.failed.append(FailedRecord(p.id, "; ".join(failed[p.id])))
            elif p.status == "added":
                rep.added += 1
            elif p.status == "updated":
                rep.updated += 1
                key = p.reason or "changed"
                rep.update_reasons[key] = rep.update_reasons.get(key, 0) + 1
            else:
                rep.unchanged += 1

    seen: _SeenSet


def sync_corpus(
    collection: Collection,
    docs: Iterable[Document | Mapping[str, Any] | FailedRecord],
    *,
    embedder: Any = None,
    mirror: bool = False,
    scope: Mapping[str, Any] | None = None,
    batch_size: int = 256,
    on_long: str = "truncate",
    window: int | None = None,
    overlap: int = 32,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    id_field: str = "id",
    text_field: str = "text",
    metadata_field: str = "metadata",
) -> SyncReport:
    """Bring ``collection`` up to date with ``docs``, embedding only what changed.

    Args:
        collection: the target; its embedder is used unless ``embedder`` is given.
        docs: any iterable (a generator is read once, in bounded memory) of ``Document``s or
            dicts with ``id_field``/``text_field``/``metadata_field`` keys. Bad items become
            per-record errors in ``report.failed``; the rest goes on. A duplicate id is an
            error: the first occurrence is kept (it may already be written when the second comes).
        mirror: delete records not seen in this run (only those matching ``scope``), after all
            writes succeeded; if anything failed, nothing is deleted and ``mirror_note`` says so.
        scope: a filter (usually ``{"source": "wiki"}``) limiting mirror deletion.
        batch_size: documents per fetch/embed step; the store's own batch limits still apply.
        on_long: "truncate" (counted), "split" (``id#0..n-1`` token windows with ``overlap``,
            ``parent_id`` in metadata) or "error" (a per-record error).
        dry_run: read and plan (added/updated/unchanged/deleted, tokens) without writing or embedding.
        progress: called with the number of documents handled so far, after each batch.
    """
    if on_long not in ON_LONG:
        raise ConfigError(f"on_long must be one of {ON_LONG}, got {on_long!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(docs, (str, bytes, Document)):
        raise InputError("sync_corpus takes an iterable of documents, not a single one")
    emb = embedder if embedder is not None else collection.embedder
    if emb is None:
        raise ConfigError("sync_corpus needs an embedder: open the collection with embedder=... or pass embedder=")
    if emb.dim != collection.dim:
        raise DimensionMismatch(f"collection {collection.name!r} holds {collection.dim}-d vectors, "
                                f"the embedder makes {emb.dim}-d")
    if on_long == "split" and not hasattr(emb, "split_text"):
        raise ConfigError("on_long='split' needs an embedder with split_text()")
    scope_filter = dict(scope) if scope else None
    if scope_filter is not None:
        collection.count(where=scope_filter)  # parse (and reject) a bad scope before any work

    started = time.perf_counter()
    report = SyncReport(dry_run=dry_run)
    stored_fp = collection.fingerprint
    if stored_fp and fingerprint_digest(stored_fp) != fingerprint_digest(emb.fingerprint):
        report.fingerprint_note = (
            f"the collection was written by {describe_fingerprint(stored_fp)}; this run uses "
            f"{describe_fingerprint(emb.fingerprint)}: documents embedded by the other model are re-embedded")
    syncer = _Syncer(collection, emb, on_long=on_long, window=window, overlap=overlap,
                     dry_run=dry_run, report=report)
    syncer.seen = _SeenSet()
    try:
        _run(syncer, docs, batch_size, progress, (id_field, text_field, metadata_field))
        if mirror:
            _mirror(syncer, scope_filter)
        if not dry_run and report.ok and (
            not stored_fp or fingerprint_digest(stored_fp) != fingerprint_digest(emb.fingerprint)):
            collection.set_fingerprint(emb.fingerprint)
    finally:
        syncer.seen.close()
        report.seconds = time.perf_counter() - started
    return report


def _batches(docs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in docs:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(syncer: _Syncer, docs: Iterable[Any], batch_size: int,
         progress: Callable[[int], None] | None, fields: tuple[str, str, str]) -> None:
    """Plan/embed batches on this thread while one writer thread writes the previous batch."""
    rep = syncer.report
    jobs: queue.Queue[list[_Plan] | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
    writer_error: list[BaseException] = []

    def writer() -> None:
        while True:
            plans = jobs.get()
            if plans is None:
                return
            if writer_error:
                continue  # drain so the producer never blocks
            try:
                syncer.execute(plans)
            except BaseException as exc:  # re-raised on the main thread
                writer_error.append(exc)

    thread = threading.Thread(target=writer, name="bge-vdb-sync-writer", daemon=True)
    thread.start()
    pos = 0
    try:
        for raw in _batches(docs, batch_size):
            if writer_error:
                break
            batch: list[Document] = []
            for item in raw:
                try:
                    doc = syncer.validate(item, pos, *fields)
                    if not syncer.seen.add(doc.id):
                        raise InputError(f"document {pos}: duplicate id {doc.id!r} in this run "
                                         f"(the first occurrence is kept)")
                    batch.append(doc)
                except InputError as exc:
                    rep.failed.append(FailedRecord(_item_id(item, pos, fields[0]), str(exc)))
                pos += 1
            rep.documents = pos
            if batch:
                try:
                    plans = syncer.plan_batch(batch)
                except ConnectorError as exc:
                    rep.aborted = f"reading stored hashes failed, run stopped at document {pos}: {exc}"
                    rep.failed.extend(FailedRecord(d.id, "not synced: run stopped") for d in batch)
                    break
                if plans and not syncer.dry_run:
                    jobs.put(plans)
                elif syncer.dry_run:
                    syncer._tally(plans, {})  # the plan counts as if it were written
            if progress is not None:
                progress(pos)
    finally:
        jobs.put(None)
        thread.join()
    if writer_error:
        raise writer_error[0]


def _item_id(item: Any, pos: int, id_field: str) -> str:
    if isinstance(item, FailedRecord):
        return item.id
    raw = item.id if isinstance(item, Document) else item.get(id_field) if isinstance(item, Mapping) else None
    return raw if isinstance(raw, str) and raw else f"#{pos}"


def _mirror(syncer: _Syncer, scope: dict[str, Any] | None) -> None:
    rep, col, seen = syncer.report, syncer.col, syncer.seen
    if not rep.ok:
        rep.mirror_note = (f"mirror: nothing deleted because {len(rep.failed)} record(s) failed"
                           + (" and the run was aborted" if rep.aborted else ""))
        return
    if rep.documents == 0:
        rep.mirror_note = "mirror: the source was empty; refusing to delete the whole collection"
        return
    for page in col.scroll(1000, where=scope):
        doomed = [(r.id,) for r in page if not seen.keeps(r)]
        seen.db.executemany("INSERT OR IGNORE INTO doomed VALUES (?)", doomed)
    total = seen.db.execute("SELECT COUNT(*) FROM doomed").fetchone()[0]
    if syncer.dry_run:
        rep.deleted = total
        return
    cursor = seen.db.execute("SELECT id FROM doomed")
    while ids := [row[0] for row in cursor.fetchmany(1000)]:
        try:
            col.delete(ids)
        except ConnectorError as exc:
            rep.mirror_note = f"mirror: deleting stopped after {rep.deleted} records: {exc}"
            rep.failed.extend(FailedRecord(i, f"not deleted: {exc}") for i in ids)
            return
        rep.deleted += len(ids)
