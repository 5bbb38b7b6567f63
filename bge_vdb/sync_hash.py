"""The bookkeeping sync keeps in every record: content hashes and the ids of a split document.

A record's ``content_hash`` is ``"<model>:<tag>:<content>[:<extra>]"``: ``model`` is the
:func:`~bge_vdb.types.fingerprint_digest` of the embedder that made the vector (``"nofp"`` when it
has no fingerprint), ``content`` a digest of what was embedded, and ``tag`` the record's shape:

========================  ==========================================================================
``w`` / ``t``             a whole document (``t``: the model truncated it); content = digest(text, metadata)
``c``                     chunk ``i >= 1`` of a split document; content = digest(chunk text, chunk metadata)
``s<window>,<overlap>``   the ``#0`` marker of a *complete* split document; content = the document's
                          digest, extra = the manifest, digest(n, content of chunks 1..n-1)
``p<hw>``                 a *pending* ``#0`` marker: a write of the document is under way or was
                          interrupted, and its chunks may exist at any index below ``hw``
========================  ==========================================================================

Markers written before the manifest existed (``s`` tags without ``extra``) are "legacy": sync
re-checks such a document once. A user id ending in ``#`` and digits is refused, so a chunk id can
never be reached by a document id (see :func:`reserved_id`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .types import fingerprint_digest

_CHUNK_SUFFIX = re.compile(r"#[0-9]+\Z")


def chunk_id(doc_id: str, i: int) -> str:
    """The id of chunk ``i`` of split document ``doc_id``."""
    return f"{doc_id}#{i}"


def reserved_id(doc_id: str) -> bool:
    """Whether a document id has the shape of a chunk id (``...#<digits>``), which sync refuses."""
    return _CHUNK_SUFFIX.search(doc_id) is not None


def model_digest(fingerprint: Mapping[str, Any] | None) -> str:
    """The model part of a content hash: the fingerprint's digest, ``"nofp"`` without one."""
    return fingerprint_digest(fingerprint) or "nofp"


def digest(*parts: Any) -> str:
    """A 32-hex-digit digest of JSON-serialisable parts (key order and spacing do not matter)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def manifest(n: int, chunk_contents: Sequence[str]) -> str:
    """What a complete marker vouches for: the number of chunks and the content of 1..n-1."""
    return digest(n, list(chunk_contents))


@dataclass(frozen=True)
class ContentHash:
    """A parsed content hash (see the module docstring)."""

    model: str
    tag: str
    content: str
    extra: str | None = None

    @classmethod
    def parse(cls, value: str | None) -> ContentHash | None:
        """None for a hash sync did not write (or no hash at all)."""
        parts = (value or "").split(":")
        if len(parts) == 3 and all(parts):
            return cls(parts[0], parts[1], parts[2])
        if len(parts) == 4 and all(parts):
            return cls(parts[0], parts[1], parts[2], parts[3])
        return None

    def __str__(self) -> str:
        return ":".join(x for x in (self.model, self.tag, self.content, self.extra) if x is not None)

    @property
    def pending_hw(self) -> int | None:
        """For a pending marker, the bound below which chunks may exist."""
        if self.tag.startswith("p") and self.tag[1:].isdigit():
            return int(self.tag[1:])
        return None

    @property
    def is_split_marker(self) -> bool:
        return self.tag.startswith("s")


def whole_hash(model: str, truncated: bool, content: str) -> str:
    return str(ContentHash(model, "t" if truncated else "w", content))


def chunk_hash(model: str, content: str) -> str:
    return str(ContentHash(model, "c", content))


def marker_hash(model: str, split_tag: str, content: str, chunks_manifest: str) -> str:
    return str(ContentHash(model, split_tag, content, chunks_manifest))


def pending_hash(model: str, hw: int, content: str) -> str:
    return str(ContentHash(model, f"p{hw}", content))


def split_tag(window: int | None, overlap: int) -> str:
    return f"s{window if window is not None else '-'},{overlap}"


def carry_to_model(value: str | None, model: str, *, fits: bool) -> str | None:
    """The content hash of a record whose text was re-embedded by another model (``migrate``).

    What was embedded is unchanged, so only the model part moves, and a following sync with the
    new model finds the record current. ``fits`` says whether the record's text fits the new
    model's token limit: a whole document that does not is marked truncated (``t``); a chunk or
    marker that does not keeps its old hash, so sync re-splits that document for the new model
    instead of trusting a vector of a truncated chunk. Hashes sync did not write, and pending
    markers (a write to be redone anyway), are returned unchanged.
    """
    parsed = ContentHash.parse(value)
    if parsed is None or parsed.pending_hw is not None:
        return value
    if parsed.tag in ("w", "t"):
        return str(replace(parsed, model=model, tag="w" if fits else "t"))
    if parsed.tag == "c" or parsed.is_split_marker:
        return str(replace(parsed, model=model)) if fits else value
    return value
