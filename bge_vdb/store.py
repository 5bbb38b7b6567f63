"""The VectorStore interface, the Collection built once on top of it, and ``connect(url)``.

A connector implements a handful of primitives on raw, already-validated data (unit-length
float32 vectors, string ids, plain metadata). Everything users touch lives in
:class:`Collection` and is written once: input validation, embedding, de-duplication, batching
by count and bytes, retries, failure reporting, fingerprint and dimension checks.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np

from . import filters, lexical, rerank_search
from .errors import (
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    DimensionMismatch,
    FailedRecord,
    FingerprintMismatch,
    InputError,
    MetricMismatch,
    MissingExtra,
    ModelError,
    NotHybrid,
    RequestNotImplemented,
    TransientError,
    WriteError,
)
from .lexical import LexicalQuery, LexicalSpec
from .retry import DEFAULT_POLICY, RetryPolicy, call_with_retry
from .types import (
    CollectionSpec,
    Distance,
    Document,
    EmbedderLike,
    Hit,
    Record,
    UpsertResult,
    fingerprint_digest,
)

if TYPE_CHECKING:
    from .reranker import RerankerProtocol

log = logging.getLogger("bge_vdb")

# uuid5 namespace for databases whose point ids must be UUIDs (Qdrant, Weaviate): the same user
# id maps to the same UUID on every machine and in every run, so re-runs overwrite, never duplicate.
ID_NAMESPACE = uuid.UUID("5b0e1d7c-4a42-5b9e-9d59-6267652d7664")
MAX_ID_BYTES = 1024


def stable_uuid(user_id: str) -> str:
    """The deterministic UUID under which ``user_id`` is stored where a database needs UUIDs."""
    return str(uuid.uuid5(ID_NAMESPACE, user_id))


Cursor = Any  # opaque paging token of a connector's scroll; None means "from the start" / "done"


class VectorStore(ABC):
    """A database holding named cosine collections. Connectors implement the primitives below.

    Primitives receive validated input: ids are non-empty strings, vectors unit-length float32
    numpy arrays of the collection's dimension, ``where`` an already parsed filter AST. They map
    SDK errors into :mod:`bge_vdb.errors` (TransientError for anything worth retrying) and do not
    retry themselves: :class:`Collection` retries with ``retry_policy``.
    """

    scheme: ClassVar[str] = ""
    #: Largest number of records and request bytes one write call may carry.
    max_batch_count: ClassVar[int] = 500
    max_batch_bytes: ClassVar[int] = 8 * 1024 * 1024
    #: Largest serialized metadata of one record, where the database has such a limit.
    max_metadata_bytes: ClassVar[int | None] = None
    retry_policy: RetryPolicy = DEFAULT_POLICY

    # ----------------------------------------------------------------------------- primitives
    @abstractmethod
    def list_collections(self) -> list[str]:
        """Names of the collections in this store."""

    @abstractmethod
    def describe_collection(self, name: str) -> CollectionSpec | None:
        """The collection's spec, or None when it does not exist."""

    @abstractmethod
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create a cosine collection of ``spec.dim`` storing ``spec.fingerprint``."""

    @abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete the collection; dropping a missing one is not an error."""

    @abstractmethod
    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        """Replace the embedder fingerprint stored with the collection."""

    @abstractmethod
    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        """Write one batch (ids unique within it). Return the records the database refused one
        by one (empty when all landed); raise for a failure of the whole batch."""

    @abstractmethod
    def query(
        self, name: str, vector: np.ndarray, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        """Top ``k`` by cosine similarity (higher is better), best first."""

    @abstractmethod
    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        """Records for the ids that exist (any order; missing ids are left out)."""

    @abstractmethod
    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        """Delete by id; ids that do not exist are ignored."""

    @abstractmethod
    def scroll_page(
        self, name: str, cursor: Cursor, limit: int, where: filters.Node | None, with_vectors: bool
    ) -> tuple[list[Record], Cursor]:
        """One page of at most ``limit`` records from ``cursor`` and the next cursor (None at the end)."""

    @abstractmethod
    def count(self, name: str, where: filters.Node | None = None) -> int:
        """Number of records in collection ``name`` (matching ``where`` when given)."""

    # ------------------------------------------------------------- lexical side (hybrid search)
    #: Whether the connector can create hybrid collections (``spec.lexical``) and run
    #: :meth:`lexical_query` on them; a connector may still refuse one server version.
    supports_lexical: ClassVar[bool] = False

    def hybrid_refusal(self) -> str | None:
        """Why this store cannot hold hybrid collections, naming what it lacks (None when it can).
        From ``supports_lexical``; a connector that refuses some server versions overrides it."""
        if self.supports_lexical:
            return None
        return f"{type(self).__name__} has no lexical search in bge-vdb"

    def lexical_query(
        self, name: str, query: LexicalQuery, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        """Top ``k`` by BM25 as :mod:`bge_vdb.lexical` defines it (records matching no query term
        are not hits), best first. Only called on collections whose spec has ``lexical``."""
        raise NotHybrid(f"{type(self).__name__} does not support lexical or hybrid search")

    def hybrid_query(
        self, name: str, vector: np.ndarray, query: LexicalQuery, k: int, where: filters.Node | None,
        with_vectors: bool, alpha: float, fusion: str,
    ) -> list[Hit]:
        """Top ``k`` of the dense and lexical searches fused as :func:`bge_vdb.lexical.fuse`
        defines it. This default runs both primitives and fuses on the client; connectors whose
        database fuses natively with the same meaning override it."""
        depth = lexical.fusion_depth(k)
        dense = self.query(name, vector, depth, where, with_vectors) if alpha > 0 else []
        lex = self.lexical_query(name, query, depth, where, with_vectors) if alpha < 1 else []
        return lexical.fuse_hits(dense, lex, alpha, fusion, k)

    def delete_where(self, name: str, where: filters.Node) -> int:
        """Delete the records matching ``where``; returns how many. Native where a connector can."""
        ids = [r.id for page in self._scroll_all(name, where, 1000) for r in page]
        for start in range(0, len(ids), 1000):
            call_with_retry(self.delete_ids, name, ids[start : start + 1000], policy=self.retry_policy)
        return len(ids)

    def record_nbytes(self, record: Record) -> int:
        """Estimated request bytes of one record, for batching under ``max_batch_bytes``."""
        dim = 0 if record.vector is None else len(record.vector)
        meta = len(json.dumps(record.metadata, ensure_ascii=False).encode())
        text = len((record.text or "").encode())
        return 4 * dim + meta + text + len(record.id.encode()) + 64

    def close(self) -> None:  # noqa: B027 (an optional hook, not an abstract primitive)
        """Release the client. The default does nothing."""

    @classmethod  # noqa: B027 (an optional hook, not an abstract primitive)
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        """Check what can be checked of ``url`` without opening anything (so a command can refuse
        it before loading a model): its options, and an embedded store's path, which must not be
        a file where a directory belongs and, with ``must_exist``, must hold a store already
        (StoreNotFound when it does not exist: opening one creates it). ``connect`` calls it;
        read-only commands pass ``must_exist=True``. The default checks nothing."""

    # --------------------------------------------------------------------- public conveniences
    def collection(
        self,
        name: str,
        *,
        embedder: EmbedderLike | None = None,
        dim: int | None = None,
        create: bool = True,
        check_fingerprint: bool = True,
        hybrid: bool | LexicalSpec | None = None,
    ) -> Collection:
        """Open ``name``, creating it (cosine, the embedder's dimension) when it does not exist.

        An existing collection must have the same dimension and the cosine metric; one written by
        another model is refused unless ``check_fingerprint=False``. A collection made outside
        bge-vdb (no stored fingerprint) opens normally.

        ``hybrid=True`` (or a :class:`~bge_vdb.lexical.LexicalSpec`) creates the collection
        hybrid-capable: its texts are also indexed for BM25, so ``search(mode="hybrid")`` and
        ``mode="lexical"`` work. Opening an existing dense-only collection with ``hybrid=True``
        is a :class:`~bge_vdb.errors.NotHybrid` error, and so is a database that cannot hold one.
        ``hybrid=None`` (the default) opens a collection as it is and creates one dense-only.
        """
        if not isinstance(name, str) or not name:
            raise InputError(f"a collection name must be a non-empty string, got {name!r}")
        wanted = lexical.as_spec(hybrid)
        refusal = self.hybrid_refusal() if wanted is not None else None
        if refusal is not None:
            raise NotHybrid(f"{self!r} cannot hold hybrid collections: {refusal}")
        if embedder is not None:
            if dim is not None and dim != embedder.dim:
                raise DimensionMismatch(f"dim={dim} was given but the embedder makes {embedder.dim}-d vectors")
            dim = embedder.dim
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise InputError(f"dim must be a positive int, got {dim!r}")
        spec = call_with_retry(self.describe_collection, name, policy=self.retry_policy)
        if spec is None:
            if not create:
                raise CollectionNotFound(f"collection {name!r} does not exist in {self!r}")
            if dim is None:
                raise ConfigError(
                    f"collection {name!r} does not exist; to create it pass embedder=... or dim=..."
                )
            fp = dict(embedder.fingerprint) if embedder is not None else None
            spec = CollectionSpec(name=name, dim=dim, distance=Distance.COSINE, fingerprint=fp, lexical=wanted)
            call_with_retry(self.create_collection, spec, policy=self.retry_policy)
            return Collection(self, spec, embedder)
        if embedder is not None:
            _probe_vectors(self, spec, embedder)
        check_spec(spec, dim=dim, embedder=embedder, check_fingerprint=check_fingerprint)
        lexical.check_opened(spec, hybrid)
        if spec.dim == 0:  # a database that keeps no dimension, on an empty collection (Weaviate)
            if dim is None:
                raise ConfigError(
                    f"collection {name!r} is empty and its database does not record a dimension: "
                    f"pass embedder=... or dim=..."
                )
            spec = replace(spec, dim=dim)
        return Collection(self, spec, embedder)

    def drop(self, name: str) -> None:
        """Delete collection ``name`` and its records (retried on transient errors)."""
        call_with_retry(self.drop_collection, name, policy=self.retry_policy)

    def _scroll_all(
        self, name: str, where: filters.Node | None, limit: int, with_vectors: bool = False
    ) -> Iterator[list[Record]]:
        cursor: Cursor = None
        while True:
            page, cursor = call_with_retry(
                self.scroll_page, name, cursor, limit, where, with_vectors, policy=self.retry_policy
            )
            if page:
                yield page
            if cursor is None:
                return

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_spec(
    spec: CollectionSpec,
    *,
    dim: int | None,
    embedder: EmbedderLike | None,
    check_fingerprint: bool = True,
) -> None:
    """Refuse an existing collection that does not fit, naming both values."""
    if spec.distance != Distance.COSINE:
        raise MetricMismatch(
            f"collection {spec.name!r} uses the {spec.distance.value} metric; bge-vdb needs cosine "
            f"(BGE vectors are compared by cosine similarity). Use another collection name."
        )
    if dim is not None and spec.dim and spec.dim != dim:
        raise DimensionMismatch(
            f"collection {spec.name!r} holds {spec.dim}-d vectors but {dim}-d were asked for"
            + (f" (embedder {embedder.fingerprint.get('model')!r})" if embedder is not None else "")
        )
    if (check_fingerprint and embedder is not None and spec.fingerprint
            and fingerprint_digest(spec.fingerprint) != fingerprint_digest(embedder.fingerprint)):
        raise FingerprintMismatch(
            f"collection {spec.name!r} was written by {describe_fingerprint(spec.fingerprint)}, "
            f"not by {describe_fingerprint(embedder.fingerprint)}; vectors of different models "
            f"are not comparable. Re-embed into a new collection, or pass check_fingerprint=False."
        )


def _probe_vectors(store: VectorStore, spec: CollectionSpec, embedder: EmbedderLike) -> None:
    """A remote embedder cannot name its weights by hash, so its fingerprint differs from the
    one a local Embedder of the same model recorded; it may prove it makes the vectors stored by
    re-embedding a few stored texts (``adopt_fingerprint``, see bge_vdb/remote/fingerprint.py),
    and then carries the recorded identity. Other embedders have no such method."""
    adopt = getattr(embedder, "adopt_fingerprint", None)
    if adopt is None or not spec.fingerprint or (
            fingerprint_digest(spec.fingerprint) == fingerprint_digest(embedder.fingerprint)):
        return
    page, _ = call_with_retry(store.scroll_page, spec.name, None, 16, None, True, policy=store.retry_policy)
    adopt(spec.fingerprint, page)


def describe_fingerprint(fp: Mapping[str, Any]) -> str:
    return (
        f"{fp.get('model')!r} ({fp.get('dim')}-d, {fp.get('pooling')} pooling, "
        f"max_length {fp.get('max_length')})"
    )


# ------------------------------------------------------------------------------ validation

def check_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: id must be a string, got {type(value).__name__} {value!r}")
    if not value:
        raise InputError(f"{where}: id is missing (empty string)")
    if len(value.encode()) > MAX_ID_BYTES:
        raise InputError(f"{where}: id is longer than {MAX_ID_BYTES} bytes")
    return value


def check_metadata(value: Any, where: str, max_bytes: int | None = None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: metadata must be a dict, got {type(value).__name__}")
    try:
        blob = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: metadata is not JSON-serialisable ({exc})") from None
    for key in value:
        if not isinstance(key, str) or not key:
            raise InputError(f"{where}: metadata keys must be non-empty strings, got {key!r}")
    _check_nested_keys(value, where)
    if max_bytes is not None and len(blob.encode()) > max_bytes:
        raise InputError(
            f"{where}: metadata is {len(blob.encode())} bytes serialized, over this database's "
            f"limit of {max_bytes} bytes per record"
        )
    # A JSON round trip gives every connector the same plain types (tuples become lists).
    return dict(json.loads(blob))


INT64 = (-(2**63), 2**63 - 1)


def _check_nested_keys(value: Any, where: str, path: str = "metadata") -> None:
    """json.dumps would silently turn a nested key 1 into "1": refuse it instead. Integers must
    fit in 64 bits, which is what the databases store (Python's JSON would take any size)."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        raise InputError(f"{where}: {path} is an integer of {value.bit_length()} bits; databases store "
                         f"integers of at most 64 bits (keep larger ones as strings)")
    if isinstance(value, Mapping):
        for key, sub in value.items():
            if not isinstance(key, str):
                raise InputError(f"{where}: {path} has a non-string key {key!r} (JSON keys are strings)")
            _check_nested_keys(sub, where, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            _check_nested_keys(sub, where, f"{path}[{i}]")


def check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: text must be a string, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise InputError(f"{where}: text is empty")
    return value


def check_vector(value: Any, dim: int, where: str) -> np.ndarray:
    """A finite, non-zero vector of ``dim`` numbers, returned as unit-length float32.

    Vectors are normalized on write because the metric is cosine (scale carries no meaning), so
    every database stores and returns the same numbers: Qdrant would normalize anyway.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise InputError(f"{where}: vector is missing")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: vector is not a list of numbers") from None
    if arr.ndim != 1:
        raise InputError(f"{where}: vector must be 1-d, got shape {arr.shape}")
    if arr.shape[0] != dim:
        raise DimensionMismatch(f"{where}: vector has {arr.shape[0]} numbers, the collection needs {dim}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: vector contains NaN or infinity")
    with np.errstate(over="ignore"):
        norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise InputError(f"{where}: vector is all zeros (cosine is undefined)")
    if not math.isfinite(norm):
        raise InputError(f"{where}: vector is too large to normalize (its norm overflows)")
    return (arr / norm).astype(np.float32)


def _label(i: int, item_id: Any) -> str:
    return f"item {i} (id {item_id!r})" if isinstance(item_id, str) and item_id else f"item {i}"


class Collection:
    """A named collection in a store, with an optional embedder. Users work with this."""

    def __init__(self, store: VectorStore, spec: CollectionSpec, embedder: EmbedderLike | None = None):
        self.store = store
        self.spec = spec
        self.embedder = embedder

    @property
    def name(self) -> str:
        """The collection's name in its store."""
        return self.spec.name

    @property
    def dim(self) -> int:
        """Dimension of its vectors."""
        return self.spec.dim

    @property
    def fingerprint(self) -> Mapping[str, Any] | None:
        """The embedder fingerprint recorded with the collection (None when none is)."""
        return self.spec.fingerprint

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.dim}, store={self.store!r})"

    def _call(self, fn: Any, *args: Any) -> Any:
        return call_with_retry(fn, *args, policy=self.store.retry_policy)

    # ------------------------------------------------------------------------------- writes
    def upsert(
        self,
        items: Iterable[Document | Record],
        *,
        on_invalid: str = "raise",
        raise_on_error: bool = True,
        embed_batch_size: int = 256,
    ) -> UpsertResult:
        """Embed ``Document``s, validate, and write everything in batches with retries.

        Duplicate ids in one call: the last one wins. With ``on_invalid="raise"`` (default) bad
        input raises :class:`InputError` naming the item before anything is written; with
        ``"report"`` bad items are listed in the result and the rest is written. Write failures
        (after retries) raise :class:`WriteError` listing every failed id, unless
        ``raise_on_error=False``, in which case they are in ``result.failed``.
        """
        if isinstance(items, (str, bytes, Document, Record)):
            raise InputError("upsert takes a list of Document or Record, not a single item")
        if on_invalid not in ("raise", "report"):
            raise ConfigError("on_invalid must be 'raise' or 'report'")
        result = UpsertResult()
        prepared: dict[str, Record] = {}
        to_embed: list[tuple[str, Document]] = []
        for i, item in enumerate(items):
            try:
                rec_or_doc = self._validate(item, i)
            except (InputError, DimensionMismatch) as exc:  # a wrong-length vector is bad input too
                if on_invalid == "raise":
                    raise
                item_id = getattr(item, "id", None)
                result.failed.append(FailedRecord(str(item_id) if item_id else f"#{i}", str(exc)))
                continue
            prepared.pop(rec_or_doc.id, None)  # last wins, and takes the last position
            prepared[rec_or_doc.id] = rec_or_doc  # type: ignore[assignment]
        if not prepared:
            return result
        to_embed = [(k, v) for k, v in prepared.items() if isinstance(v, Document)]  # type: ignore[misc]
        if to_embed:
            if self.embedder is None:
                raise InputError(
                    f"collection {self.name!r} has no embedder, so Documents cannot be embedded: "
                    f"open it with embedder=... or upsert Records with vectors"
                )
            for start in range(0, len(to_embed), embed_batch_size):
                chunk = to_embed[start : start + embed_batch_size]
                vectors = self.embedder.embed_documents([d.text for _, d in chunk])
                if len(vectors) != len(chunk):  # zip would silently drop documents
                    raise ModelError(f"the embedder returned {len(vectors)} vectors for {len(chunk)} texts")
                for (key, doc), vec in zip(chunk, vectors, strict=True):
                    prepared[key] = Record(
                        id=doc.id, vector=check_vector(vec, self.dim, f"document {doc.id!r}"),
                        text=doc.text, metadata=doc.metadata,
                    )
        self.write(list(prepared.values()), result)
        if raise_on_error and result.failed:
            raise WriteError(result.failed, written=result.written)
        return result

    def _validate(self, item: Any, i: int) -> Document | Record:
        max_meta = self.store.max_metadata_bytes
        if isinstance(item, Document):
            where = _label(i, item.id)
            check_id(item.id, where)
            return Document(item.id, check_text(item.text, where), check_metadata(item.metadata, where, max_meta))
        if isinstance(item, Record):
            where = _label(i, item.id)
            check_id(item.id, where)
            if item.text is not None and not isinstance(item.text, str):
                raise InputError(f"{where}: text must be a string or None")
            return Record(
                id=item.id,
                vector=check_vector(item.vector, self.dim, where),
                text=item.text,
                metadata=check_metadata(item.metadata, where, max_meta),
                content_hash=item.content_hash,
            )
        raise InputError(f"item {i}: expected Document or Record, got {type(item).__name__} {item!r:.80}")

    def write(self, records: Sequence[Record], result: UpsertResult | None = None) -> UpsertResult:
        """Write validated records (unique ids, unit float32 vectors) in count- and byte-bounded
        batches, each retried on transient errors. Used by upsert, sync and migrate."""
        result = result if result is not None else UpsertResult()
        store = self.store
        batches = list(_batches(records, store))
        def too_big(records: Sequence[tuple[Record, int]]) -> list[FailedRecord]:
            return [FailedRecord(rec.id, f"record is {size} bytes, over {store.scheme or 'the store'}'s "
                                 f"request limit of {store.max_batch_bytes} bytes") for rec, size in records]

        for b, (batch, oversize) in enumerate(batches):
            result.failed.extend(too_big(oversize))
            if not batch:
                continue
            unresolved, exc = self._upsert_isolating(batch, result)
            if exc is not None:
                # Still failing after every retry: the server is down or overloaded. Do not burn
                # another full retry budget per remaining batch; report them all as not written.
                reason = f"transient error after retries: {exc}"
                result.failed.extend(FailedRecord(r.id, reason, transient=True) for r in unresolved)
                for rest, rest_oversize in batches[b + 1 :]:
                    result.failed.extend(
                        FailedRecord(r.id, f"not attempted: {reason}", transient=True) for r in rest
                    )
                    result.failed.extend(too_big(rest_oversize))
                return result
        return result

    def _upsert_isolating(
        self, batch: list[Record], result: UpsertResult
    ) -> tuple[list[Record], TransientError | None]:
        """Upsert one batch. When the database refuses the whole request (a permanent error),
        bisect it so that only the records it refuses fail: about 2 log2(n) calls per refused
        record, at most 8 log2(n) extra calls per batch (then the rest is reported refused).

        Returns the records not resolved when a transient error outlived its retries (the
        caller stops there). Upserts are idempotent, so re-sending a half is harmless.
        """
        todo, budget = [batch], 8 * len(batch).bit_length()
        while todo:
            part = todo.pop()
            try:
                refused = self._call(self.store.upsert_records, self.name, part)
            except TransientError as exc:
                return [r for p in (part, *todo) for r in p], exc
            except ConnectorError as exc:
                # A request the server does not implement fails the same for every half.
                if len(part) > 1 and budget >= 2 and not isinstance(exc, RequestNotImplemented):
                    budget -= 2
                    mid = len(part) // 2
                    todo += [part[mid:], part[:mid]]  # first half first
                    continue
                note = "" if len(part) == 1 else " (not bisected further: too many refusals in this batch)"
                result.failed.extend(FailedRecord(r.id, f"{exc}{note}") for r in part)
                continue
            result.written += len(part) - len(refused)
            result.failed.extend(refused)
        return [], None

    def delete(self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None) -> int | None:
        """Delete by ids and/or by filter. Returns the number deleted by filter when known."""
        if ids is None and where is None:
            raise InputError("delete needs ids=... or where=... (to empty a collection, drop it)")
        if isinstance(ids, str):
            raise InputError("delete takes a list of ids, not a single string")
        deleted = None
        if ids is not None:
            id_list = [check_id(x, f"ids[{i}]") for i, x in enumerate(ids)]
            for start in range(0, len(id_list), 1000):
                self._call(self.store.delete_ids, self.name, id_list[start : start + 1000])
        if where is not None:
            node = filters.parse(where)
            if node is None:
                raise InputError("delete(where={}) would delete everything; drop the collection instead")
            deleted = self._call(self.store.delete_where, self.name, node)
        return deleted

    # -------------------------------------------------------------------------------- reads
    def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 10,
        *,
        where: Mapping[str, Any] | None = None,
        with_vectors: bool = False,
        mode: str = "dense",
        alpha: float | None = None,
        fusion: str = "rrf",
        rerank: RerankerProtocol | None = None,
        candidates: int | None = None,
    ) -> list[Hit]:
        """Top ``k`` hits for a text (embedded with the query instruction) or a vector.

        ``mode="dense"`` (the default) ranks by cosine similarity. On a collection created with
        ``hybrid=True``, ``mode="lexical"`` ranks a text query by BM25 and ``mode="hybrid"``
        fuses both rankings: ``fusion="rrf"`` (reciprocal rank fusion, k=60) or ``"relative"``
        (min-max normalised scores), ``alpha`` the weight of the dense side (default 0.5). The
        definitions are in :mod:`bge_vdb.lexical` and hold on every connector. Scores are
        higher-is-better: cosine similarity, BM25, or the fused score.

        ``rerank=`` (a :class:`bge_vdb.Reranker`) reranks: the search above fetches the top
        ``candidates`` (default ``max(50, k)``) of a text query, the cross-encoder scores each
        candidate's text with the query, and the best ``k`` come back scored by it (see
        :mod:`bge_vdb.rerank_search`).
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive int, got {k!r}")
        if rerank is not None or candidates is not None:
            return rerank_search.search_reranked(
                self, query, k, rerank=rerank, candidates=candidates, where=where,
                with_vectors=with_vectors, mode=mode, alpha=alpha, fusion=fusion)
        if mode != "dense":
            return self._search_lexical(query, k, mode, where, alpha, fusion, with_vectors)
        if alpha is not None or fusion != "rrf":
            raise InputError("alpha= and fusion= apply to mode='hybrid' only")
        vector = self._query_vector(query)
        node = filters.parse(where)
        return self._call(self.store.query, self.name, vector, k, node, with_vectors)

    def _query_vector(self, query: Any) -> np.ndarray:
        if isinstance(query, str):
            if self.embedder is None:
                raise InputError(
                    f"collection {self.name!r} has no embedder, so a text query cannot be embedded: "
                    f"pass a vector, or open the collection with embedder=..."
                )
            check_text(query, "query")
            instruction = recorded_instruction(self.fingerprint, self.embedder)
            if instruction is None:
                raw = self.embedder.embed_query(query)
            else:  # the same as embed_query with that instruction: it is a plain prefix
                raw = self.embedder.embed_documents([instruction + query])[0]
            return check_vector(raw, self.dim, "query")
        return check_vector(query, self.dim, "query vector")

    def _search_lexical(self, query: Any, k: int, mode: str, where: Mapping[str, Any] | None,
                        alpha: float | None, fusion: str, with_vectors: bool) -> list[Hit]:
        """``mode="lexical"`` and ``"hybrid"``: every argument is checked before the model runs."""
        if mode not in lexical.MODES:
            raise InputError(f"mode must be one of {', '.join(map(repr, lexical.MODES))}, got {mode!r}")
        if mode == "lexical" and (alpha is not None or fusion != "rrf"):
            raise InputError("alpha= and fusion= apply to mode='hybrid' only")
        weight = lexical.check_fusion(alpha, fusion)
        spec = self.spec.lexical
        if spec is None:
            refusal = self.store.hybrid_refusal()
            fix = (f"and {self.store!r} cannot hold a hybrid one: {refusal}" if refusal else
                   "create a collection with store.collection(name, embedder=..., hybrid=True) and "
                   "sync or migrate into it")
            raise NotHybrid(f"collection {self.name!r} is dense-only (created without hybrid=True), so "
                            f"mode={mode!r} cannot run on it; {fix}")
        if not isinstance(query, str):
            raise InputError(f"mode={mode!r} needs a text query, got {type(query).__name__}")
        check_text(query, "query")
        if mode == "hybrid" and self.embedder is None:
            raise InputError(f"collection {self.name!r} has no embedder, so mode='hybrid' cannot embed "
                             f"the query: open the collection with embedder=...")
        node = filters.parse(where)
        terms = lexical.analyze_query(query, spec)
        if mode == "lexical":
            if not terms.terms:  # nothing to match (only stopwords or punctuation)
                return []
            return self._call(self.store.lexical_query, self.name, terms, k, node, with_vectors)
        vector = self._query_vector(query)
        if not terms.terms or weight == 1.0:  # one side only: the fusion of one list, on any database
            depth = lexical.fusion_depth(k)
            dense = self._call(self.store.query, self.name, vector, depth, node, with_vectors)
            return lexical.fuse_hits(dense, [], weight, fusion, k)
        return self._call(self.store.hybrid_query, self.name, vector, terms, k, node, with_vectors,
                          weight, fusion)

    def fetch(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record]:
        """Records for ``ids`` in the order asked; ids that do not exist are left out."""
        if isinstance(ids, str):
            raise InputError("fetch takes a list of ids, not a single string")
        id_list = [check_id(x, f"ids[{i}]") for i, x in enumerate(ids)]
        found: dict[str, Record] = {}
        for start in range(0, len(id_list), 1000):
            chunk = list(dict.fromkeys(id_list[start : start + 1000]))
            for rec in self._call(self.store.fetch_records, self.name, chunk, with_vectors):
                found[rec.id] = rec
        return [found[i] for i in dict.fromkeys(id_list) if i in found]

    def count(self, *, where: Mapping[str, Any] | None = None) -> int:
        """Number of records (matching ``where`` when given)."""
        return int(self._call(self.store.count, self.name, filters.parse(where)))

    def scroll(
        self,
        batch_size: int = 1000,
        *,
        where: Mapping[str, Any] | None = None,
        with_vectors: bool = False,
    ) -> Iterator[list[Record]]:
        """Every record (matching ``where``), in pages of at most ``batch_size``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        return self.store._scroll_all(self.name, filters.parse(where), batch_size, with_vectors)

    def set_fingerprint(self, fingerprint: Mapping[str, Any] | None) -> None:
        """Record which embedder wrote this collection (sync and migrate do this)."""
        fp = dict(fingerprint) if fingerprint else None
        self._call(self.store.set_fingerprint, self.name, fp)
        self.spec = replace(self.spec, fingerprint=fp)


