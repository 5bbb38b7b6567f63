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
from .lexical import LexicalSpec


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
    """One search result; ``score`` is higher-is-better on every connector.

    It is what the search ranked by: cosine similarity (``mode="dense"``), BM25 (``"lexical"``),
    the fused score (``"hybrid"``), or the cross-encoder's score after ``rerank=``.
    """

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
    ``lexical`` is set on a hybrid-capable collection (``store.collection(..., hybrid=True)``):
    how its text is analyzed and scored for lexical search (see :mod:`bge_vdb.lexical`).
    """

    name: str
    dim: int
    distance: Distance = Distance.COSINE
    fingerprint: Mapping[str, Any] | None = None
    lexical: LexicalSpec | None = None


@dataclass
class UpsertResult:
    """What an upsert did: how many records were written and which were not (with reasons)."""

    written: int = 0
    failed: list[FailedRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every record was written."""
        return not self.failed


@runtime_checkable
class EmbedderProtocol(Protocol):
    """What every part of bge-vdb needs from an embedder: collections, ``sync_corpus``,
    ``migrate(reembed=...)``, verification, the LangChain/LlamaIndex classes, Ray and the CLI.

    ``bge_vdb.Embedder`` (in-process) and the remote embedders (``tei+http://...``,
    ``openai+http://...``, see :mod:`bge_vdb.remote`) implement it, and one shared test suite
    (tests/remote/suite.py) checks each of them against this contract:

    * ``dim``: the vectors' dimension; ``fingerprint``: what determines them (see
      :func:`fingerprint_digest`); ``max_length``: the token limit of one text.
    * ``embed_documents`` / ``embed_queries`` / ``embed_query``: float32 arrays in input order;
      the query instruction goes on queries only; empty texts are an ``InputError`` naming the
      position. Texts over ``max_length`` tokens are truncated, never silently:
      ``last_truncated`` says how many of the last call's texts were.
    * ``counts_tokens``: whether ``count_tokens`` (full counts, special tokens included) and
      ``split_text`` (token windows for ``on_long='split'``) can work; False only for a remote
      embedder with neither a local tokenizer nor a tokenize endpoint (they then raise
      :class:`~bge_vdb.errors.TokenCountUnavailable`, and sync says so in its report).
    """

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> Mapping[str, Any]: ...

    @property
    def max_length(self) -> int: ...

    @property
    def counts_tokens(self) -> bool: ...

    @property
    def last_truncated(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def split_text(self, text: str, *, window: int | None = None, overlap: int = 32) -> list[str]: ...


#: The earlier name of :class:`EmbedderProtocol`, kept for code written against it.
EmbedderLike = EmbedderProtocol


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
