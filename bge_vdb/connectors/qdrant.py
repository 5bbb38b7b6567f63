"""Qdrant connector: local mode (a directory or in memory) and servers over HTTP(S) or gRPC.

Layout of a point (Qdrant ids must be UUIDs or integers, so user ids are mapped)::

    id       = stable_uuid(user_id)                   # uuid5 in bge-vdb's namespace
    payload  = {"_id": user_id, "text": ..., "_hash": content_hash,
                "_meta": "<metadata as JSON text>",   # exact round trip (1 stays int, 1.0 float)
                "metadata": {...}}                     # the copy filters run on (see _filterable)

The embedder fingerprint lives in the collection's own metadata (``bge_vdb_fingerprint``), so
it is never a point. Filters translate to a Qdrant ``Filter`` on ``metadata.<path>`` with the
exact semantics of :func:`bge_vdb.filters.matches`.

A hybrid collection (``hybrid=True``) also has a sparse vector ``bge_bm25`` with
``modifier=IDF``: each point carries its BM25 term weights without IDF (computed here, see
:mod:`bge_vdb.lexical`; a record without terms carries an empty one, so it counts in N as
everywhere else) and Qdrant multiplies in the IDF of the current collection at query time. Its
lexical settings are in the collection metadata (``bge_vdb_lexical``). Hybrid queries are one
``query_points`` with a dense and a sparse ``prefetch`` fused by ``RrfQuery(Rrf(k=60))``, whose
formula is bge-vdb's (``1 / (60 + rank)``, rank from 0) when alpha is 0.5; other alphas and
``fusion="relative"`` send both searches in one ``query_batch_points`` and fuse them here,
because Qdrant's weighted RRF (``1 / (rank / w + k)``) is another formula.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from .. import filters, lexical
from ..errors import (
    BgeVdbError,
    CollectionError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    FailedRecord,
    ServerUnreachable,
    StoreNotFound,
    TransientError,
    UnsupportedFilter,
    permanent_connection_failure,
)
from ..retry import RetryPolicy
from ..store import Cursor, VectorStore, refuse_unknown, stable_uuid, url_options
from ..types import CollectionSpec, Distance, Hit, Record

FINGERPRINT_KEY = "bge_vdb_fingerprint"
LEXICAL_KEY = "bge_vdb_lexical"
SPARSE = "bge_bm25"
# In the filterable copy of metadata a list becomes this marker object: Qdrant matches a list
# field if ANY element matches, and walks into lists of objects, but in our filter language a
# list never equals a scalar and a dotted path never enters a list.
LIST_MARKER = "__bge_vdb_list__"

_DISTANCES = {
    models.Distance.COSINE: Distance.COSINE,
    models.Distance.DOT: Distance.DOT,
    models.Distance.EUCLID: Distance.EUCLID,
    models.Distance.MANHATTAN: Distance.MANHATTAN,
}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TRANSIENT_GRPC = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


def _local_dir(url: str) -> str | None:
    """The directory of a local-mode URL (``qdrant:///abs/dir``, ``qdrant://./rel``), else None."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "qdrant" or parts.netloc not in ("", ".", ".."):
        return None
    if not parts.path.strip("/"):
        raise ConfigError(f"no directory in {url!r}; write qdrant:///abs/dir or qdrant://./rel/dir")
    return parts.netloc + parts.path


def _keyword_options() -> set[str]:
    """What ``connect("qdrant...", **options)`` accepts: ours, QdrantClient's named parameters
    and the httpx client's (qdrant-client passes its ``**kwargs`` on to httpx)."""
    import inspect

    import httpx

    named = {p.name for p in inspect.signature(QdrantClient.__init__).parameters.values()
             if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
    named |= set(inspect.signature(httpx.Client.__init__).parameters)
    named -= {"self", "location", "url", "path", "host", "kwargs"}
    return named | {"retry_policy", "durable", "api_key"}


def _url_settings(url: str) -> dict[str, Any]:
    """The client settings a Qdrant URL's query carries (``?timeout=10&prefer_grpc=true``)."""
    query = url_options(url, ("timeout", "prefer_grpc"), "Qdrant")
    settings: dict[str, Any] = {}
    if "timeout" in query:
        settings["timeout"] = _url_timeout(query["timeout"])
    if "prefer_grpc" in query:
        settings["prefer_grpc"] = _url_bool("prefer_grpc", query["prefer_grpc"])
    return settings


def _url_timeout(value: str) -> int:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"the Qdrant URL option timeout takes a positive number of seconds, got {value!r}")
    return max(1, round(seconds))


def _url_bool(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"the Qdrant URL option {name} takes true or false, got {value!r}")
    return word in ("1", "true", "yes")


def _filterable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _filterable(v) for k, v in value.items()}
    if isinstance(value, list):
        return {LIST_MARKER: True}
    return value