def recorded_instruction(recorded: Mapping[str, Any] | None, embedder: EmbedderLike) -> str | None:
    """The query instruction to use instead of the embedder's: the one of the preset that wrote
    the collection, when the embedder makes the same vectors but knows no instruction of its own
    (a local copy of a BGE model that says nothing about what it is). None otherwise."""
    from .models import get_preset

    name = (recorded or {}).get("preset")
    spec = get_preset(name) if isinstance(name, str) else None
    if spec is None or not spec.query_instruction or recorded.get("query_instruction") != spec.query_instruction:  # type: ignore[union-attr]
        return None
    mine = embedder.fingerprint
    if mine.get("preset") or mine.get("query_instruction") or getattr(embedder, "query_instruction_given", False):
        return None
    return spec.query_instruction if fingerprint_digest(mine) == fingerprint_digest(recorded) else None


def _batches(
    records: Sequence[Record], store: VectorStore
) -> Iterator[tuple[list[Record], list[tuple[Record, int]]]]:
    """Split into batches under the store's count and byte limits; records alone over the byte
    limit are returned beside the batch so they are reported, never sent."""
    batch: list[Record] = []
    too_big: list[tuple[Record, int]] = []
    size = 0
    for rec in records:
        n = store.record_nbytes(rec)
        if n > store.max_batch_bytes:
            too_big.append((rec, n))
            continue
        if batch and (len(batch) >= store.max_batch_count or size + n > store.max_batch_bytes):
            yield batch, too_big
            batch, too_big, size = [], [], 0
        batch.append(rec)
        size += n
    if batch or too_big:
        yield batch, too_big


