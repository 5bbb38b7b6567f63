"""``sync_corpus``: incremental, crash-safe ETL of documents into any collection.

Built only on the public :class:`~bge_vdb.store.Collection` API, so it behaves the same on every
connector. How it stays incremental and crash-safe:

* Every record carries a content hash (:mod:`bge_vdb.sync_hash`): the model's digest, the
  record's shape and a digest of what was embedded, so a model change is told apart from a
  content change. One ``fetch`` per batch of ``[id, id#0]`` decides unchanged / changed / new
  before anything is tokenized or embedded; unchanged documents are neither embedded nor written.
* A split document is ``id#0 .. id#n-1`` (``parent_id`` in the metadata). Its ``#0`` marker goes
  *pending* before any chunk changes and *complete* (with a manifest of its chunks) after they
  all landed; a complete marker is trusted only when the stored chunks match its manifest. The
  order and its invariant are in :mod:`bge_vdb.sync_batch`.
* Ids are deterministic, writes are upserts: re-running after a crash never duplicates, and
  chunks already written are reused, not embedded again. A failed record is not in the store with
  its new hash, so the next run picks it up.
* Work is bounded per step: ``batch_size`` documents per fetch and at most ``batch_size`` texts
  (documents or chunks) per embed/write step, so a batch of long documents reaches the store in
  steps and an interruption keeps what was written.
* An error from the source or the embedder mid-run raises :class:`~bge_vdb.errors.SyncInterrupted`
  (Ctrl-C: :class:`~bge_vdb.errors.JobCancelled`) carrying the partial report.
* Ids seen in this run live in a SQLite file in a temporary directory (bounded memory for any
  corpus size); it serves duplicate detection and mirror mode. A "run stamp" in the metadata was
  rejected: it would force rewriting every unchanged record.

:class:`SyncSession` is the one internal interface to this machinery: ``sync_corpus`` runs one,
and ``sync_dataset`` (:mod:`bge_vdb.distributed`) runs one per Ray batch and one for the mirror.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .errors import (
    ConfigError,
    ConnectorError,
    DimensionMismatch,
    FailedRecord,
    InputError,
    JobCancelled,
    SyncInterrupted,
)
from .store import Collection, describe_fingerprint
from .sync_batch import ON_LONG, BatchSyncer, Step, item_id
from .sync_hash import ContentHash, chunk_id
from .sync_report import (  # noqa: F401  (re-exported: the public names live on bge_vdb.sync)
    CHUNK_KEY,
    COUNT_KEY,
    PARENT_KEY,
    RESERVED_KEYS,
    DocumentHits,
    SyncReport,
    group_hits,
)
from .types import Document, EmbedderProtocol, Record, fingerprint_digest

_QUEUE_DEPTH = 2  # steps embedded ahead of the writer: bounds memory, keeps both busy
Fields = tuple[str, str, str]


class SeenSet:
    """Ids of this run and their shape (0 whole, n chunks, -1 failed or not known), in a SQLite
    file: duplicate detection and mirror mode in bounded memory."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bge-vdb-sync-")
        self.db = sqlite3.connect(os.path.join(self._dir.name, "seen.sqlite"))
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, n INTEGER)")
        self.db.execute("CREATE TABLE doomed (id TEXT PRIMARY KEY, last INTEGER)")

    def add(self, doc_id: str) -> bool:
        """False when the id was already seen in this run."""
        try:
            self.db.execute("INSERT INTO seen VALUES (?, -1)", (doc_id,))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_shapes(self, pairs: Sequence[tuple[int, str]]) -> None:
        """Record ``(n, id)`` pairs: 0 whole, n chunks, -1 failed."""
        self.db.executemany("UPDATE seen SET n = ? WHERE id = ?", pairs)

    def shapes(self) -> list[tuple[str, int]]:
        return [(i, n) for i, n in self.db.execute("SELECT id, n FROM seen ORDER BY rowid")]

    def keeps(self, rec: Record) -> bool:
        """Whether a stored record belongs to a document of this run, in its current shape."""
        parent, idx = rec.metadata.get(PARENT_KEY), rec.metadata.get(CHUNK_KEY)
        if isinstance(parent, str) and isinstance(idx, int) and rec.id == chunk_id(parent, idx):
            row = self.db.execute("SELECT n FROM seen WHERE id = ?", (parent,)).fetchone()
            if row is not None and row[0] > idx:
                return True
        row = self.db.execute("SELECT n FROM seen WHERE id = ?", (rec.id,)).fetchone()
        return row is not None and row[0] <= 0

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()