class QdrantStore(VectorStore):
    """Qdrant through ``qdrant-client``; build it with :meth:`from_url` or around your own client."""

    scheme: ClassVar[str] = "qdrant"
    supports_lexical: ClassVar[bool] = True
    max_batch_count: ClassVar[int] = 256
    # Qdrant's server refuses requests over 32 MiB by default; JSON floats take ~10 bytes each.
    max_batch_bytes: ClassVar[int] = 8 * 1024 * 1024

    def __init__(self, client: QdrantClient, *, where: str | None = None, owns_client: bool = False,
                 retry_policy: RetryPolicy | None = None, fast_local_writes: bool = False) -> None:
        self._client = client
        self._where = where or "a user-supplied QdrantClient"
        self._owns_client = owns_client
        self._fast_local_writes = fast_local_writes
        self._tuned: set[str] = set()
        self._lexical: dict[str, lexical.LexicalSpec | None] = {}  # per collection, once described
        if retry_policy is not None:
            self.retry_policy = retry_policy

    @classmethod
    def from_url(cls, url: str, **options: Any) -> QdrantStore:
        """``qdrant:///abs/dir``, ``qdrant://./rel/dir``, ``qdrant://:memory:``,
        ``qdrant+http://host:6333``, ``qdrant+https://host`` (key: ``api_key=`` or
        ``QDRANT_API_KEY``). ``?timeout=10&prefer_grpc=true`` and keyword options go to the client.
        Local directories write through SQLite in WAL mode unless ``durable=True`` (see
        :meth:`_tune_local_storage`)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        refuse_unknown(options, _keyword_options(), "Qdrant option")
        policy = options.pop("retry_policy", None)
        durable = bool(options.pop("durable", False))
        for key, value in _url_settings(url).items():
            options.setdefault(key, value)
        if scheme == "qdrant":
            if parts.netloc == ":memory:":
                return cls(QdrantClient(location=":memory:", **options), where=":memory:", owns_client=True,
                           retry_policy=policy)
            path = _local_dir(url)
            if path is not None:
                cls.check_url(url)
                try:
                    client = QdrantClient(path=path, **options)
                except RuntimeError as exc:  # the directory is locked by another client
                    raise ConnectorError(
                        f"{exc} Close the other store first (store.close() or a `with` block)."
                    ) from exc
                return cls(client, where=path, owns_client=True, retry_policy=policy,
                           fast_local_writes=not durable)
            raise ConfigError(
                f"{url!r}: qdrant:// is local mode (qdrant:///abs/dir, qdrant://./rel/dir, "
                f"qdrant://:memory:); for a server write qdrant+http://{parts.netloc} or qdrant+https://..."
            )
        if scheme in ("qdrant+http", "qdrant+https"):
            if not parts.hostname:
                raise ConfigError(f"no host in {url!r}")
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
            base = f"{scheme.split('+')[1]}://{host}"
            if parts.port:
                base += f":{parts.port}"
            api_key = options.pop("api_key", None) or os.environ.get("QDRANT_API_KEY") or None
            # No version probe at construction: an unreachable server shows on the first call,
            # where the retry policy and error mapping apply.
            options.setdefault("check_compatibility", False)
            client = QdrantClient(url=base + parts.path.rstrip("/"), api_key=api_key, **options)
            return cls(client, where=base, owns_client=True, retry_policy=policy)
        raise ConfigError(f"QdrantStore cannot open {scheme!r} URLs")

    @classmethod
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        """Known options only; a local-mode path must be a directory, and with ``must_exist`` an
        existing Qdrant store (its ``meta.json``): opening one creates the directory, a lock
        file and ``meta.json``."""
        _url_settings(url)
        path = _local_dir(url)
        if path is None:
            return
        if not os.path.exists(path):
            if must_exist:
                raise StoreNotFound(f"no Qdrant store at {path!r}: the directory does not exist")
            return
        if not os.path.isdir(path):
            raise ConfigError(f"{path!r} is a file, not a Qdrant local store (a directory)")
        if must_exist and not os.path.isfile(os.path.join(path, "meta.json")):
            raise ConfigError(f"{path!r} is not a Qdrant local store: it has no meta.json")

    def __repr__(self) -> str:  # never shows an api key: _where is built without one
        return f"QdrantStore({self._where!r})"

    def close(self) -> None:
        # Local mode locks its directory: one client per path until this releases it.
        if self._owns_client:
            self._client.close()

    # ----------------------------------------------------------------------------- errors
    @contextmanager
    def _map_errors(self, action: str) -> Iterator[None]:
        """The one place where qdrant-client, httpx and gRPC exceptions become ours."""
        import httpx  # a dependency of qdrant-client

        def msg(exc: BaseException) -> str:
            return f"Qdrant ({self._where}) {action} failed: {type(exc).__name__}: {exc}"

        try:
            yield
        except BgeVdbError:
            raise
        except ResourceExhaustedResponse as exc:
            raise TransientError(msg(exc), retry_after=float(exc.retry_after_s)) from exc
        except UnexpectedResponse as exc:
            code = exc.status_code or 0
            if code == 429 or code >= 500:
                hint = exc.headers.get("Retry-After") if exc.headers is not None else None
                retry_after = float(hint) if hint and hint.replace(".", "", 1).isdigit() else None
                raise TransientError(msg(exc), retry_after=retry_after) from exc
            if code == 404:
                raise CollectionNotFound(msg(exc)) from exc
            raise ConnectorError(msg(exc)) from exc
        except (ResponseHandlingException, httpx.TransportError) as exc:
            source = getattr(exc, "source", exc)
            permanent = permanent_connection_failure(exc)
            if permanent:
                raise ConnectorError(f"Qdrant ({self._where}) {action} failed: {permanent}") from exc
            if isinstance(source, httpx.ConnectError):
                raise ServerUnreachable(f"cannot reach the Qdrant server at {self._where}: {source}") from exc
            if isinstance(source, httpx.TransportError):  # timeouts, resets, protocol errors
                raise TransientError(msg(source)) from exc
            raise ConnectorError(msg(source)) from exc
        except Exception as exc:
            rpc_status = getattr(exc, "code", None)  # grpc.RpcError has code() -> StatusCode
            if callable(rpc_status) and getattr(rpc_status(), "name", None) in _TRANSIENT_GRPC:
                raise TransientError(msg(exc)) from exc
            if isinstance(exc, ValueError) and "not found" in str(exc):  # local mode
                raise CollectionNotFound(msg(exc)) from exc
            raise ConnectorError(msg(exc)) from exc

    # ------------------------------------------------------------------------ collections
    def list_collections(self) -> list[str]:
        with self._map_errors("listing collections"):
            return sorted(c.name for c in self._client.get_collections().collections)

    def describe_collection(self, name: str) -> CollectionSpec | None:
        with self._map_errors(f"describing collection {name!r}"):
            if not self._client.collection_exists(name):
                return None
            info = self._client.get_collection(name)
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise CollectionError(
                f"Qdrant collection {name!r} has named vectors ({', '.join(params or {})}); "
                f"bge-vdb works with one unnamed vector per point"
            )
        meta = info.config.metadata or {}
        raw_fp = meta.get(FINGERPRINT_KEY)
        fingerprint = json.loads(raw_fp) if isinstance(raw_fp, str) else None
        lex = None
        if isinstance(meta.get(LEXICAL_KEY), str):
            sparse = (info.config.params.sparse_vectors or {}).get(SPARSE)
            if sparse is None or sparse.modifier != models.Modifier.IDF:
                raise CollectionError(f"Qdrant collection {name!r} records lexical settings but has no "
                                      f"sparse vector {SPARSE!r} with modifier=IDF")
            lex = lexical.LexicalSpec.from_dict(json.loads(meta[LEXICAL_KEY]))
        self._lexical[name] = lex
        return CollectionSpec(name, params.size, _DISTANCES.get(params.distance, Distance.OTHER), fingerprint, lex)

    def create_collection(self, spec: CollectionSpec) -> None:
        metadata = {FINGERPRINT_KEY: json.dumps(dict(spec.fingerprint), default=str)} if spec.fingerprint else {}
        sparse = None
        if spec.lexical is not None:
            metadata[LEXICAL_KEY] = json.dumps(spec.lexical.to_dict())
            sparse = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        with self._map_errors(f"creating collection {spec.name!r}"):
            if self._client.collection_exists(spec.name):
                return
            self._client.create_collection(
                spec.name,
                vectors_config=models.VectorParams(size=spec.dim, distance=models.Distance.COSINE),
                sparse_vectors_config=sparse,
                metadata=metadata or None,
            )
        self._lexical[spec.name] = spec.lexical

    def drop_collection(self, name: str) -> None:
        self._tuned.discard(name)
        self._lexical.pop(name, None)
        with self._map_errors(f"dropping collection {name!r}"):
            self._client.delete_collection(name)

    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        # Collection metadata is merged key by key and a null removes the key.
        value = json.dumps(dict(fingerprint), default=str) if fingerprint else None
        with self._map_errors(f"storing the fingerprint of {name!r}"):
            if not self._client.collection_exists(name):
                raise CollectionNotFound(f"collection {name!r} does not exist")
            self._client.update_collection(name, metadata={FINGERPRINT_KEY: value})

    # ------------------------------------------------------------------------------ points
    def _tune_local_storage(self, name: str) -> None:
        """Let local mode write in WAL mode with ``synchronous=NORMAL``.

        qdrant-client's local mode commits its SQLite file once per point with a full fsync:
        about 20 ms a point on these disks (112 points/s measured). In WAL mode with
        synchronous=NORMAL every commit still survives a crash or kill of the process (which is
        what crash-safe sync and resumable migration rely on) but not a power loss, and writes
        are ~50x faster (5,800 points/s). ``connect(url, durable=True)`` keeps full fsyncs.
        """
        if not self._fast_local_writes or name in self._tuned:
            return
        self._tuned.add(name)
        local = getattr(self._client, "_client", None)  # qdrant_client.local.QdrantLocal
        collection = getattr(local, "collections", {}).get(name)
        conn = getattr(getattr(collection, "storage", None), "storage", None)
        if conn is None:  # another qdrant-client layout: keep its defaults
            return
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")

    def _lexical_spec(self, name: str) -> lexical.LexicalSpec | None:
        if name not in self._lexical and self.describe_collection(name) is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return self._lexical[name]

    def _vector(self, r: Record, spec: lexical.LexicalSpec | None) -> Any:
        dense = np.asarray(r.vector, dtype=np.float32).tolist()
        if spec is None:
            return dense
        indices, values = lexical.sparse(lexical.term_weights(lexical.analyze(r.text or "", spec), spec))
        return {"": dense, SPARSE: models.SparseVector(indices=indices, values=values)}

    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        self._tune_local_storage(name)
        spec = self._lexical_spec(name)
        points = [
            models.PointStruct(
                id=stable_uuid(r.id),
                vector=self._vector(r, spec),
                payload={
                    "_id": r.id, "text": r.text, "_hash": r.content_hash,
                    "_meta": json.dumps(dict(r.metadata), ensure_ascii=False),
                    "metadata": _filterable(dict(r.metadata)),
                },
            )
            for r in records
        ]
        with self._map_errors(f"writing {len(points)} points to {name!r}"):
            self._client.upsert(name, points=points, wait=True)
        return []

    @staticmethod
    def _decode(point: Any, with_vectors: bool) -> Record:
        payload = point.payload or {}
        if "_meta" in payload:
            metadata = json.loads(payload["_meta"])
        else:  # a point written by another tool: its payload minus the usual text keys
            metadata = payload.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {k: v for k, v in payload.items() if k not in ("_id", "text", "page_content")}
        text = payload.get("text", payload.get("page_content"))
        vector = None
        if with_vectors and point.vector is not None:
            dense = point.vector.get("") if isinstance(point.vector, dict) else point.vector
            vector = np.asarray(dense, dtype=np.float32) if dense is not None else None
        return Record(id=str(payload.get("_id", point.id)), vector=vector,
                      text=text if isinstance(text, str) else None,
                      metadata=metadata, content_hash=payload.get("_hash"))

    @staticmethod
    def _point_ids(ids: Sequence[str]) -> list[Any]:
        """Our uuid5 of each id, plus the id itself when it is a valid Qdrant id, so points
        written by other tools (with their own UUID or integer ids) can be fetched and deleted."""
        out: list[Any] = [stable_uuid(i) for i in ids]
        for i in ids:
            if i.isdigit() and int(i) < 2**64:
                out.append(int(i))
            elif re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", i):
                out.append(i.lower())
        return list(dict.fromkeys(out))

    def query(
        self, name: str, vector: np.ndarray, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        flt = to_qdrant_filter(where)
        with self._map_errors(f"searching {name!r}"):
            points = self._client.query_points(
                name, query=np.asarray(vector, dtype=np.float32).tolist(), limit=k, query_filter=flt,
                with_payload=True, with_vectors=self._wanted_vectors(name, with_vectors),
            ).points
        return self._hits(points, with_vectors)

    def _wanted_vectors(self, name: str, with_vectors: bool) -> Any:
        # The dense vector only: a hybrid point's sparse one is bge-vdb's bookkeeping.
        return [""] if with_vectors and self._lexical.get(name) is not None else with_vectors

    def _hits(self, points: Sequence[Any], with_vectors: bool, scale: float = 1.0) -> list[Hit]:
        hits = []
        for p in points:
            rec = self._decode(p, with_vectors)
            hits.append(Hit(id=rec.id, score=float(p.score) * scale, text=rec.text, metadata=rec.metadata,
                            vector=rec.vector))
        return hits

    @staticmethod
    def _sparse_query(query: lexical.LexicalQuery) -> models.SparseVector:
        indices, values = lexical.sparse({t: float(c) for t, c in query.counts.items()})
        return models.SparseVector(indices=indices, values=values)

    def lexical_query(
        self, name: str, query: lexical.LexicalQuery, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        flt = to_qdrant_filter(where)
        with self._map_errors(f"lexical search of {name!r}"):
            points = self._client.query_points(
                name, query=self._sparse_query(query), using=SPARSE, limit=k, query_filter=flt,
                with_payload=True, with_vectors=self._wanted_vectors(name, with_vectors),
            ).points
        return self._hits(points, with_vectors)

    def hybrid_query(
        self, name: str, vector: np.ndarray, query: lexical.LexicalQuery, k: int, where: filters.Node | None,
        with_vectors: bool, alpha: float, fusion: str,
    ) -> list[Hit]:
        flt = to_qdrant_filter(where)
        depth = lexical.fusion_depth(k)
        dense = np.asarray(vector, dtype=np.float32).tolist()
        wanted = self._wanted_vectors(name, with_vectors)
        if fusion == "rrf" and alpha == 0.5:
            with self._map_errors(f"hybrid search of {name!r}"):
                points = self._client.query_points(
                    name,
                    prefetch=[models.Prefetch(query=dense, limit=depth, filter=flt),
                              models.Prefetch(query=self._sparse_query(query), using=SPARSE, limit=depth,
                                              filter=flt)],
                    query=models.RrfQuery(rrf=models.Rrf(k=lexical.RRF_K)), limit=k, query_filter=flt,
                    with_payload=True, with_vectors=wanted,
                ).points
            return self._hits(points, with_vectors, scale=0.5)  # Qdrant's weights are 1, ours 0.5
        requests = [
            models.QueryRequest(query=dense, limit=depth, filter=flt, with_payload=True, with_vector=wanted),
            models.QueryRequest(query=self._sparse_query(query), using=SPARSE, limit=depth, filter=flt,
                                with_payload=True, with_vector=wanted),
        ]
        with self._map_errors(f"hybrid search of {name!r}"):
            dense_res, lex_res = self._client.query_batch_points(name, requests=requests)
        return lexical.fuse_hits(self._hits(dense_res.points, with_vectors), self._hits(lex_res.points, with_vectors),
                                 alpha, fusion, k)

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        wanted = set(ids)
        with self._map_errors(f"fetching from {name!r}"):
            points = self._client.retrieve(
                name, ids=self._point_ids(ids), with_payload=True,
                with_vectors=self._wanted_vectors(name, with_vectors),
            )
        records = [self._decode(p, with_vectors) for p in points]
        return [r for r in records if r.id in wanted]

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        point_ids: list[Any] = [stable_uuid(i) for i in ids]
        ours = set(point_ids)
        raw = [p for p in self._point_ids(ids) if p not in ours]
        with self._map_errors(f"deleting from {name!r}"):
            if raw:  # a raw UUID/int id is deleted only if it is a point written by another tool
                found = self._client.retrieve(name, ids=raw, with_payload=["_id"], with_vectors=False)
                point_ids += [p.id for p in found if "_id" not in (p.payload or {})]
            self._client.delete(name, points_selector=models.PointIdsList(points=point_ids), wait=True)

    def delete_where(self, name: str, where: filters.Node) -> int:
        flt = to_qdrant_filter(where)
        assert flt is not None  # Collection.delete never passes an empty filter here
        with self._map_errors(f"deleting by filter from {name!r}"):
            n = self._client.count(name, count_filter=flt, exact=True).count
            self._client.delete(name, points_selector=models.FilterSelector(filter=flt), wait=True)
        return int(n)

    def scroll_page(
        self, name: str, cursor: Cursor, limit: int, where: filters.Node | None, with_vectors: bool
    ) -> tuple[list[Record], Cursor]:
        # Qdrant scrolls in point-id order and hands back the next id: a stable cursor.
        with self._map_errors(f"scrolling {name!r}"):
            points, nxt = self._client.scroll(
                name, scroll_filter=to_qdrant_filter(where), limit=limit, offset=cursor,
                with_payload=True, with_vectors=self._wanted_vectors(name, with_vectors),
            )
        return [self._decode(p, with_vectors) for p in points], nxt

    def count(self, name: str, where: filters.Node | None = None) -> int:
        with self._map_errors(f"counting {name!r}"):
            return int(self._client.count(name, count_filter=to_qdrant_filter(where), exact=True).count)


# ------------------------------------------------------------------------------- filters

def _key(path: tuple[str, ...]) -> str:
    parts = ["metadata"]
    for seg in path:
        if _PLAIN_KEY.fullmatch(seg):
            parts.append(seg)
        elif '"' in seg:
            raise UnsupportedFilter(f"Qdrant cannot filter on a metadata key containing '\"': {seg!r}")
        else:
            parts.append(f'"{seg}"')
    return ".".join(parts)


def _equals(key: str, value: Any) -> models.Condition:
    if isinstance(value, (bool, str)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    # Numbers: a range, so 2020 matches 2020.0 as in filters.matches (Qdrant's exact match keeps
    # int and float apart); a range never matches a bool.
    return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))


def _condition(node: filters.Node) -> models.Condition:
    if isinstance(node, filters.And):
        return models.Filter(must=[_condition(c) for c in node.children])
    if isinstance(node, filters.Or):
        return models.Filter(should=[_condition(c) for c in node.children])
    if isinstance(node, filters.Not):
        return models.Filter(must_not=[_condition(node.child)])
    key = _key(node.key)
    op, value = node.op, node.value
    if op == "eq":
        return _equals(key, value)
    if op == "ne":
        return models.Filter(must_not=[_equals(key, value)])
    if op == "in":
        return models.Filter(should=[_equals(key, v) for v in value])
    if op == "nin":
        return models.Filter(must_not=[_equals(key, v) for v in value])
    if op == "exists":
        # IsEmpty: missing or null ([] cannot occur: lists are markers in the filterable copy).
        empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
        return models.Filter(must_not=[empty]) if value else empty
    return models.FieldCondition(key=key, range=models.Range(**{op: value}))


def to_qdrant_filter(where: filters.Node | None) -> models.Filter | None:
    """Translate the filter AST into a Qdrant ``Filter`` with the semantics of filters.matches."""
    if where is None:
        return None
    # Range bounds are float64 (Qdrant's, and pydantic's in local mode): 2**53 + 1 -> 2**53.
    filters.refuse_inexact_numbers(where, "Qdrant")
    cond = _condition(where)
    return cond if isinstance(cond, models.Filter) else models.Filter(must=[cond])
