"""Milvus connector: Milvus Lite files (``milvus:///abs/demo.db``) and Milvus servers (2.3+).

The collection layout, server versions and index choice are in
:mod:`bge_vdb.connectors.milvus_layout`; filters are translated in
:mod:`bge_vdb.connectors.milvus_expr`. The fingerprint lives in a collection property.

Consistency: every read (search, fetch, scroll, count) asks for Strong consistency per call, so
it sees every write that returned before it, whatever consistency level the collection was made
with (the server's default, Bounded, may miss writes of the last seconds). ``count()`` is a
``count(*)`` query, exact without a flush; the server's row statistics are not (they count only
flushed segments).

Hybrid collections (Milvus 2.5+, Milvus Lite; layout in :mod:`~bge_vdb.connectors.milvus_layout`):
Milvus computes BM25 itself from the terms bge-vdb's analyzer makes, with the collection's k1 and
b, but by design its own way (the corpus's running average length, its own term statistics), so
lexical rankings are close to the reference's, not equal (the congruence test bounds it). Its
BM25 search reports scores as negative distances on Milvus Lite 3.2; hits carry the score itself.
Hybrid search with ``fusion="rrf"`` and ``alpha=0.5`` is one ``hybrid_search`` with
``RRFRanker(59)`` (Milvus counts ranks from 1: ``1 / (59 + rank)`` is bge-vdb's ``1 / (60 + rank)``
from 0), its scores halved to bge-vdb's weights; other alphas and ``fusion="relative"`` fuse the
two searches on the client (Milvus's WeightedRanker normalises scores another way).
Milvus 2.3 and 2.4 servers have no BM25 function: a hybrid collection there is refused (NotHybrid).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import grpc
import numpy as np
from pymilvus import MilvusClient, MilvusException

from .. import filters, lexical
from ..errors import (
    BgeVdbError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    FailedRecord,
    NotHybrid,
    ServerUnreachable,
    StoreNotFound,
    TransientError,
    UnsupportedFilter,
)
from ..retry import DEFAULT_POLICY, RetryPolicy, call_with_retry
from ..store import Cursor, VectorStore
from ..types import CollectionSpec, Distance, Hit, Record
from .milvus_expr import quote, to_expr
from .milvus_layout import (
    JSON_MAX_BYTES,
    SPARSE_FIELD,
    IndexChoice,
    Layout,
    ServerInfo,
    ids_expr,
    new_schema,
    read_layout,
    to_record,
    to_row,
)

FINGERPRINT_KEY = "bge_vdb.fingerprint"
LEXICAL_KEY = "bge_vdb.lexical"
# Options a URL's query string may carry (``milvus://host:19530?db_name=prod``); the token may
# not: URLs end up in logs and shell histories.
URL_OPTIONS = ("db_name", "timeout", "index_type", "hnsw_m", "hnsw_ef_construction", "search_ef")

_TRANSIENT_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}
_CONNECT_FAILED, _RATE_LIMIT, _COLLECTION_NOT_FOUND = 2, 8, 100
# What a Milvus server answers while one of its own services is down (it is shutting down or
# starting up): the proxy still answers, with code 65535 "unexpected error", not marked
# retriable, e.g. "empty grpc client: failed to connect 127.0.0.1:PORT ... connection refused"
# from Milvus 2.3.5 during a graceful stop. The request was not refused: it succeeds once the
# server is whole again, so it is ServerUnreachable (retried), never a refusal of the records.
_SERVER_PART_DOWN = ("empty grpc client", "find no available", "service not ready")
_METRICS = {"COSINE": Distance.COSINE, "IP": Distance.DOT, "L2": Distance.EUCLID}


@contextmanager
def _map_errors(what: str, secret: str | None = None) -> Iterator[None]:
    """The one place where pymilvus and gRPC exceptions become bge-vdb errors. A server that
    cannot be reached (connection refused, gRPC UNAVAILABLE) is ServerUnreachable, a
    TransientError: retried, and what the caller sees once the retries are spent."""
    try:
        yield
    except BgeVdbError:
        raise
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        msg = _scrub(f"Milvus {what} failed: gRPC {code}: {exc.details() if hasattr(exc, 'details') else exc}", secret)
        if code == grpc.StatusCode.UNAVAILABLE:
            raise ServerUnreachable(f"cannot reach the Milvus server: {msg}") from None
        raise (TransientError(msg) if code in _TRANSIENT_GRPC else ConnectorError(msg)) from None
    except MilvusException as exc:
        msg = _scrub(f"Milvus {what} failed: {exc.message} (code {exc.code})", secret)
        code = exc.code
        if code in (_CONNECT_FAILED, grpc.StatusCode.UNAVAILABLE):
            raise ServerUnreachable(f"cannot reach the Milvus server: {msg}") from None
        if any(part in str(exc.message).lower() for part in _SERVER_PART_DOWN):
            raise ServerUnreachable(f"cannot reach the Milvus server's services (it is starting "
                                    f"up or shutting down?): {msg}") from None
        # `retriable` exists from pymilvus 3.0.1 on; older versions say it by the code alone.
        if code in _TRANSIENT_GRPC or code == _RATE_LIMIT or getattr(exc, "retriable", False):
            raise TransientError(msg) from None
        if code == _COLLECTION_NOT_FOUND or "collection not found" in str(exc.message).lower():
            raise CollectionNotFound(msg) from None
        raise ConnectorError(msg) from None
    except ConnectionError as exc:
        raise ServerUnreachable(_scrub(f"cannot reach the Milvus server: {what} failed: {exc!r}", secret)) from None
    except TimeoutError as exc:
        raise TransientError(_scrub(f"Milvus {what} failed: {exc!r}", secret)) from None


def _check_lite_path(path: str, *, must_exist: bool) -> None:
    """Refuse what Milvus Lite would trip over with a traceback in the log: milvus-lite 3 keeps a
    store in a directory named ``*.db`` (2.x in a file), and opening a missing one creates it."""
    if not os.path.exists(path):
        if must_exist:
            raise StoreNotFound(f"no Milvus Lite store at {path!r}: it does not exist")
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("milvus-lite").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return
    if major >= 3 and not os.path.isdir(path):
        raise ConfigError(f"{path!r} is a file, not a Milvus Lite store (milvus-lite {major} keeps "
                          f"a store in a directory of that name)")


def _server_version(client: MilvusClient, timeout: float, lite: bool) -> str:
    """What the server says it is. Milvus Lite 2.4 has no GetVersion: a Lite file is the
    installed milvus-lite; a server without it (older than any we support) is "unknown"."""
    if lite:
        return f"milvus_lite-{importlib.metadata.version('milvus-lite')}"
    try:
        return str(client.get_server_version(timeout=timeout))
    except grpc.RpcError as exc:
        if callable(getattr(exc, "code", None)) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return "unknown"
        raise


def _scrub(message: str, secret: str | None) -> str:
    return message.replace(secret, "***") if secret else message


def _shown(url: str) -> str:
    """The URL as errors may show it: no query string and no credentials (either may hold a secret)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host, query="", fragment="").geturl()