# ---------------------------------------------------------------------------------- connect

# scheme -> (module:attribute, SDK import name, extra). Import happens on first use only, so
# ``import bge_vdb`` never pulls in a database SDK.
_REGISTRY: dict[str, tuple[str, str | None, str | None]] = {
    "memory": ("bge_vdb.connectors.memory:MemoryStore", None, None),
    "qdrant": ("bge_vdb.connectors.qdrant:QdrantStore", "qdrant_client", "qdrant"),
    "qdrant+http": ("bge_vdb.connectors.qdrant:QdrantStore", "qdrant_client", "qdrant"),
    "qdrant+https": ("bge_vdb.connectors.qdrant:QdrantStore", "qdrant_client", "qdrant"),
    "milvus": ("bge_vdb.connectors.milvus:MilvusStore", "pymilvus", "milvus"),
    "milvus+http": ("bge_vdb.connectors.milvus:MilvusStore", "pymilvus", "milvus"),
    "milvus+https": ("bge_vdb.connectors.milvus:MilvusStore", "pymilvus", "milvus"),
    "weaviate": ("bge_vdb.connectors.weaviate:WeaviateStore", "weaviate", "weaviate"),
    "weaviate+http": ("bge_vdb.connectors.weaviate:WeaviateStore", "weaviate", "weaviate"),
    "weaviate+https": ("bge_vdb.connectors.weaviate:WeaviateStore", "weaviate", "weaviate"),
    "pinecone": ("bge_vdb.connectors.pinecone:PineconeStore", "pinecone", "pinecone"),
    "postgresql": ("bge_vdb.connectors.pgvector:PgVectorStore", "psycopg", "pgvector"),
    "postgres": ("bge_vdb.connectors.pgvector:PgVectorStore", "psycopg", "pgvector"),
    "pgvector": ("bge_vdb.connectors.pgvector:PgVectorStore", "psycopg", "pgvector"),
}


