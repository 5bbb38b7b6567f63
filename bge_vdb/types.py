"""Plain data that crosses every boundary of the library: documents, records, hits, specs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import FailedRecord


class Distance(str, Enum):
    """Distance metric of a collection. bge-vdb creates cosine collections only; the others are
    recognised so that a collection made elsewhere is reported precisely, not misread."""

    COSINE = "cosine"
    DOT = "dot"
    EUCLID = "euclid"
    MANHATTAN = "manhattan"
    OTHER = "other"


@dataclass(frozen=True)
class Document:
    """A text to embed and store, under the caller's own id."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Record:
    """A stored unit: the caller's id, its vector and what travels with it.

    ``content_hash`` is opaque bookkeeping (``sync_corpus`` keeps the hash of text, metadata and
    embedder there to skip unchanged documents); connectors store and return it unchanged.
    """

    id: str
    vector: Any = None  # np.ndarray | Sequence[float] | None (None on fetches without vectors)
    text: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    content_hash: str | None = None


@dataclass(frozen=True, eq=False)
class Hit:
    """One search result. ``score`` is cosine similarity (higher is better) on every connector."""

    id: str
    score: float
    text: str | None
    metadata: Mapping[str, Any]
    vector: Any = None


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection is: its dimension, metric and the fingerprint of the model that wrote it.

    ``dim`` is 0 when the database does not record it and the collection holds no vector yet
    (Weaviate, for a class made outside bge-vdb): it then takes the dimension it is opened with.
    """

    name: str
    dim: int
    distance: Distance = Distance.COSINE
    fingerprint: Mapping[str, Any] | None = None


@dataclass
class UpsertResult:
    """What an upsert did: how many records were written and which were not (with reasons)."""

    written: int = 0
    failed: list[FailedRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@runtime_checkable
class EmbedderLike(Protocol):
    """What a collection needs from an embedder (``bge_vdb.Embedder`` is the real one)."""

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> Mapping[str, Any]: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


# Keys of a fingerprint that change stored vectors. The query instruction does not (it only
# touches queries) and neither does the device or precision a vector was computed with.
_VECTOR_IDENTITY_KEYS = ("model", "weights_sha256", "pooling", "normalize", "dim", "max_length")


def fingerprint_digest(fingerprint: Mapping[str, Any] | None) -> str | None:
    """A short stable digest of the parts of a fingerprint that determine document vectors.

    When the fingerprint names a weights hash, the model id/path is left out, so the same
    weights loaded from another directory or machine count as the same model.
    """
    if not fingerprint:
        return None
    keys = [k for k in _VECTOR_IDENTITY_KEYS if k in fingerprint]
    if fingerprint.get("weights_sha256"):
        keys = [k for k in keys if k != "model"]
    ident = {k: fingerprint[k] for k in keys}
    blob = json.dumps(ident, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
