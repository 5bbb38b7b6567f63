"""What :func:`~bge_vdb.sync.sync_corpus` reports, and how split documents read back.

``SyncReport`` is the run's account (counts, failures by record, notes). ``group_hits`` folds
search hits of a split document's chunks back into one result per document, through the
metadata keys sync writes on every chunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import FailedRecord
from .types import Hit

#: Metadata keys sync adds to the records of a split document.
PARENT_KEY, CHUNK_KEY, COUNT_KEY = "parent_id", "chunk_index", "chunk_count"
RESERVED_KEYS = frozenset((PARENT_KEY, CHUNK_KEY, COUNT_KEY))


@dataclass
class SyncReport:
    """What a sync did (or, with ``dry_run``, would do). Counts are documents unless said."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # records deleted by mirror mode
    failed: list[FailedRecord] = field(default_factory=list)
    truncated: int = 0  # texts embedded truncated to the model's max_length (docs or chunks)
    embedded: int = 0  # texts embedded (documents and chunks)
    seconds: float = 0.0
    documents: int = 0  # documents read from the source, bad ones included
    written: int = 0  # records written
    split: int = 0  # documents stored as several chunks
    tokens: int = 0  # tokens embedded (after truncation)
    stale_deleted: int = 0  # chunk/whole records replaced by another shape of the same document
    update_reasons: dict[str, int] = field(default_factory=dict)
    fingerprint_note: str | None = None
    mirror_note: str | None = None
    tokens_note: str | None = None  # why tokens/truncated are not counted (a server, no tokenizer)
    aborted: str | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """True when no record failed and the run was not aborted."""
        return not self.failed and self.aborted is None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible data (what ``bge-vdb sync --json`` prints)."""
        out = asdict(self)
        out["failed"] = [{"id": f.id, "reason": f.reason} for f in self.failed]
        out["ok"] = self.ok
        return out

    def __str__(self) -> str:
        verb = "would be " if self.dry_run else ""
        lines = [
            f"{'dry run: ' if self.dry_run else ''}{self.documents} documents in {self.seconds:.1f}s: "
            f"{self.added} {verb}added, {self.updated} {verb}updated, {self.unchanged} unchanged, "
            f"{self.deleted} {verb}deleted, {len(self.failed)} failed",
            f"embedded {self.embedded} texts ({self.tokens} tokens), wrote {self.written} records, "
            f"{self.truncated} truncated, {self.split} split",
        ]
        if self.update_reasons:
            lines.append("updates: " + ", ".join(f"{n} {r}" for r, n in sorted(self.update_reasons.items())))
        for note in (self.fingerprint_note, self.mirror_note, self.tokens_note,
                     self.aborted and f"aborted: {self.aborted}"):
            if note:
                lines.append(note)
        for f in self.failed[:10]:
            lines.append(f"  failed {f.id!r}: {f.reason}")
        if len(self.failed) > 10:
            lines.append(f"  ... and {len(self.failed) - 10} more failures")
        return "\n".join(lines)


@dataclass(frozen=True)
class DocumentHits:
    """Search hits grouped back to their document (see :func:`group_hits`)."""

    id: str
    score: float  # the best chunk's score
    hits: list[Hit]


def group_hits(hits: Iterable[Hit]) -> list[DocumentHits]:
    """Group hits of split documents by ``parent_id``, best document first.

    Whole documents form a group of one. Ask ``search`` for more hits than documents you need,
    since several chunks of one document may rank high.
    """
    groups: dict[str, list[Hit]] = {}
    for h in hits:
        parent = h.metadata.get(PARENT_KEY)
        key = parent if isinstance(parent, str) and h.id.startswith(parent + "#") else h.id
        groups.setdefault(key, []).append(h)
    out = [DocumentHits(k, max(x.score for x in v), sorted(v, key=lambda x: -x.score)) for k, v in groups.items()]
    return sorted(out, key=lambda g: -g.score)