def url_options(url: str, known: Iterable[str], what: str) -> dict[str, str]:
    """The query options of a store URL, refusing any ``known`` does not list.

    A misspelt option (``?db_nme=prod``) must not silently fall back to a default. Blank values
    are kept (``?tenant=`` is an option too), the last of a repeated option wins, and the error
    names options, never values (a value may be a secret).
    """
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    refuse_unknown(query, known, f"{what} URL option")
    return query


def refuse_unknown(options: Iterable[str], known: Iterable[str], what: str) -> None:
    """ConfigError naming every name in ``options`` that ``known`` does not list."""
    allowed = set(known)
    unknown = sorted(set(options) - allowed)
    if unknown:
        listed = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(f"unknown {what}(s) {', '.join(map(repr, unknown))}; known: {listed}")


def register_connector(scheme: str, target: str, sdk: str | None = None, extra: str | None = None) -> None:
    """Make ``connect("scheme://...")`` build ``target`` ("package.module:Class")."""
    _REGISTRY[scheme] = (target, sdk, extra)


def load_connector(scheme: str) -> type[VectorStore]:
    try:
        target, sdk, extra = _REGISTRY[scheme]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown store URL scheme {scheme!r}; known schemes: {known}") from None
    module_name, _, attr = target.partition(":")
    if sdk is not None:
        try:
            importlib.import_module(sdk)
        except ImportError:
            raise MissingExtra(sdk.replace("_", "-"), extra or sdk, f"the {scheme} connector") from None
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