def _number(options: dict[str, Any], key: str, default: float, kind: type) -> Any:
    value = options.pop(key, default)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Milvus option {key} must be a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"Milvus option {key} must be positive, got {value!r}")
    return number


# -------------------------------------------------------------------------------- the store

# Open MilvusStores per Milvus Lite file in this process (see MilvusStore.close).
_LITE_USERS: dict[str, int] = {}


class MilvusStore(VectorStore):
    """Milvus Lite or a Milvus server, through pymilvus' ``MilvusClient``."""

    scheme: ClassVar[str] = "milvus"
    supports_lexical: ClassVar[bool] = True  # from Milvus 2.5 on; older servers refuse (NotHybrid)
    max_batch_count: ClassVar[int] = 1000
    # gRPC messages are capped at 64 MB; metadata travels twice (metadata + metadata_typed).
    max_batch_bytes: ClassVar[int] = 16 * 1024 * 1024
    max_metadata_bytes: ClassVar[int | None] = JSON_MAX_BYTES

    def __init__(
        self,
        client: MilvusClient,
        *,
        location: str = "MilvusClient",
        index_type: str = "FLAT",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        search_ef: int = 512,
        timeout: float = 30.0,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        _secret: str | None = None,
        _lite_file: str | None = None,
    ) -> None:
        self._index = IndexChoice(str(index_type).upper(), hnsw_m, hnsw_ef_construction, search_ef)
        self._client = client
        self._lite_file = _lite_file
        if _lite_file:
            _LITE_USERS[_lite_file] = _LITE_USERS.get(_lite_file, 0) + 1
        self._location = location
        self._timeout = timeout
        self._secret = _secret
        self.retry_policy = retry_policy
        self._layouts: dict[str, Layout] = {}
        self._server: ServerInfo | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MilvusStore:
        """``milvus:///abs/file.db`` or ``milvus://./rel.db`` (Milvus Lite), ``milvus://host:19530``,
        ``milvus+http(s)://host[:port]`` (servers). The token comes from ``token=`` or
        ``MILVUS_TOKEN``, never from the URL. Options (keywords, or in the URL's query string):
        ``db_name``, ``timeout``, ``index_type`` (FLAT, HNSW, AUTOINDEX), ``hnsw_m``,
        ``hnsw_ef_construction``, ``search_ef``; ``retry_policy`` as a keyword."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        shown = _shown(url)  # what error messages may quote: no query string, no credentials
        if "@" in parts.netloc:
            raise ConfigError(
                f"credentials in a Milvus URL are not read ({shown}): pass token='user:password' "
                f"(or an API key) or set MILVUS_TOKEN"
            )
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "token":
                raise ConfigError(
                    f"a token in a Milvus URL's query string is not read ({shown}): pass token=... "
                    f"or set MILVUS_TOKEN (URLs end up in logs and shell histories)"
                )
            if key not in URL_OPTIONS:
                raise ConfigError(
                    f"unknown option {key!r} in the Milvus URL {shown}; known options: "
                    f"{', '.join(URL_OPTIONS)}"
                )
            options.setdefault(key, value)  # a keyword option wins over the URL's
        unknown = sorted(set(options) - {*URL_OPTIONS, "token", "retry_policy"})
        if unknown:
            raise ConfigError(
                f"unknown Milvus option(s): {', '.join(unknown)}; known options: "
                f"{', '.join((*URL_OPTIONS, 'token', 'retry_policy'))}"
            )
        token = options.pop("token", None) or os.environ.get("MILVUS_TOKEN") or ""
        db_name = str(options.pop("db_name", None) or "")
        policy: RetryPolicy = options.pop("retry_policy", DEFAULT_POLICY)
        timeout = _number(options, "timeout", 30.0, float)
        index = {k: _number(options, k, v, int)
                 for k, v in (("hnsw_m", 32), ("hnsw_ef_construction", 200), ("search_ef", 512))}
        index_type = str(options.pop("index_type", "FLAT"))
        if parts.netloc in ("", ".", "..") and scheme == "milvus":
            path = parts.netloc + parts.path
            if not path.endswith(".db"):
                raise ConfigError(f"a Milvus Lite URL names a file ending in .db, got {shown!r}")
            uri = os.path.abspath(path)
            _check_lite_path(uri, must_exist=False)
            location = f"milvus://{uri}"
        elif parts.hostname:
            http = "https" if scheme == "milvus+https" else "http"
            uri = f"{http}://{parts.hostname}:{parts.port or (443 if http == 'https' else 19530)}"
            location = uri
        else:
            raise ConfigError(f"cannot read a Milvus address from {shown!r}")
        IndexChoice(index_type.upper(), **index)  # refuse a bad choice before connecting

        def open_client() -> tuple[MilvusClient, str]:
            with _map_errors(f"connect to {location}", token or None):
                client = MilvusClient(uri=uri, token=token, db_name=db_name, timeout=timeout)
                try:  # pymilvus may connect lazily (or reuse a cached channel): ask something
                    return client, _server_version(client, timeout, lite=uri.endswith(".db"))
                except BaseException:
                    client.close()
                    raise

        try:
            client, version = call_with_retry(open_client, policy=policy)
        except TransientError as exc:
            raise ServerUnreachable(
                f"cannot reach Milvus at {location} after {policy.attempts} attempt(s): {exc}"
            ) from None
        lite_file = uri if uri.endswith(".db") else None
        store = cls(client, location=location, index_type=index_type, **index,
                    timeout=timeout, retry_policy=policy, _secret=token or None, _lite_file=lite_file)
        try:
            store._server = ServerInfo.parse(version)
            store._server.check_supported(location)  # refused now, in plain words, not mid-job
        except BaseException:
            store.close()
            raise
        return store

    def server(self) -> ServerInfo:
        """The server's version, as far as the connector cares (asked once per store)."""
        if self._server is None:
            with _map_errors("get server version", self._secret):
                info = ServerInfo.parse(_server_version(self._client, self._timeout, lite=bool(self._lite_file)))
            info.check_supported(self._location)
            self._server = info
        return self._server

    def hybrid_refusal(self) -> str | None:
        server = self.server()
        if server.bm25:
            return None
        return (f"the Milvus server at {self._location} is version {server.reported}: it has no BM25 "
                f"function (use Milvus 2.5 or newer, or Milvus Lite)")

    @classmethod
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() == "milvus" and parts.netloc in ("", ".", ".."):
            _check_lite_path(os.path.abspath(parts.netloc + parts.path), must_exist=must_exist)

    def __repr__(self) -> str:
        return f"MilvusStore({self._location!r})"

    def close(self) -> None:
        with _map_errors("close", self._secret):
            self._client.close()
        lite, self._lite_file = self._lite_file, None
        if lite and _LITE_USERS.get(lite, 0) <= 1:
            # pymilvus keeps the in-process Milvus Lite engine (and its file lock) until exit;
            # release it when the last store on this file closes, so another process (the next
            # run of a job, a crash-recovery re-run) can open the file.
            _LITE_USERS.pop(lite, None)
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(lite)
        elif lite:
            _LITE_USERS[lite] -= 1

    def _do(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a client method under the error map, with a bounded pymilvus-internal retry."""
        with _map_errors(what, self._secret):
            return getattr(self._client, method)(*args, timeout=self._timeout, **kwargs)

    # --------------------------------------------------------------------------- collections
    def list_collections(self) -> list[str]:
        return sorted(self._do("list collections", "list_collections"))

    def _layout(self, name: str) -> Layout:
        layout = self._layouts.get(name)
        if layout is None:
            if self.describe_collection(name) is None:
                raise CollectionNotFound(f"collection {name!r} does not exist in {self!r}")
            layout = self._layouts[name]
        return layout

    def describe_collection(self, name: str) -> CollectionSpec | None:
        if not self._do("has_collection", "has_collection", name):
            self._layouts.pop(name, None)
            return None
        info = self._do(f"describe collection {name!r}", "describe_collection", name)
        fields = info["fields"]
        vector = read_layout(name, fields, "").vector
        index = self._do(f"describe index of {name!r}", "describe_index", name, vector)
        if not index:
            raise ConnectorError(
                f"Milvus collection {name!r} has no index on its vector field {vector!r}; "
                f"create one with metric_type COSINE to use it with bge-vdb"
            )
        layout = read_layout(name, fields, str(index.get("index_type", "")))
        metric = str(index.get("metric_type", "")).upper()
        properties = info.get("properties") or {}
        raw_fp = properties.get(FINGERPRINT_KEY)
        lex = None
        if properties.get(LEXICAL_KEY):
            if layout.sparse is None:
                raise ConnectorError(f"Milvus collection {name!r} records lexical settings but has no "
                                     f"{'terms'!r} and {'bm25'!r} fields")
            lex = lexical.LexicalSpec.from_dict(json.loads(properties[LEXICAL_KEY]))
            layout = dataclasses.replace(layout, lexical_spec=lex)
        if name not in self._layouts:
            # A persisted collection opened by a new process starts "released": load it once
            # per process (a no-op when another client already loaded it).
            self._do(f"load collection {name!r}", "load_collection", name)
        self._layouts[name] = layout
        return CollectionSpec(name, layout.dim, _METRICS.get(metric, Distance.OTHER),
                              json.loads(raw_fp) if raw_fp else None, lex)

    def create_collection(self, spec: CollectionSpec) -> None:
        """Create, index and load, in three requests; each step is skipped when already done,
        so a retry after a timeout (the server may have finished the request the client gave
        up on) completes the collection instead of leaving it without an index."""
        server = self.server()
        if spec.lexical is not None and not server.bm25:
            raise NotHybrid(f"{self.hybrid_refusal()}, so it cannot hold a hybrid collection")
        what = f"create collection {spec.name!r}"
        if not self._do("has_collection", "has_collection", spec.name):
            schema = new_schema(spec.dim, nullable=server.nullable_fields, hybrid=spec.lexical is not None)
            properties = {FINGERPRINT_KEY: json.dumps(spec.fingerprint)} if spec.fingerprint else {}
            if spec.lexical is not None:
                properties[LEXICAL_KEY] = json.dumps(spec.lexical.to_dict())
            self._do(what, "create_collection", spec.name, schema=schema, consistency_level="Strong",
                     properties=properties)
        if not self._do(what, "list_indexes", spec.name):
            index = self._client.prepare_index_params()
            index.add_index("vector", index_type=self._index.index_type, metric_type="COSINE",
                            params=self._index.build_params())
            if spec.lexical is not None:
                index.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                                params={"bm25_k1": spec.lexical.k1, "bm25_b": spec.lexical.b})
            # Not create_collection(index_params=...): it polls the index state with a fixed
            # 0.5 s sleep. The index of an empty collection is ready at once; load waits for it.
            self._do(what, "create_index", spec.name, index, sync=False)
        self._do(what, "load_collection", spec.name)
        self._layouts.pop(spec.name, None)

    def drop_collection(self, name: str) -> None:
        self._layouts.pop(name, None)
        if self._do("has_collection", "has_collection", name):
            self._do(f"drop collection {name!r}", "drop_collection", name)

    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        self._layout(name)
        # No fingerprint is stored as "" rather than by dropping the property: Milvus 2.3 and
        # 2.4 cannot drop a collection property, and "" reads back as no fingerprint everywhere.
        value = json.dumps(dict(fingerprint)) if fingerprint else ""
        self._do(f"set properties of {name!r}", "alter_collection_properties", name,
                 properties={FINGERPRINT_KEY: value})

    # -------------------------------------------------------------------------------- writes
    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        layout = self._layout(name)
        rows: list[dict[str, Any]] = []
        refused: list[FailedRecord] = []
        for rec in records:
            row, why = to_row(rec, layout)
            if why:
                refused.append(FailedRecord(rec.id, why))
            else:
                rows.append(row)
        if rows:
            self._do(f"upsert into {name!r}", "upsert", name, rows)
        return refused

    def record_nbytes(self, record: Record) -> int:
        meta = len(json.dumps(record.metadata, ensure_ascii=False).encode())
        return super().record_nbytes(record) + meta  # metadata travels twice

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        layout = self._layout(name)
        self._do(f"delete from {name!r}", "delete", name, filter=ids_expr(layout.pk, ids))

    # --------------------------------------------------------------------------------- reads
    def _filter(self, layout: Layout, name: str, where: filters.Node | None) -> str:
        if where is None:
            return ""
        if layout.typed is None or layout.metadata is None:
            raise UnsupportedFilter(
                f"Milvus collection {name!r} was not made by bge-vdb (no 'metadata_typed' JSON "
                f"field), so Milvus cannot evaluate filters on it with bge-vdb's semantics"
            )
        return to_expr(where, layout.typed, layout.metadata, nul_in_paths=self.server().nul_in_json_paths)

    def query(
        self, name: str, vector: np.ndarray, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        layout = self._layout(name)
        result = self._do(
            f"search {name!r}", "search", name, data=[np.asarray(vector, dtype=np.float32).tolist()],
            anns_field=layout.vector, limit=k, filter=self._filter(layout, name, where),
            output_fields=layout.output_fields(with_vectors), consistency_level="Strong",
            search_params=self._index.search_params(layout.index_type, k),
        )
        # COSINE "distance" in Milvus is the cosine similarity itself: higher is better.
        return self._hits(result[0], layout, with_vectors)

    @staticmethod
    def _hits(found: Sequence[Mapping[str, Any]], layout: Layout, with_vectors: bool,
              score: Any = float) -> list[Hit]:
        hits = []
        for hit in found:
            rec = to_record(hit["entity"], layout, with_vectors)
            hits.append(Hit(rec.id, score(hit["distance"]), rec.text, rec.metadata, rec.vector))
        return hits

    def _lexical_layout(self, name: str) -> Layout:
        layout = self._layout(name)
        if layout.sparse is None:
            raise NotHybrid(f"Milvus collection {name!r} has no BM25 field: it was created dense-only")
        return layout

    def lexical_query(
        self, name: str, query: lexical.LexicalQuery, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        layout = self._lexical_layout(name)
        result = self._do(
            f"BM25 search of {name!r}", "search", name, data=[query.joined], anns_field=layout.sparse,
            limit=k, filter=self._filter(layout, name, where), output_fields=layout.output_fields(with_vectors),
            consistency_level="Strong", search_params={"metric_type": "BM25"},
        )
        # BM25 scores are >= 0; Milvus Lite 3.2 reports them negated, servers as they are.
        return self._hits(result[0], layout, with_vectors, score=lambda d: abs(float(d)))

    def hybrid_query(
        self, name: str, vector: np.ndarray, query: lexical.LexicalQuery, k: int, where: filters.Node | None,
        with_vectors: bool, alpha: float, fusion: str,
    ) -> list[Hit]:
        if fusion != "rrf" or alpha != 0.5:
            return super().hybrid_query(name, vector, query, k, where, with_vectors, alpha, fusion)
        from pymilvus import AnnSearchRequest, RRFRanker

        layout = self._lexical_layout(name)
        expr = self._filter(layout, name, where)
        depth = lexical.fusion_depth(k)
        requests = [
            AnnSearchRequest(data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field=layout.vector,
                             param=self._index.search_params(layout.index_type, depth), limit=depth, expr=expr),
            AnnSearchRequest(data=[query.joined], anns_field=layout.sparse, param={"metric_type": "BM25"},
                             limit=depth, expr=expr),
        ]
        result = self._do(f"hybrid search of {name!r}", "hybrid_search", name, requests,
                          RRFRanker(lexical.RRF_K - 1), limit=k,
                          output_fields=layout.output_fields(with_vectors), consistency_level="Strong")
        return self._hits(result[0], layout, with_vectors, score=lambda d: float(d) * 0.5)

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        layout = self._layout(name)
        rows = self._do(f"fetch from {name!r}", "query", name, filter=ids_expr(layout.pk, ids),
                        output_fields=layout.output_fields(with_vectors), consistency_level="Strong")
        return [to_record(row, layout, with_vectors) for row in rows]

    def scroll_page(
        self, name: str, cursor: Cursor, limit: int, where: filters.Node | None, with_vectors: bool
    ) -> tuple[list[Record], Cursor]:
        # Keyset paging on the primary key: `pk > last` with results in primary-key order (the
        # "iterator" query parameter asks Milvus for that order, as pymilvus' QueryIterator does).
        layout = self._layout(name)
        expr = self._filter(layout, name, where)
        if cursor is not None:
            after = f"{layout.pk} > {quote(cursor)}"
            expr = f"{after} and {expr}" if expr else after
        rows = self._do(f"scroll {name!r}", "query", name, filter=expr, limit=limit, iterator="True",
                        output_fields=layout.output_fields(with_vectors), consistency_level="Strong")
        page = sorted((to_record(row, layout, with_vectors) for row in rows), key=lambda r: r.id)
        return page, (page[-1].id if len(page) == limit else None)

    def count(self, name: str, where: filters.Node | None = None) -> int:
        layout = self._layout(name)
        rows = self._do(f"count {name!r}", "query", name, filter=self._filter(layout, name, where),
                        output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])
