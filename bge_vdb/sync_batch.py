"""One batch of a sync: classify against the store, plan, embed in bounded steps, write in the
crash-safe order. :mod:`bge_vdb.sync` runs batches through a pipeline and ``sync_dataset`` runs
them in Ray actors; both go through :class:`BatchSyncer` (via ``sync.SyncSession``).

A split document ``d`` is stored as ``d#0 .. d#n-1``; every write and delete keeps one invariant:

    every chunk ``d#i`` (i >= 1) in the store has ``i < hw(d#0)``, where ``hw`` is a pending
    marker's bound or a complete marker's chunk count; without ``d#0``, ``d`` has no chunk,

so a document's chunks are always found from its ``#0`` record, without a scan:

* a write that creates or removes chunks first makes ``d#0`` a *pending* marker whose bound covers
  the old and the new chunks, acknowledged before any chunk is written;
* the *complete* marker (count ``n``, a manifest of chunks 1..n-1) is written only after every
  chunk landed and every chunk at ``n`` or above was deleted;
* a document that fits again is written whole first, its chunks are deleted next, ``d#0`` last.

A complete marker is trusted only once the chunks it lists were fetched and match its manifest
(one fetch per batch), so a rolled-back source or a chunk removed since is seen and repaired.
Unchanged documents are neither tokenized nor embedded; chunks already stored with the right
text at the right place are reused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConnectorError, DimensionMismatch, FailedRecord, InputError, TransientError
from .store import MAX_ID_BYTES, Collection, check_id, check_metadata, check_text, check_vector
from .sync_hash import (
    ContentHash,
    chunk_hash,
    chunk_id,
    digest,
    manifest,
    marker_hash,
    model_digest,
    pending_hash,
    reserved_id,
    split_tag,
    whole_hash,
)
from .sync_report import CHUNK_KEY, COUNT_KEY, PARENT_KEY, RESERVED_KEYS, SyncReport
from .types import Document, EmbedderProtocol, Record, UpsertResult

ON_LONG = ("truncate", "split", "error")


@dataclass
class DocPlan:
    """What the writer does for one document (``records`` get their vectors step by step)."""

    id: str
    status: str  # "added" | "updated" | "cleanup"
    reason: str | None = None
    records: list[Record] = field(default_factory=list)  # the whole record, or chunks to (re)write
    marker: Record | None = None  # the complete #0 marker of a split document
    pending_hw: int | None = None  # first turn #0 into a pending marker with this bound
    delete_first: list[str] = field(default_factory=list)  # surplus chunks, before the marker
    delete_last: list[str] = field(default_factory=list)  # replaced whole record / old marker

    def pending_record(self) -> Record:
        assert self.marker is not None and self.pending_hw is not None
        parsed = ContentHash.parse(self.marker.content_hash)
        assert parsed is not None
        m = self.marker
        return Record(m.id, m.vector, m.text, m.metadata, pending_hash(parsed.model, self.pending_hw, parsed.content))


@dataclass
class _Slot:
    plan: DocPlan
    record: Record
    is_marker: bool
    tokens: int
    truncated: bool


@dataclass
class Batch:
    """A planned batch: its plans, texts to embed, the shape of each document, and failures
    (set by the embedding side and the writer, read by the final step)."""

    plans: list[DocPlan] = field(default_factory=list)
    slots: list[_Slot] = field(default_factory=list)
    shapes: list[tuple[int, str]] = field(default_factory=list)  # (0 whole | n chunks | -1, id)
    failed: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, doc_id: str, reason: str) -> None:
        with self.lock:
            self.failed.setdefault(doc_id, []).append(reason)

    def live(self, doc_id: str) -> bool:
        with self.lock:
            return doc_id not in self.failed


@dataclass
class Step:
    """A bounded unit of the writer's work: pending markers, then records, and on the batch's
    last step the deletes, complete markers and the tally."""

    batch: Batch
    pending: list[DocPlan]
    records: list[tuple[DocPlan, Record]]
    last: bool


@dataclass
class _Doc:
    """A document being classified: what the store holds for it."""

    doc: Document
    digest: str
    bare: Record | None
    marker: Record | None
    reason: str = ""
    n_tokens: int = 0
    chunks: list[str] = field(default_factory=list)

    @property
    def marker_hash(self) -> ContentHash | None:
        return ContentHash.parse(self.marker.content_hash) if self.marker is not None else None

    @property
    def hw(self) -> int:
        """Every stored chunk of this document has an index below this (the invariant)."""
        if self.marker is None:
            return 0
        parsed = self.marker_hash
        if parsed is not None and parsed.pending_hw is not None:
            return parsed.pending_hw
        n = self.marker.metadata.get(COUNT_KEY)
        return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1


def _own_marker(rec: Record | None, doc_id: str) -> Record | None:
    if rec is None or rec.metadata.get(PARENT_KEY) != doc_id or rec.metadata.get(CHUNK_KEY) != 0:
        return None  # absent, or a record of someone else's named like a chunk
    return rec


class BatchSyncer:
    """Classifies, plans, embeds and writes batches of documents into one collection."""

    def __init__(self, col: Collection, embedder: EmbedderProtocol, *, on_long: str, window: int | None,
                 overlap: int, dry_run: bool, report: SyncReport, step_texts: int) -> None:
        self.col = col
        self.emb = embedder
        self.on_long = on_long
        self.window = window
        self.overlap = overlap
        self.dry_run = dry_run
        self.report = report
        self.step_texts = max(1, step_texts)
        self.fpd = model_digest(embedder.fingerprint)
        # False for a remote embedder with no tokenizer: documents go whole, the server truncates.
        self.counts_tokens = bool(getattr(embedder, "counts_tokens", True))
        self.split_tag = split_tag(window, overlap)
        self.whole_tags = {"w", "t"} if on_long == "truncate" else {"w"}
        self.store_lock = threading.Lock()  # connectors need not be thread-safe
        self.report_lock = threading.Lock()  # the writer thread updates the report too
        self.max_meta = col.store.max_metadata_bytes

    # ------------------------------------------------------------------------------ input
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
        if reserved_id(doc_id):
            base, _, i = doc_id.rpartition("#")
            raise InputError(f"{where}: ids ending in '#' followed by digits are reserved for the "
                             f"chunks of split documents (this one is chunk {i} of {base!r}); rename it")
        return Document(doc_id, check_text(text, where), check_metadata(meta, where, self.max_meta))

    # ---------------------------------------------------------------------- classification
    def plan(self, docs: list[Document]) -> Batch:
        """Read what the store holds for ``docs`` and decide what to do with each (no embedding)."""
        stored = self._fetch([x for d in docs for x in (d.id, chunk_id(d.id, 0))])
        batch = Batch()
        unchanged = 0
        changed: list[_Doc] = []
        complete: list[_Doc] = []  # complete markers of this content: verified below
        for d in docs:
            t = _Doc(d, digest(d.text, d.metadata), stored.get(d.id), _own_marker(stored.get(chunk_id(d.id, 0)), d.id))
            bare = ContentHash.parse(t.bare.content_hash) if t.bare is not None else None
            if (bare is not None and bare.model == self.fpd and bare.tag in self.whole_tags
                    and bare.content == t.digest and bare.extra is None):
                batch.shapes.append((0, d.id))
                if t.marker is None:
                    unchanged += 1
                else:  # an interrupted change of shape left chunks behind
                    batch.plans.append(DocPlan(d.id, "cleanup", delete_first=self._chunk_ids(d.id, 1, t.hw),
                                               delete_last=[t.marker.id]))
                continue
            mark = t.marker_hash
            if (mark is not None and self.on_long == "split" and mark.model == self.fpd
                    and mark.tag == self.split_tag and mark.content == t.digest and mark.extra):
                complete.append(t)
                continue
            t.reason = self._reason(t)
            changed.append(t)
        with self.report_lock:
            self.report.unchanged += unchanged
        self._tokenize(changed, batch)
        have = self._fetch([x for t in complete for x in self._chunk_ids(t.doc.id, 1, t.hw)]
                           + [x for t in changed for x in self._chunk_ids(t.doc.id, 1, min(len(t.chunks), t.hw))])
        broken = []
        for t in complete:
            if self._verified(t, have):
                batch.shapes.append((t.hw, t.doc.id))
                if t.bare is None:
                    with self.report_lock:
                        self.report.unchanged += 1
                else:
                    batch.plans.append(DocPlan(t.doc.id, "cleanup", delete_last=[t.doc.id]))
            else:
                t.reason = "chunks missing or from another version"
                broken.append(t)
        self._tokenize(broken, batch)
        for t in changed + broken:
            if t.chunks:
                batch.plans.append(self._plan_doc(t, have, batch))
        self._count_chunk_tokens(batch)
        return batch

    def _fetch(self, ids: list[str]) -> dict[str, Record]:
        if not ids:
            return {}
        with self.store_lock:
            return {r.id: r for r in self.col.fetch(ids, with_vectors=False)}

    @staticmethod
    def _chunk_ids(doc_id: str, start: int, stop: int) -> list[str]:
        return [chunk_id(doc_id, i) for i in range(start, stop)]

    def _reason(self, t: _Doc) -> str:
        if t.bare is None and t.marker is None:
            return "added"
        old = ContentHash.parse((t.bare or t.marker).content_hash)  # type: ignore[union-attr]
        if old is None:
            return "not written by sync"
        if old.model != self.fpd:
            return "model changed"
        if old.content != t.digest:
            return "content changed"
        if old.pending_hw is not None:
            return "an earlier run was interrupted"
        return "stored shape changed (on_long/window, or an older bge-vdb)"

    def _verified(self, t: _Doc, have: Mapping[str, Record]) -> bool:
        """Whether chunks 1..n-1 are stored, in place, and exactly those the marker lists."""
        contents = []
        for i in range(1, t.hw):
            rec = have.get(chunk_id(t.doc.id, i))
            parsed = ContentHash.parse(rec.content_hash) if rec is not None else None
            if (rec is None or parsed is None or rec.metadata.get(PARENT_KEY) != t.doc.id
                    or rec.metadata.get(CHUNK_KEY) != i or parsed.model != self.fpd or parsed.tag != "c"):
                return False
            contents.append(parsed.content)
        mark = t.marker_hash
        return mark is not None and manifest(t.hw, contents) == mark.extra

    # ----------------------------------------------------------------------------- planning
    def _tokenize(self, docs: list[_Doc], batch: Batch) -> None:
        """Token counts and the chunks of each changed document; refusals become failures."""
        if not docs:
            return
        texts = [t.doc.text for t in docs]
        counts = self.emb.count_tokens(texts) if self.counts_tokens else [0] * len(texts)
        max_len = int(self.emb.max_length)
        for t, n_tok in zip(docs, counts, strict=True):
            t.n_tokens = n_tok
            d = t.doc
            too_long = n_tok > max_len
            why = None
            if too_long and self.on_long == "error":
                why = f"document is {n_tok} tokens, over the model's limit of {max_len}; sync with on_long='split' or 'truncate'"
            elif too_long and self.on_long == "split" and RESERVED_KEYS & set(d.metadata):
                why = (f"metadata uses {sorted(RESERVED_KEYS & set(d.metadata))}, which sync sets on "
                       f"the chunks of a split document; rename them")
            if why is not None:
                with self.report_lock:
                    self.report.failed.append(FailedRecord(d.id, why))
                batch.shapes.append((-1, d.id))
                continue
            if too_long and self.on_long == "split":
                t.chunks = list(self.emb.split_text(d.text, window=self.window, overlap=self.overlap))
            else:
                t.chunks = [d.text]

    def _plan_doc(self, t: _Doc, have: Mapping[str, Record], batch: Batch) -> DocPlan:
        d, fpd = t.doc, self.fpd
        plan = DocPlan(d.id, "added" if t.reason == "added" else "updated", reason=t.reason)
        max_len = int(self.emb.max_length)
        if len(t.chunks) <= 1:
            too_long = t.n_tokens > max_len
            # Not counted (a server, no tokenizer): stored as "maybe truncated", so a later run
            # that counts tokens and splits re-examines the document instead of trusting it whole.
            maybe_cut = too_long or not self.counts_tokens
            rec = Record(d.id, None, d.text, d.metadata, whole_hash(fpd, maybe_cut, t.digest))
            plan.records.append(rec)
            batch.slots.append(_Slot(plan, rec, False, min(t.n_tokens, max_len), too_long))
            if t.marker is not None:
                plan.delete_first = self._chunk_ids(d.id, 1, t.hw)
                plan.delete_last = [t.marker.id]
            batch.shapes.append((0, d.id))
            return plan
        n = len(t.chunks)
        metas: list[dict[str, Any]] = [{**d.metadata, PARENT_KEY: d.id, CHUNK_KEY: i} for i in range(n)]
        metas[0][COUNT_KEY] = n
        contents = [digest(t.chunks[i], metas[i]) for i in range(1, n)]
        plan.marker = Record(chunk_id(d.id, 0), None, t.chunks[0], metas[0],
                             marker_hash(fpd, self.split_tag, t.digest, manifest(n, contents)))
        batch.slots.append(_Slot(plan, plan.marker, True, 0, False))
        for i in range(1, n):
            rec = Record(chunk_id(d.id, i), None, t.chunks[i], metas[i], chunk_hash(fpd, contents[i - 1]))
            held = have.get(rec.id)
            if held is None or held.content_hash != rec.content_hash:  # else: reused as stored
                plan.records.append(rec)
                batch.slots.append(_Slot(plan, rec, False, 0, False))
        plan.delete_first = self._chunk_ids(d.id, n, t.hw)
        stored_pending = t.marker_hash.pending_hw if t.marker_hash is not None else None
        if (plan.records or plan.delete_first) and not (stored_pending is not None and stored_pending >= n):
            plan.pending_hw = max(t.hw, n)
        if t.bare is not None:
            plan.delete_last = [d.id]
        batch.shapes.append((n, d.id))
        with self.report_lock:
            self.report.split += 1
        return plan

    def _count_chunk_tokens(self, batch: Batch) -> None:
        """Chunk texts were cut to fit but may re-tokenize a little longer: counted, never silent."""
        chunk_slots = [s for s in batch.slots if s.plan.marker is not None]
        if not chunk_slots:
            return
        max_len = int(self.emb.max_length)
        counts = self.emb.count_tokens([s.record.text or "" for s in chunk_slots])
        for s, c in zip(chunk_slots, counts, strict=True):
            s.tokens, s.truncated = min(c, max_len), c > max_len

    # ---------------------------------------------------------------------------- embedding
    def steps(self, batch: Batch) -> Iterator[Step]:
        """Embed the batch's texts ``step_texts`` at a time, markers first; yield writer steps.

        With ``dry_run`` nothing is embedded: the counts are taken and the batch tallied here.
        """
        slots = sorted(batch.slots, key=lambda s: not s.is_marker)  # stable: markers first
        if self.dry_run:
            self._count(slots)
            self.tally(batch)
            return
        if not slots:
            yield Step(batch, [], [], last=True)
            return
        for start in range(0, len(slots), self.step_texts):
            part = slots[start : start + self.step_texts]
            vectors = self.emb.embed_documents([s.record.text or "" for s in part])
            if len(vectors) != len(part):
                raise InputError(f"the embedder returned {len(vectors)} vectors for {len(part)} texts")
            self._count(part)
            pending, records = [], []
            for s, vec in zip(part, vectors, strict=True):
                try:
                    v = check_vector(vec, self.col.dim, f"embedding of {s.record.id!r}")
                except (InputError, DimensionMismatch) as exc:
                    batch.fail(s.plan.id, f"{s.record.id}: {exc}")
                    continue
                r = s.record
                rec = Record(r.id, v, r.text, r.metadata, r.content_hash)
                if s.is_marker:
                    s.plan.marker = rec
                    if s.plan.pending_hw is not None:
                        pending.append(s.plan)
                else:
                    records.append((s.plan, rec))
            yield Step(batch, pending, records, last=start + self.step_texts >= len(slots))

    def _count(self, slots: list[_Slot]) -> None:
        with self.report_lock:
            self.report.embedded += len(slots)
            self.report.tokens += sum(s.tokens for s in slots)
            self.report.truncated += sum(1 for s in slots if s.truncated)

    # ------------------------------------------------------------------------------ writing
    def execute(self, step: Step) -> None:
        """Write one step in the crash-safe order; runs on the writer thread."""
        b = step.batch
        if step.pending:
            self._write([p.pending_record() for p in step.pending if b.live(p.id)], b, final=False)
        self._write([r for p, r in step.records if b.live(p.id)], b, final=True)
        if not step.last:
            return
        self._delete([p for p in b.plans if b.live(p.id)], "delete_first", b)
        self._write([p.marker for p in b.plans if p.marker is not None and b.live(p.id)], b, final=True)
        self._delete([p for p in b.plans if b.live(p.id)], "delete_last", b)
        self.tally(b)

    def _write(self, records: list[Record], b: Batch, *, final: bool) -> None:
        if not records:
            return
        with self.store_lock:
            res = self.col.write(records, UpsertResult())
        if final:  # pending markers are bookkeeping: `written` counts records in their final form
            with self.report_lock:
                self.report.written += res.written
        for f in res.failed:
            b.fail(self._owner(f.id, b), f"{f.id}: {f.reason}")

    @staticmethod
    def _owner(record_id: str, b: Batch) -> str:
        if any(p.id == record_id for p in b.plans):
            return record_id
        return record_id.rpartition("#")[0] if reserved_id(record_id) else record_id

    def _delete(self, plans: list[DocPlan], which: str, b: Batch) -> None:
        groups = [(p, getattr(p, which)) for p in plans if getattr(p, which)]
        if not groups:
            return
        try:
            with self.store_lock:
                self.col.delete([x for _, ids in groups for x in ids])
        except TransientError as exc:  # retried already: every document of the call failed
            for p, _ in groups:
                b.fail(p.id, f"stale records not deleted: {exc}")
            return
        except ConnectorError:  # refused: find whose (one call per document)
            for p, ids in groups:
                try:
                    with self.store_lock:
                        self.col.delete(ids)
                except ConnectorError as exc:
                    b.fail(p.id, f"stale records not deleted: {exc}")
                    continue
                with self.report_lock:
                    self.report.stale_deleted += len(ids)
            return
        with self.report_lock:
            self.report.stale_deleted += sum(len(ids) for _, ids in groups)

    def tally(self, b: Batch) -> None:
        rep = self.report
        with self.report_lock:
            for p in b.plans:
                if p.id in b.failed:
                    rep.failed.append(FailedRecord(p.id, "; ".join(b.failed[p.id])))
                elif p.status == "added":
                    rep.added += 1
                elif p.status == "updated":
                    rep.updated += 1
                    key = p.reason or "changed"
                    rep.update_reasons[key] = rep.update_reasons.get(key, 0) + 1
                else:
                    rep.unchanged += 1


def item_id(item: Any, pos: int, id_field: str) -> str:
    """The id to report a bad item under: its own when it has one, else ``#<position>``."""
    if isinstance(item, FailedRecord):
        return item.id
    raw = item.id if isinstance(item, Document) else item.get(id_field) if isinstance(item, Mapping) else None
    return raw if isinstance(raw, str) and raw else f"#{pos}"