def connect(url: str, *, must_exist: bool = False, **options: Any) -> VectorStore:
    """Open a store from a URL.

    ``memory://`` (numpy reference store), ``milvus:///abs/file.db`` or ``milvus://./rel.db``
    (Milvus Lite), ``milvus://host:19530`` / ``milvus+https://host`` (servers; token from
    ``token=`` or ``MILVUS_TOKEN``), ``qdrant:///abs/dir`` or ``qdrant://./rel/dir`` (local mode),
    ``qdrant://:memory:``, ``qdrant+http://host:6333`` / ``qdrant+https://...`` (servers; key from
    ``api_key=`` or ``QDRANT_API_KEY``), ``weaviate+http://host:8080?grpc_port=50051``,
    ``pinecone://?api_key_env=PINECONE_API_KEY``. Keyword options go to the connector; an option
    (keyword or in the URL) a connector does not know is a ConfigError.

    ``must_exist=True`` refuses an embedded store (a Qdrant directory, a Milvus Lite file) that
    does not exist yet instead of creating it: what read-only tools want.
    """
    cls = connector_for(url)
    cls.check_url(url, must_exist=must_exist)
    return cls.from_url(url, **options)  # type: ignore[attr-defined, no-any-return]


def connector_for(url: str) -> type[VectorStore]:
    """The connector class of a store URL (its SDK imported), without opening anything."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"a store URL looks like 'qdrant:///path' or 'milvus:///file.db', got {url!r}")
    return load_connector(urlsplit(url).scheme.lower())
