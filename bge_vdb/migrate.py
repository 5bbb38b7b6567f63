"""``migrate``: copy a collection between any two stores, resumable and verified.

Built once on the public :class:`~bge_vdb.store.Collection` interface, so it works between every
pair of connectors. Source pages are streamed with ``scroll``; a reader thread prepares the next
page (and re-embeds it, when asked) while the main thread writes the previous one, through a
bounded queue, so memory stays flat whatever the size of the collection.

Resume keeps no state file: the destination itself is the checkpoint. Records are stored under
the caller's ids, so a rewrite overwrites and never duplicates; on a resumed run each source page
is compared with what the destination already holds, and records already there unchanged are
skipped (neither re-embedded nor rewritten).

With ``reembed``, each record's content hash is carried over to the new model
(:func:`~bge_vdb.sync_hash.carry_to_model`): what was embedded did not change, only the model
did, so a ``sync_corpus`` with the new model afterwards finds every record current and embeds
nothing (a text the new model would truncate is the exception, and is re-synced).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    FailedRecord,
    FingerprintMismatch,
    InputError,
    JobCancelled,
    MigrationInterrupted,
    ModelError,
    NotHybrid,
)
from .lexical import LexicalSpec
from .retry import call_with_retry
from .store import (
    Collection,
    VectorStore,
    check_metadata,
    check_spec,
    check_vector,
    describe_fingerprint,
)
from .sync_hash import carry_to_model, model_digest
from .types import EmbedderLike, Record, fingerprint_digest
from .verify import Verification, same_record, verify_migration

log = logging.getLogger("bge_vdb.migrate")

#: How far a stored vector's norm may be from 1 and still be copied bit for bit.
UNIT_TOL = 1e-4
_QUEUE_PAGES = 2  # pages prepared ahead of the writer; memory holds at most ~4 pages


@dataclass
class MigrationReport:
    """What ``migrate`` did. ``ok`` means every record landed and verification (if run) passed."""

    source: str = ""
    destination: str = ""
    dim: int = 0
    fingerprint: Mapping[str, Any] | None = None
    read: int = 0  # source records scanned
    written: int = 0
    skipped: int = 0  # already in the destination unchanged (resumed run)
    reembedded: int = 0
    normalized: int = 0  # source vectors that were not unit length (collections made elsewhere)
    failed: list[FailedRecord] = field(default_factory=list)
    stopped: str | None = None  # why the copy stopped early (destination unreachable); re-run to resume
    seconds: float = 0.0
    verification: Verification | None = None

    @property
    def vectors_per_second(self) -> float:
        """Records handled (written or skipped) per second."""
        return (self.written + self.skipped) / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed, the run was not stopped and verification (if run) passed."""
        return (not self.failed and self.stopped is None
                and (self.verification is None or self.verification.ok))

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible data (what ``bge-vdb migrate --json`` prints)."""
        out = asdict(self)
        out["fingerprint"] = dict(self.fingerprint) if self.fingerprint else None
        out["verification"] = self.verification.to_dict() if self.verification else None
        out["vectors_per_second"] = self.vectors_per_second
        out["ok"] = self.ok
        return out


Destination = Collection | tuple[VectorStore, str]
Progress = Callable[[MigrationReport], None]


def migrate(
    src: Collection,
    dst: Destination,
    *,
    batch_size: int = 500,
    reembed: EmbedderLike | None = None,
    resume: bool = True,
    verify: bool = True,
    verify_sample: int = 100,
    verify_queries: int = 20,
    seed: int = 0,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every record of ``src`` into ``dst``; return a :class:`MigrationReport`.

    Args:
        src: the source collection (``store.collection(name, create=False)``).
        dst: an open destination :class:`Collection`, or a ``(store, name)`` pair, in which case
            the collection is created when missing, with the right dimension, the cosine metric
            and the fingerprint. An existing destination whose dimension, metric or fingerprint
            disagrees is refused with an error before anything is written.
        batch_size: records per source page. Writes are re-batched by the destination
            connector's own count and byte limits, each batch retried on transient errors.
        reembed: an embedder (``bge_vdb.Embedder``) to re-embed each record's text with on the
            way; the destination gets its dimension and fingerprint. Embedding the next page
            overlaps writing the previous one.
        resume: skip records the destination already holds unchanged (a re-run after an
            interruption picks up where it stopped). ``False`` rewrites everything.
        verify: run :func:`verify_migration` afterwards and attach it to the report.
        verify_sample: how many vectors verification compares.
        verify_queries: how many stored vectors verification uses as top-k queries.
        seed: seed of the verification samples.
        progress: called with the (in-progress) report after each page is written.

    Records that cannot be copied (no vector, no text to re-embed, metadata over the
    destination's limit, refused by the database) are listed in ``report.failed`` by id;
    nothing is dropped silently. ``migrate`` does not raise for them.

    Raises:
        MigrationInterrupted: reading the source, the embedder or ``progress`` failed mid-run;
            ``.report`` is the partial report (what was written stays, a re-run resumes),
            ``__cause__`` the error.
        JobCancelled: the same for Ctrl-C (a ``KeyboardInterrupt``).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(src, Collection):
        raise InputError(f"src must be a Collection, got {type(src).__name__}")
    src_spec = src._call(src.store.describe_collection, src.name)
    if src_spec is None:
        raise CollectionNotFound(f"source collection {src.name!r} does not exist in {src.store!r}")
    check_spec(src_spec, dim=None, embedder=None)
    target_dim = reembed.dim if reembed is not None else src_spec.dim
    target_fp = dict(reembed.fingerprint) if reembed is not None else src_spec.fingerprint
    dst_col = open_destination(src, dst, dim=target_dim, fingerprint=target_fp, lexical=src_spec.lexical)

    report = MigrationReport(
        source=f"{src.store!r}/{src.name}", destination=f"{dst_col.store!r}/{dst_col.name}",
        dim=target_dim, fingerprint=target_fp,
    )
    started = time.perf_counter()
    # Comparing pages with the destination costs a fetch per page: only worth it when the
    # destination already holds something (a resumed or repeated run).
    compare = resume and dst_col.count() > 0
    try:
        _copy(src, dst_col, report, batch_size=batch_size, reembed=reembed, compare=compare, progress=progress)
    except KeyboardInterrupt as exc:
        report.stopped = f"interrupted after {report.read} source records; run again to resume"
        raise JobCancelled(report) from exc
    except Exception as exc:
        report.stopped = (f"stopped after {report.read} source records: {type(exc).__name__}: {exc}; "
                          f"run again to resume")
        raise MigrationInterrupted(f"migration stopped: {type(exc).__name__}: {exc} (what was "
                                   f"written stays; a re-run resumes)", report) from exc
    finally:
        report.seconds = time.perf_counter() - started
    log.info("migrated %d records (%d skipped, %d failed) in %.1fs",
             report.written, report.skipped, len(report.failed), report.seconds)
    if verify and report.stopped is None:
        report.verification = verify_migration(
            src, dst_col, reembed=reembed, sample=verify_sample, queries=verify_queries, seed=seed
        )
    return report


def open_destination(
    src: Collection, dst: Destination, *, dim: int, fingerprint: Mapping[str, Any] | None,
    lexical: LexicalSpec | None = None,
) -> Collection:
    """Check (or create) the destination; refuse one that disagrees before anything is written.

    A hybrid source (``lexical``) makes a hybrid destination: created with the same lexical
    settings (the destination database computes its own lexical side from each record's text),
    and an existing dense-only destination is refused rather than silently losing it.
    """
    if isinstance(dst, Collection):
        store, name = dst.store, dst.name
    elif (isinstance(dst, tuple) and len(dst) == 2 and isinstance(dst[0], VectorStore)
          and isinstance(dst[1], str)):
        store, name = dst
    else:
        raise InputError(f"dst must be a Collection or a (VectorStore, name) pair, got {dst!r:.80}")
    if store is src.store and name == src.name:
        raise ConfigError(f"source and destination are the same collection {name!r}")
    existing = _describe(store, name)
    if existing is None:
        col = store.collection(name, dim=dim, create=True, hybrid=lexical)
    else:
        if lexical is not None and existing.lexical is None:
            raise NotHybrid(
                f"the source collection {src.name!r} is hybrid but the destination {name!r} exists "
                f"dense-only: migrating would lose the lexical side. Use a new destination name "
                f"(it is created hybrid) or drop the destination first"
            )
        # Metric first, then dimension: the checks of Collection opening, with both values named.
        check_spec(existing, dim=dim, embedder=None)
        if existing.fingerprint and fingerprint_digest(existing.fingerprint) != fingerprint_digest(fingerprint):
            wanted = describe_fingerprint(fingerprint) if fingerprint else "an unknown model (no fingerprint)"
            raise FingerprintMismatch(
                f"destination collection {name!r} was written by "
                f"{describe_fingerprint(existing.fingerprint)}, but the vectors to migrate come "
                f"from {wanted}; they are not comparable. Use another destination name"
                + ("." if fingerprint is None else ", or re-embed with reembed=Embedder(...) of its model.")
            )
        if isinstance(dst, Collection):
            col, col.spec = dst, existing  # the caller's object, brought up to date
        else:
            col = store.collection(name, create=False, check_fingerprint=False)
    if fingerprint and not col.fingerprint:
        col.set_fingerprint(fingerprint)
    return col


def _describe(store: VectorStore, name: str) -> Any:
    return call_with_retry(store.describe_collection, name, policy=store.retry_policy)


# ------------------------------------------------------------------------------ the copy

@dataclass
class _Page:
    records: list[Record]
    read: int
    skipped: int
    failed: list[FailedRecord]
    reembedded: int = 0
    normalized: int = 0


class _Stop(Exception):
    pass


def _copy(
    src: Collection, dst: Collection, report: MigrationReport, *, batch_size: int,
    reembed: EmbedderLike | None, compare: bool, progress: Progress | None,
) -> None:
    # Some clients (Qdrant local mode) are not thread-safe, so calls into the destination from
    # both threads (resume fetches, writes) take dst_lock, and so do source reads when src and
    # dst share one client. Reading and embedding the next page run outside it: they overlap
    # the writes, which is the point of the pipeline.
    dst_lock = threading.Lock()
    src_lock = dst_lock if src.store is dst.store else threading.Lock()
    pages: queue.Queue[_Page | BaseException | None] = queue.Queue(maxsize=_QUEUE_PAGES)
    stop = threading.Event()

    def put(item: _Page | BaseException | None) -> None:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def read_ahead() -> None:
        try:
            scroll = src.scroll(batch_size, with_vectors=reembed is None)
            while not stop.is_set():
                with src_lock:
                    page = next(scroll, None)
                if page is None:
                    break
                put(_prepare(page, dst, reembed, compare, dst_lock))
            put(None)
        except _Stop:
            return
        except BaseException as exc:  # handed to the writer, re-raised there
            try:
                put(exc)
            except _Stop:
                return

    reader = threading.Thread(target=read_ahead, name="bge-vdb-migrate-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = pages.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if item.records:
                with dst_lock:
                    result = dst.write(item.records)
                report.written += result.written
                report.failed.extend(result.failed)
                # Collection.write has already spent the retry budget on this page: the other
                # pages would each spend it again. Stop; a re-run resumes from here.
                if any(f.transient for f in result.failed):
                    report.stopped = (f"the destination kept failing after retries; stopped after "
                                      f"{report.read + item.read} source records. Run again to resume.")
            report.read += item.read
            report.skipped += item.skipped
            report.reembedded += item.reembedded
            report.normalized += item.normalized
            report.failed.extend(item.failed)
            if progress is not None:
                progress(report)
            if report.stopped:
                break
    finally:
        stop.set()
        reader.join()


def _prepare(
    page: Sequence[Record], dst: Collection, reembed: EmbedderLike | None, compare: bool,
    dst_lock: threading.Lock,
) -> _Page:
    """Validate one source page into records ready to write (and re-embed them)."""
    out = _Page(records=[], read=len(page), skipped=0, failed=[])
    ready: list[Record] = []
    max_meta = dst.store.max_metadata_bytes
    fits = _fits(reembed, page)
    for rec in page:
        where = f"record {rec.id!r}"
        try:
            metadata = check_metadata(rec.metadata, where, max_meta)
            if reembed is not None:
                if not isinstance(rec.text, str) or not rec.text.strip():
                    raise InputError(f"{where} has no text to re-embed")
                vector = None
            else:
                vector, renormed = _copy_vector(rec.vector, dst.dim, where)
                out.normalized += renormed
        except (InputError, DimensionMismatch) as exc:
            out.failed.append(FailedRecord(rec.id, str(exc)))
            continue
        content_hash = rec.content_hash
        if reembed is not None and rec.id in fits:
            content_hash = carry_to_model(content_hash, model_digest(reembed.fingerprint), fits=fits[rec.id])
        ready.append(Record(rec.id, vector, rec.text, metadata, content_hash))
    if compare and ready:
        with dst_lock:
            held = {r.id: r for r in dst.fetch([r.id for r in ready], with_vectors=reembed is None)}
        todo = [r for r in ready if not same_record(r, held.get(r.id), vectors=reembed is None)]
        out.skipped = len(ready) - len(todo)
        ready = todo
    if reembed is not None and ready:
        vectors = reembed.embed_documents([r.text or "" for r in ready])
        if len(vectors) != len(ready):
            raise ModelError(f"the embedder returned {len(vectors)} vectors for {len(ready)} texts")
        ready = [
            Record(r.id, check_vector(v, dst.dim, f"re-embedding of record {r.id!r}"),
                   r.text, r.metadata, r.content_hash)
            for r, v in zip(ready, vectors, strict=True)
        ]
        out.reembedded = len(ready)
    out.records = ready
    return out


def _fits(reembed: EmbedderLike | None, page: Sequence[Record]) -> dict[str, bool]:
    """For each record with text, whether the new model takes it whole (no truncation).

    Empty when the embedder cannot count tokens: content hashes are then copied unchanged, and
    a later sync with the new model re-embeds (it cannot tell what the model would truncate).
    """
    count = getattr(reembed, "count_tokens", None)
    max_len = getattr(reembed, "max_length", None)
    if reembed is None or count is None or max_len is None:
        return {}
    texts = [(r.id, r.text) for r in page if isinstance(r.text, str) and r.text.strip()]
    if not getattr(reembed, "counts_tokens", True):
        # A server with no tokenizer here: what it truncated is unknown, so no text is recorded
        # as fitting whole (as sync records it): a later sync that splits re-examines them.
        return {i: False for i, _ in texts}
    counts = count([t for _, t in texts]) if texts else []
    return {i: n <= int(max_len) for (i, _), n in zip(texts, counts, strict=True)}


def _copy_vector(value: Any, dim: int, where: str) -> tuple[np.ndarray, int]:
    """The stored vector as float32, bit for bit when it is unit length; else normalized."""
    if value is None:
        raise InputError(f"{where}: the source returned no vector")
    arr = np.asarray(value, dtype=np.float32)
    if (arr.ndim == 1 and arr.shape[0] == dim and np.all(np.isfinite(arr))
            and abs(float(np.linalg.norm(arr.astype(np.float64))) - 1.0) <= UNIT_TOL):
        return arr, 0
    return check_vector(value, dim, where), 1


__all__ = ["MigrationReport", "Verification", "migrate", "open_destination", "verify_migration"]