class SyncSession:
    """One sync run's machinery over a collection: validation, duplicate detection, the
    plan/embed/write pipeline, mirror deletion. ``sync_corpus`` and ``sync_dataset`` use it."""

    def __init__(self, collection: Collection, embedder: EmbedderProtocol, *, on_long: str = "truncate",
                 window: int | None = None, overlap: int = 32, dry_run: bool = False,
                 report: SyncReport | None = None, step_texts: int = 256,
                 seen: SeenSet | None = None) -> None:
        self.report = report if report is not None else SyncReport(dry_run=dry_run)
        self.core = BatchSyncer(collection, embedder, on_long=on_long, window=window, overlap=overlap,
                                dry_run=dry_run, report=self.report, step_texts=step_texts)
        self.seen = seen if seen is not None else SeenSet()
        self.col = collection
        self.dry_run = dry_run

    def close(self) -> None:
        self.seen.close()

    def __enter__(self) -> SyncSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ the pipeline
    def run(self, items: Iterable[Any], *, batch_size: int, progress: Callable[[int], None] | None = None,
            fields: Fields = ("id", "text", "metadata")) -> None:
        """Sync ``items``: this thread reads, plans and embeds; one writer thread writes.

        An exception from the source, the embedder or ``progress`` stops the run: what was
        embedded is still written, then :class:`SyncInterrupted` (``JobCancelled`` for Ctrl-C)
        is raised with the report, the original error as ``__cause__``.
        """
        jobs: queue.Queue[Step | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        writer_error: list[BaseException] = []

        def writer() -> None:
            while True:
                step = jobs.get()
                if step is None:
                    return
                if writer_error:
                    continue  # drain so the producer never blocks
                try:
                    self.core.execute(step)
                except BaseException as exc:  # re-raised on the calling thread
                    writer_error.append(exc)

        thread = threading.Thread(target=writer, name="bge-vdb-sync-writer", daemon=True)
        thread.start()
        failure: BaseException | None = None
        try:
            self._produce(items, batch_size, progress, fields, jobs, writer_error)
        except BaseException as exc:
            failure = exc
        finally:
            jobs.put(None)
            thread.join()
        if failure is None and writer_error:
            failure = writer_error[0]
        if failure is not None:
            self._raise(failure)

    def _produce(self, items: Iterable[Any], batch_size: int, progress: Callable[[int], None] | None,
                 fields: Fields, jobs: queue.Queue[Step | None], writer_error: list[BaseException]) -> None:
        rep, core = self.report, self.core
        pos = 0
        for raw in _batches(items, batch_size):
            if writer_error:
                return
            batch: list[Document] = []
            for item in raw:
                try:
                    doc = core.validate(item, pos, *fields)
                    if not self.seen.add(doc.id):
                        raise InputError(f"document {pos}: duplicate id {doc.id!r} in this run "
                                         f"(the first occurrence is kept)")
                    batch.append(doc)
                except InputError as exc:
                    with core.report_lock:
                        rep.failed.append(FailedRecord(item_id(item, pos, fields[0]), str(exc)))
                pos += 1
            rep.documents = pos
            if batch:
                try:
                    planned = core.plan(batch)
                except ConnectorError as exc:
                    rep.aborted = f"reading stored hashes failed, run stopped at document {pos}: {exc}"
                    with core.report_lock:
                        rep.failed.extend(FailedRecord(d.id, "not synced: run stopped") for d in batch)
                    return
                self.seen.set_shapes(planned.shapes)
                for step in core.steps(planned):
                    jobs.put(step)
            if progress is not None:
                progress(pos)

    def _raise(self, exc: BaseException) -> None:
        rep = self.report
        if isinstance(exc, KeyboardInterrupt):
            rep.aborted = rep.aborted or f"interrupted after {rep.documents} documents read"
            raise JobCancelled(rep) from exc
        if isinstance(exc, Exception) and not isinstance(exc, SyncInterrupted):
            rep.aborted = rep.aborted or (f"stopped after {rep.documents} documents read: "
                                          f"{type(exc).__name__}: {exc}")
            raise SyncInterrupted(f"sync stopped: {type(exc).__name__}: {exc} "
                                  f"(what was written before stays; a re-run resumes)", rep) from exc
        raise exc  # a dying process (SystemExit, a simulated crash): nothing to add

    # ------------------------------------------------------------------------------ mirror
    def mirror(self, scope: Mapping[str, Any] | None) -> None:
        """Delete records of documents not seen in this run (within ``scope``), if nothing
        failed. Chunks go before ``#0`` markers, so an interrupted pass leaves no chunk that
        its document's marker does not account for."""
        rep, col, db = self.report, self.col, self.seen.db
        if not rep.ok:
            rep.mirror_note = (f"mirror: nothing deleted because {len(rep.failed)} record(s) failed"
                               + (" and the run was aborted" if rep.aborted else ""))
            return
        if rep.documents == 0:
            rep.mirror_note = "mirror: the source was empty; refusing to delete the whole collection"
            return
        extra: list[str] = []
        for page in col.scroll(1000, where=dict(scope) if scope else None):
            doomed = [r for r in page if not self.seen.keeps(r)]
            db.executemany("INSERT OR IGNORE INTO doomed VALUES (?, ?)",
                           [(r.id, int(_marker_bound(r) is not None)) for r in doomed])
            # A doomed marker's chunks go too, even outside the scope (an interrupted write of
            # another version may have left them with other metadata).
            extra += [chunk_id(r.metadata[PARENT_KEY], i) for r in doomed for i in range(1, _marker_bound(r) or 0)]
        for start in range(0, len(extra), 1000):
            ids = [i for i in extra[start : start + 1000]
                   if db.execute("SELECT 1 FROM doomed WHERE id = ?", (i,)).fetchone() is None]
            held = [r.id for r in col.fetch(ids)] if ids else []
            db.executemany("INSERT OR IGNORE INTO doomed VALUES (?, 0)", [(i,) for i in held])
        total = db.execute("SELECT COUNT(*) FROM doomed").fetchone()[0]
        if self.dry_run:
            rep.deleted = total
            return
        for last in (0, 1):
            cursor = db.execute("SELECT id FROM doomed WHERE last = ?", (last,))
            while ids := [row[0] for row in cursor.fetchmany(1000)]:
                try:
                    col.delete(ids)
                except ConnectorError as exc:
                    rep.mirror_note = f"mirror: deleting stopped after {rep.deleted} records: {exc}"
                    rep.failed.extend(FailedRecord(i, f"not deleted: {exc}") for i in ids)
                    return
                rep.deleted += len(ids)


def _marker_bound(rec: Record) -> int | None:
    """For a #0 marker (pending or complete), the bound below which its chunks may exist."""
    parent, idx = rec.metadata.get(PARENT_KEY), rec.metadata.get(CHUNK_KEY)
    if not (isinstance(parent, str) and idx == 0 and rec.id == chunk_id(parent, 0)):
        return None
    parsed = ContentHash.parse(rec.content_hash)
    if parsed is not None and parsed.pending_hw is not None:
        return parsed.pending_hw
    n = rec.metadata.get(COUNT_KEY)
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1


def _batches(docs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in docs:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def uncounted_tokens_note(emb: EmbedderProtocol, on_long: str) -> str | None:
    """For an embedder that cannot count tokens (a remote one with no tokenizer): the report's
    note, or a ConfigError when ``on_long`` needs the counts. None for every other embedder."""
    if getattr(emb, "counts_tokens", True):
        return None
    why = getattr(emb, "tokens_from", "the embedder cannot count tokens")
    if on_long != "truncate":
        raise ConfigError(f"on_long={on_long!r} needs token counts: {why}")
    return (f"{why}: tokens and truncations were not counted (the server truncates documents "
            f"over the model's limit)")


def check_options(on_long: str, batch_size: int) -> None:
    if on_long not in ON_LONG:
        raise ConfigError(f"on_long must be one of {ON_LONG}, got {on_long!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")


def sync_corpus(
    collection: Collection,
    docs: Iterable[Document | Mapping[str, Any] | FailedRecord],
    *,
    embedder: EmbedderProtocol | None = None,
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
            Ids ending in ``#`` and digits are refused: they name the chunks of split documents.
        mirror: delete records not seen in this run (only those matching ``scope``), after all
            writes succeeded; if anything failed, nothing is deleted and ``mirror_note`` says so.
        scope: a filter (usually ``{"source": "wiki"}``) limiting mirror deletion.
        batch_size: documents per fetch step, and texts (documents or chunks) per embed/write
            step; the store's own batch limits still apply.
        on_long: "truncate" (counted), "split" (``id#0..n-1`` token windows with ``overlap``,
            ``parent_id`` in metadata) or "error" (a per-record error).
        dry_run: read and plan (added/updated/unchanged/deleted, tokens) without writing or embedding.
        progress: called with the number of documents handled so far, after each batch.

    Raises:
        SyncInterrupted: the source, the embedder or ``progress`` raised mid-run; ``.report`` is
            the partial report (what was written stays written), ``__cause__`` the error.
        JobCancelled: the same for Ctrl-C (a ``KeyboardInterrupt``).
    """
    check_options(on_long, batch_size)
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
    tokens_note = uncounted_tokens_note(emb, on_long)
    scope_filter = dict(scope) if scope else None
    if scope_filter is not None:
        collection.count(where=scope_filter)  # parse (and reject) a bad scope before any work

    started = time.perf_counter()
    report = SyncReport(dry_run=dry_run, tokens_note=tokens_note)
    stored_fp = collection.fingerprint
    same_model = bool(stored_fp) and fingerprint_digest(stored_fp) == fingerprint_digest(emb.fingerprint)
    if stored_fp and not same_model:
        report.fingerprint_note = (
            f"the collection was written by {describe_fingerprint(stored_fp)}; this run uses "
            f"{describe_fingerprint(emb.fingerprint)}: documents embedded by the other model are re-embedded")
    session = SyncSession(collection, emb, on_long=on_long, window=window, overlap=overlap,
                          dry_run=dry_run, report=report, step_texts=batch_size)
    try:
        session.run(docs, batch_size=batch_size, progress=progress,
                    fields=(id_field, text_field, metadata_field))
        if mirror:
            session.mirror(scope_filter)
        if not dry_run and report.ok and not same_model:
            collection.set_fingerprint(emb.fingerprint)
    finally:
        session.close()
        report.seconds = time.perf_counter() - started
    return report
