"""Weaviate connector (weaviate-client v4): REST for the schema, gRPC for data.

Layout of a bge-vdb collection in Weaviate (one class, one self-provided ``default`` vector, HNSW,
cosine; Weaviate returns a cosine *distance*, reported here as similarity ``1 - distance``):

* class name: the user's name with every character outside ``[0-9A-Za-z_]`` replaced by ``_``,
  prefixed with ``C`` unless it starts with an ASCII letter, first letter capitalised
  (``docs`` -> ``Docs``, ``my-docs`` -> ``My_docs``, ``2024`` -> ``C2024``). The class description
  holds ``{"bge_vdb": {"name": user name, "dim": ..., "fingerprint": ...}}``, so two names that map
  to the same class are detected and refused, and ``list_collections`` returns user names.
* object UUID: ``stable_uuid(user id)``; properties ``bge_id`` (the user id), ``bge_text``,
  ``bge_metadata`` (JSON: exact round trip of nested metadata) and ``bge_hash``.
* filtering: Weaviate cannot filter inside object properties and a property has one data type, so
  every scalar metadata value is also written to a typed, flat property per path and type
  (``fs_`` text, ``fn_`` number, ``fb_`` boolean; path segments escaped injectively), added to the
  schema on first use, and ``bge_paths`` lists every path holding a non-null value (for
  ``$exists``). Strings are stored as ``|value|`` because field tokenization trims whitespace, and
  all numbers as float64, so filter values of 2**53 or more in magnitude are refused
  (UnsupportedFilter) rather than compared inexactly. This gives the exact semantics of
  :func:`bge_vdb.filters.matches`; a filter on a property nobody ever wrote is simply false.

A hybrid collection (``hybrid=True``) has one more property, ``bge_lex``: the record's terms as
:mod:`bge_vdb.lexical`'s analyzer makes them, joined by spaces, with ``whitespace`` tokenization
(so Weaviate indexes exactly bge-vdb's terms: its default ``word`` tokenization would keep a
Chinese sentence as one token), BM25 ``k1``/``b`` from the collection's lexical settings, and no
stopwords (the analyzer removed them already). Lexical and hybrid queries are Weaviate's own
``bm25`` and ``hybrid`` (``rankedFusion`` / ``relativeScoreFusion``, ``alpha``) on that property,
whose fusion formulas are bge-vdb's. By design Weaviate's BM25 uses the real average length of
the collection where bge-vdb uses the fixed ``avg_len``, and leaves out the constant factor
``k1 + 1``, which is multiplied back into lexical scores here.

Retries are the Collection's (tenacity). The SDK retries gRPC UNAVAILABLE itself with sleeps of
up to 63 s per call; on clients this module builds, transient gRPC codes are surfaced at once
instead, so one worst case is our policy's (60 s of waiting) plus one call timeout
(``timeout=``, default 30 s). A client passed in keeps its own SDK retries.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import numpy as np
import weaviate
import weaviate.classes as wvc
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateConnectionError,
    WeaviateInsertManyAllFailedError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)

from .. import filters, lexical
from ..errors import (
    CollectionError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    FailedRecord,
    InputError,
    RequestNotImplemented,
    ServerUnreachable,
    TransientError,
    UnsupportedFilter,
    permanent_connection_failure,
)
from ..retry import RetryPolicy, call_with_retry
from ..store import Cursor, VectorStore, refuse_unknown, stable_uuid, url_options
from ..types import CollectionSpec, Distance, Hit, Record
from .weaviate_filters import MAX_PROP_NAME, flatten, path_token, translate, typed

log = logging.getLogger(__name__)
VECTOR = "default"
FIXED_PROPS = ("bge_id", "bge_text", "bge_metadata", "bge_hash", "bge_paths")
LEXICAL_PROP = "bge_lex"
RETURN_PROPS = ["bge_id", "bge_text", "bge_metadata", "bge_hash"]
ALL = Filter.by_id().not_equal("00000000-0000-0000-0000-000000000000")
TRANSIENT_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                  grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
_URL_OPTIONS = ("grpc_port", "grpc_host", "tenant")
_DISTANCES = {"cosine": Distance.COSINE, "dot": Distance.DOT, "l2-squared": Distance.EUCLID,
              "manhattan": Distance.MANHATTAN}


def class_name(name: str) -> str:
    """The Weaviate class holding collection ``name`` (see the module docstring for the rule)."""
    mapped = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not (mapped[:1].isascii() and mapped[:1].isalpha()):
        mapped = "C" + mapped
    mapped = mapped[0].upper() + mapped[1:]
    if len(mapped) > 255:
        raise InputError(f"collection name {name!r} maps to a Weaviate class name over 255 characters")
    return mapped


class _GrpcTransient(Exception):
    """A transient gRPC status, raised past the SDK so that its own sleep-and-retry loop is skipped."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"gRPC {code.name}: {details}")


class _NoSdkRetryStub:
    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except grpc.RpcError as exc:
                if exc.code() in TRANSIENT_GRPC:  # type: ignore[attr-defined]
                    raise _GrpcTransient(exc.code(), exc.details()) from None  # type: ignore[attr-defined]
                raise

        return call


@contextmanager
def _map_errors(what: str, retry_after: list[float | None] | None = None) -> Iterator[None]:
    """The one place where weaviate-client, httpx and gRPC errors become bge-vdb errors."""
    try:
        yield
    except (_GrpcTransient, WeaviateConnectionError, WeaviateTimeoutError, httpx.TransportError) as exc:
        permanent = permanent_connection_failure(exc)
        if permanent:
            raise ConnectorError(f"Weaviate {what}: {permanent}") from None
        raise TransientError(f"Weaviate {what}: {exc}") from None
    except UnexpectedStatusCodeError as exc:
        if exc.status_code == 501:  # never served, whatever the request carries
            raise RequestNotImplemented(f"Weaviate {what}: HTTP 501 {exc.message}") from None
        if exc.status_code == 429 or exc.status_code >= 500:
            hint = retry_after[0] if retry_after else None
            raise TransientError(f"Weaviate {what}: HTTP {exc.status_code}", retry_after=hint) from None
        raise ConnectorError(f"Weaviate {what}: {exc.message}") from None
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        cls = TransientError if code in TRANSIENT_GRPC else _missing_or(ConnectorError, code, str(exc.details()))  # type: ignore[attr-defined]
        raise cls(f"Weaviate {what}: gRPC {code.name}: {exc.details()}") from None  # type: ignore[attr-defined]
    except WeaviateBaseError as exc:
        code = getattr(exc.__cause__ or exc.__context__, "code", lambda: None)()
        raise _missing_or(ConnectorError, code, exc.message)(f"Weaviate {what}: {exc.message}") from None


def _missing_or(default: type[ConnectorError], code: Any, message: str) -> type[Exception]:
    """CollectionNotFound when the server says the class does not exist (gRPC NOT_FOUND, or the
    server's "could not find class" text), else ``default``."""
    text = message.lower()
    if code == grpc.StatusCode.NOT_FOUND or "could not find class" in text or (
        "class" in text and "not found" in text
    ):
        return CollectionNotFound
    return default


@dataclass
class _Info:
    props: set[str] = field(default_factory=set)
    vector: str | None = VECTOR  # None: the legacy unnamed vector
    lexical: lexical.LexicalSpec | None = None


class WeaviateStore(VectorStore):
    scheme: ClassVar[str] = "weaviate"
    supports_lexical: ClassVar[bool] = True
    max_batch_count: ClassVar[int] = 200

    def __init__(self, client: Any, *, tenant: str | None = None, retry_policy: RetryPolicy | None = None,
                 _label: str = "client", _owns: bool = False) -> None:
        self.client = client
        self.tenant = tenant
        if retry_policy is not None:
            self.retry_policy = retry_policy
        self._label = _label
        self._owns = _owns
        self._info: dict[str, _Info] = {}
        self._retry_after: list[float | None] = [None]

    @classmethod
    def from_url(cls, url: str, *, api_key: str | None = None, tenant: str | None = None,
                 timeout: float = 30.0, retry_policy: RetryPolicy | None = None,
                 **unknown: Any) -> WeaviateStore:
        """``weaviate+http://host:8080?grpc_port=50051[&grpc_host=...&tenant=...]`` or ``weaviate+https://``.

        The API key comes from ``api_key=`` or ``WEAVIATE_API_KEY``; it is never logged or shown
        and never read from the URL (URLs end up in logs and shell histories).
        """
        refuse_unknown(unknown, ("api_key", "tenant", "timeout", "retry_policy"), "Weaviate option")
        query = cls._url_query(url)
        parts = urlsplit(url)
        secure = parts.scheme.lower() == "weaviate+https"
        tenant = tenant or query.get("tenant") or None
        try:
            http_port = parts.port or (443 if secure else 8080)
            grpc_port = int(query.get("grpc_port", 50051))
        except ValueError as exc:
            raise ConfigError(f"bad port in Weaviate URL: {exc}") from None
        key = api_key or os.environ.get("WEAVIATE_API_KEY") or None
        host: str = parts.hostname or ""  # checked by _url_query
        label = f"{parts.scheme}://{host}:{http_port}?grpc_port={grpc_port}"
        policy = retry_policy or cls.retry_policy
        retry_after: list[float | None] = [None]

        def open_client() -> Any:
            with _map_errors(f"connect to {label}", retry_after):
                try:
                    return weaviate.connect_to_custom(
                        http_host=host, http_port=http_port, http_secure=secure,
                        grpc_host=query.get("grpc_host", host), grpc_port=grpc_port,
                        grpc_secure=secure, auth_credentials=wvc.init.Auth.api_key(key) if key else None,
                        additional_config=wvc.init.AdditionalConfig(
                            timeout=wvc.init.Timeout(init=min(timeout, 10), query=timeout, insert=timeout * 2)),
                        skip_init_checks=True,  # no PyPI version check, no OIDC discovery
                    )
                except WeaviateStartUpError as exc:
                    permanent = permanent_connection_failure(exc)
                    if permanent:
                        raise ConnectorError(f"cannot connect to Weaviate at {label}: {permanent}") from None
                    raise TransientError(f"cannot reach Weaviate at {label}: {type(exc.__cause__).__name__}") from None
                except ValueError as exc:  # the SDK's pydantic validation of the parameters
                    raise ConfigError(f"bad Weaviate connection parameters for {label}: {exc}") from None

        try:
            client = call_with_retry(open_client, policy=policy)
        except TransientError as exc:
            raise ServerUnreachable(f"{exc} (gave up after retries)") from None
        store = cls(client, tenant=tenant, retry_policy=retry_policy, _label=label, _owns=True)
        store._retry_after = retry_after
        conn = getattr(client, "_connection", None)
        if conn is not None and getattr(conn, "_grpc_stub", None) is not None:
            conn._grpc_stub = _NoSdkRetryStub(conn._grpc_stub)
            http = getattr(conn, "_client", None)
            if isinstance(http, httpx.Client):
                http.event_hooks["response"].append(store._note_retry_after)
        else:  # another weaviate-client layout: its own retries stay on, under ours
            log.warning("could not switch off weaviate-client's own gRPC retries; they now run "
                        "inside bge-vdb's retry policy, so a dead server takes longer to report")
        return store

    @classmethod
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        cls._url_query(url)

    @staticmethod
    def _url_query(url: str) -> dict[str, str]:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("weaviate+http", "weaviate+https") or not parts.hostname:
            raise ConfigError(f"a Weaviate URL looks like 'weaviate+http://host:8080?grpc_port=50051', got {url!r}")
        if {"api_key", "token"} & set(parse_qs(parts.query, keep_blank_values=True)):
            raise ConfigError("do not put an API key in a URL (URLs end up in logs): pass api_key=... "
                              "or set WEAVIATE_API_KEY")
        return url_options(url, _URL_OPTIONS, "Weaviate")

    def _note_retry_after(self, response: httpx.Response) -> None:
        value = response.headers.get("retry-after")
        try:
            self._retry_after[0] = float(value) if value is not None else None
        except ValueError:
            self._retry_after[0] = None

    def __repr__(self) -> str:
        return f"WeaviateStore({self._label!r}" + (f", tenant={self.tenant!r})" if self.tenant else ")")

    def close(self) -> None:
        if self._owns:
            self.client.close()

    def _errors(self, what: str) -> Any:
        return _map_errors(what, self._retry_after)

    def _handle(self, cls: str) -> Any:
        col = self.client.collections.use(cls)
        return col.with_tenant(self.tenant) if self.tenant else col

    # -------------------------------------------------------------------------- collections
    def _config(self, cls: str) -> Any | None:
        try:
            with self._errors(f"read class {cls}"):
                return self.client.collections.export_config(cls)
        except ConnectorError as exc:
            if "404" in str(exc):
                return None
            raise

    @staticmethod
    def _owner(config: Any) -> dict[str, Any] | None:
        try:
            return json.loads(config.description or "")["bge_vdb"]  # type: ignore[no-any-return]
        except (ValueError, KeyError, TypeError):
            return None

    def list_collections(self) -> list[str]:
        with self._errors("list classes"):
            configs = self.client.collections.list_all(simple=True)
        names = []
        for cls, config in configs.items():
            owner = self._owner(config)
            names.append(owner["name"] if owner else cls)
        return sorted(names)

    def describe_collection(self, name: str) -> CollectionSpec | None:
        cls = class_name(name)
        config = self._config(cls)
        if config is None:
            return None
        owner = self._owner(config)
        if owner is not None and owner["name"] != name:
            raise CollectionError(
                f"collection {name!r} maps to the Weaviate class {cls!r}, which already holds the "
                f"collection {owner['name']!r}; choose a name that differs in more than case or punctuation"
            )
        vectors = config.vector_config or {}
        index = vectors[VECTOR].vector_index_config if VECTOR in vectors else config.vector_index_config
        metric = _DISTANCES.get(str(getattr(index.distance_metric, "value", "")), Distance.OTHER)
        lex = lexical.LexicalSpec.from_dict(owner["lexical"]) if owner and owner.get("lexical") else None
        props = {p.name for p in config.properties}
        if lex is not None and LEXICAL_PROP not in props:
            raise CollectionError(f"Weaviate class {cls!r} records lexical settings but has no {LEXICAL_PROP!r} property")
        self._info[cls] = _Info(props, VECTOR if VECTOR in vectors else None, lex)
        self._check_tenancy(cls, config)
        if owner is None:
            return CollectionSpec(name, self._guess_dim(cls), metric, None)  # 0: empty, not known yet
        return CollectionSpec(name, int(owner["dim"]), metric, owner.get("fingerprint"), lex)

    def _check_tenancy(self, cls: str, config: Any) -> None:
        enabled = config.multi_tenancy_config.enabled
        if enabled and not self.tenant:
            raise ConfigError(f"Weaviate class {cls!r} is multi-tenant: open the store with tenant=...")
        if self.tenant and not enabled:
            raise ConfigError(f"Weaviate class {cls!r} is not multi-tenant, but tenant={self.tenant!r} was given")
        if self.tenant:
            with self._errors(f"create tenant in {cls}"):
                self.client.collections.use(cls).tenants.create([wvc.tenants.Tenant(name=self.tenant)])

    def _guess_dim(self, cls: str) -> int:
        with self._errors(f"read {cls}"):
            res = self._handle(cls).query.fetch_objects(limit=1, include_vector=True)
        # Weaviate keeps no dimension in its schema: an empty class takes whatever comes first.
        return len(next(iter(res.objects[0].vector.values()))) if res.objects else 0

    def create_collection(self, spec: CollectionSpec) -> None:
        cls = class_name(spec.name)
        owner: dict[str, Any] = {"bge_vdb": {"name": spec.name, "dim": spec.dim, "fingerprint": spec.fingerprint}}
        field_text = {"data_type": wvc.config.DataType.TEXT, "tokenization": wvc.config.Tokenization.FIELD,
                      "index_searchable": False}
        plain = {"data_type": wvc.config.DataType.TEXT, "index_filterable": False, "index_searchable": False}
        props = [
            wvc.config.Property(name="bge_id", **field_text),  # type: ignore[arg-type]
            wvc.config.Property(name="bge_text", **plain),  # type: ignore[arg-type]
            wvc.config.Property(name="bge_metadata", **plain),  # type: ignore[arg-type]
            wvc.config.Property(name="bge_hash", **plain),  # type: ignore[arg-type]
            wvc.config.Property(name="bge_paths", **{**field_text, "data_type": wvc.config.DataType.TEXT_ARRAY}),  # type: ignore[arg-type]
        ]
        inverted = None
        if spec.lexical is not None:
            owner["bge_vdb"]["lexical"] = spec.lexical.to_dict()
            props.append(wvc.config.Property(
                name=LEXICAL_PROP, data_type=wvc.config.DataType.TEXT, index_filterable=False,
                index_searchable=True, tokenization=wvc.config.Tokenization.WHITESPACE))
            inverted = wvc.config.Configure.inverted_index(
                bm25_k1=spec.lexical.k1, bm25_b=spec.lexical.b, stopwords_preset=wvc.config.StopwordsPreset.NONE)
        with self._errors(f"create class {cls}"):
            self.client.collections.create(
                cls, description=json.dumps(owner), properties=props, inverted_index_config=inverted,
                vector_config=wvc.config.Configure.Vectors.self_provided(
                    name=VECTOR, vector_index_config=wvc.config.Configure.VectorIndex.hnsw(
                        distance_metric=wvc.config.VectorDistances.COSINE)),
                multi_tenancy_config=wvc.config.Configure.multi_tenancy(
                    enabled=True, auto_tenant_creation=True) if self.tenant else None,
            )
        self.describe_collection(spec.name)  # caches properties, creates the tenant

    def drop_collection(self, name: str) -> None:
        cls = class_name(name)
        config = self._config(cls)
        owner = self._owner(config) if config is not None else None
        if config is None or (owner is not None and owner["name"] != name):
            return  # missing, or another collection's class: nothing of ours to drop
        with self._errors(f"drop class {cls}"):
            self.client.collections.delete(cls)
        self._info.pop(cls, None)

    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        cls = class_name(name)
        config = self._config(cls)
        owner = self._owner(config) if config is not None else None
        if owner is None:
            raise CollectionError(f"collection {name!r} (Weaviate class {cls!r}) does not exist or was not made by bge-vdb")
        owner["fingerprint"] = dict(fingerprint) if fingerprint else None
        with self._errors(f"update class {cls}"):
            self.client.collections.use(cls).config.update(description=json.dumps({"bge_vdb": owner}))

    def _props(self, cls: str, refresh: bool = False) -> _Info:
        if refresh or cls not in self._info:
            config = self._config(cls)
            if config is None:
                raise CollectionError(f"Weaviate class {cls!r} does not exist")
            vectors = config.vector_config or {}
            owner = self._owner(config)
            lex = lexical.LexicalSpec.from_dict(owner["lexical"]) if owner and owner.get("lexical") else None
            self._info[cls] = _Info({p.name for p in config.properties}, VECTOR if VECTOR in vectors else None, lex)
        return self._info[cls]

    # ------------------------------------------------------------------------------- writes
    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        cls = class_name(name)
        objects, needed = [], {}
        for rec in records:
            props: dict[str, Any] = {"bge_id": rec.id, "bge_metadata": json.dumps(dict(rec.metadata), ensure_ascii=False)}
            if rec.text is not None:
                props["bge_text"] = rec.text
            if rec.content_hash is not None:
                props["bge_hash"] = rec.content_hash
            paths = []
            for path, value in flatten(rec.metadata):
                paths.append(path_token(path))
                kind = typed(value)
                prop = kind and kind[0] + path_token(path)
                if kind and prop and len(prop) <= MAX_PROP_NAME:
                    props[prop] = kind[1]
                    needed[prop] = kind[0]
            if paths:
                props["bge_paths"] = paths
            vector = [float(x) for x in np.asarray(rec.vector, dtype=np.float32)]
            info = self._props(cls)
            if info.lexical is not None:
                props[LEXICAL_PROP] = " ".join(lexical.analyze(rec.text or "", info.lexical))
            objects.append(wvc.data.DataObject(properties=props, uuid=stable_uuid(rec.id),
                                               vector={info.vector: vector} if info.vector else vector))
        self._ensure_props(cls, needed)
        try:
            with self._errors(f"write to {cls}"):
                result = self._handle(cls).data.insert_many(objects)
        except ConnectorError as exc:
            if not isinstance(exc.__context__, WeaviateInsertManyAllFailedError):
                raise
            return [FailedRecord(r.id, str(exc)) for r in records]
        return [FailedRecord(records[i].id, err.message) for i, err in sorted(result.errors.items())]

    def _ensure_props(self, cls: str, needed: Mapping[str, str]) -> None:
        kinds = {"fs_": wvc.config.DataType.TEXT, "fn_": wvc.config.DataType.NUMBER, "fb_": wvc.config.DataType.BOOL,
                 "paths": wvc.config.DataType.TEXT_ARRAY, "plain": wvc.config.DataType.TEXT}
        # A class made elsewhere lacks our fixed properties: they are added like the typed ones.
        needed = {**{p: ("fs_" if p == "bge_id" else "paths" if p == "bge_paths" else "plain") for p in FIXED_PROPS},
                  **needed}
        missing = [p for p in needed if p not in self._props(cls).props]
        if missing:
            missing = [p for p in missing if p not in self._props(cls, refresh=True).props]
        for prop in missing:
            kind = needed[prop]
            extra: dict[str, Any] = {"tokenization": wvc.config.Tokenization.FIELD} if kind in ("fs_", "paths") else {}
            if kind == "plain":
                extra["index_filterable"] = False
            try:
                with self._errors(f"add property {prop} to {cls}"):
                    self.client.collections.use(cls).config.add_property(wvc.config.Property(
                        name=prop, data_type=kinds[kind], index_searchable=False, **extra))
            except ConnectorError:
                if prop not in self._props(cls, refresh=True).props:  # not a concurrent writer's add
                    raise
            self._info[cls].props.add(prop)

    # -------------------------------------------------------------------------------- reads
    def _filter(self, cls: str, node: filters.Node | None) -> Any:
        """A Weaviate filter, or True/False when the answer does not depend on the data."""
        if node is None:
            return True
        info = self._props(cls)
        if "bge_paths" not in info.props:
            raise UnsupportedFilter(f"Weaviate class {cls!r} was not made by bge-vdb: it cannot be filtered on metadata")
        refreshed = [False]

        def has(prop: str) -> bool:
            if prop not in info.props and not refreshed[0]:
                refreshed[0] = True
                info.props |= self._props(cls, refresh=True).props
            return prop in info.props

        return translate(node, has)

    def _record(self, obj: Any, with_vectors: bool) -> Record:
        p = obj.properties
        vector = None
        if with_vectors:
            vector = np.asarray(next(iter(obj.vector.values())), dtype=np.float32)
        return Record(id=p.get("bge_id") or str(obj.uuid), vector=vector, text=p.get("bge_text"),
                      metadata=json.loads(p.get("bge_metadata") or "{}"), content_hash=p.get("bge_hash"))

    def query(self, name: str, vector: np.ndarray, k: int, where: filters.Node | None,
              with_vectors: bool) -> list[Hit]:
        cls = class_name(name)
        flt = self._filter(cls, where)
        if flt is False:
            return []
        with self._errors(f"search {cls}"):
            res = self._handle(cls).query.near_vector(
                near_vector=[float(x) for x in vector], limit=k, filters=None if flt is True else flt,
                return_metadata=MetadataQuery(distance=True), include_vector=with_vectors,
                return_properties=RETURN_PROPS)
        hits = []
        for obj in res.objects:
            rec = self._record(obj, with_vectors)
            hits.append(Hit(id=rec.id, score=1.0 - float(obj.metadata.distance), text=rec.text,
                            metadata=rec.metadata, vector=rec.vector))
        return hits

    def _hits(self, objects: Sequence[Any], with_vectors: bool, scale: float = 1.0) -> list[Hit]:
        hits = []
        for obj in objects:
            rec = self._record(obj, with_vectors)
            hits.append(Hit(id=rec.id, score=float(obj.metadata.score) * scale, text=rec.text,
                            metadata=rec.metadata, vector=rec.vector))
        return hits

    def lexical_query(self, name: str, query: lexical.LexicalQuery, k: int, where: filters.Node | None,
                      with_vectors: bool) -> list[Hit]:
        cls = class_name(name)
        flt = self._filter(cls, where)
        spec = self._props(cls).lexical
        if flt is False or spec is None:
            return []
        with self._errors(f"BM25 search of {cls}"):
            res = self._handle(cls).query.bm25(
                query=query.joined, query_properties=[LEXICAL_PROP], limit=k,
                filters=None if flt is True else flt, return_metadata=MetadataQuery(score=True),
                include_vector=with_vectors, return_properties=RETURN_PROPS)
        return self._hits(res.objects, with_vectors, scale=spec.k1 + 1.0)  # Weaviate leaves k1 + 1 out

    def hybrid_query(self, name: str, vector: np.ndarray, query: lexical.LexicalQuery, k: int,
                     where: filters.Node | None, with_vectors: bool, alpha: float, fusion: str) -> list[Hit]:
        cls = class_name(name)
        flt = self._filter(cls, where)
        if flt is False:
            return []
        fusion_type = wvc.query.HybridFusion.RANKED if fusion == "rrf" else wvc.query.HybridFusion.RELATIVE_SCORE
        with self._errors(f"hybrid search of {cls}"):
            res = self._handle(cls).query.hybrid(
                query=query.joined, vector=[float(x) for x in vector], alpha=alpha,
                query_properties=[LEXICAL_PROP], fusion_type=fusion_type, limit=k,
                filters=None if flt is True else flt,
                return_metadata=MetadataQuery(score=True), include_vector=with_vectors,
                return_properties=RETURN_PROPS)
        return self._hits(res.objects, with_vectors)

    def _by_ids(self, cls: str, uuids: Sequence[str], with_vectors: bool, extra: Any = True) -> list[Any]:
        if not uuids or extra is False:
            return []
        flt = Filter.by_id().contains_any(list(uuids))
        with self._errors(f"fetch from {cls}"):
            res = self._handle(cls).query.fetch_objects(
                filters=flt if extra is True else flt & extra, limit=len(uuids),
                include_vector=with_vectors, return_properties=RETURN_PROPS)
        return list(res.objects)

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        objs = self._by_ids(class_name(name), [stable_uuid(i) for i in ids], with_vectors)
        return [self._record(o, with_vectors) for o in objs]

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        cls = class_name(name)
        with self._errors(f"delete from {cls}"):
            self._handle(cls).data.delete_many(where=Filter.by_id().contains_any([stable_uuid(i) for i in ids]))

    def delete_where(self, name: str, where: filters.Node) -> int:
        cls = class_name(name)
        flt = self._filter(cls, where)
        if flt is False:
            return 0
        with self._errors(f"delete from {cls}"):
            res = self._handle(cls).data.delete_many(where=ALL if flt is True else flt)
        return int(res.successful)

    def scroll_page(self, name: str, cursor: Cursor, limit: int, where: filters.Node | None,
                    with_vectors: bool) -> tuple[list[Record], Cursor]:
        # Weaviate's cursor (``after``) cannot be combined with a filter, so a filtered page walks
        # the cursor over ids and then fetches the matching ones among them, filtered server-side.
        cls = class_name(name)
        flt = self._filter(cls, where)
        if flt is False:
            return [], None
        with self._errors(f"scroll {cls}"):
            res = self._handle(cls).query.fetch_objects(
                after=cursor, limit=limit, include_vector=with_vectors and flt is True,
                return_properties=RETURN_PROPS if flt is True else [])
        page = list(res.objects)
        nxt = str(page[-1].uuid) if len(page) == limit else None
        if flt is not True:
            page = sorted(self._by_ids(cls, [str(o.uuid) for o in page], with_vectors, flt), key=lambda o: str(o.uuid))
        return [self._record(o, with_vectors) for o in page], nxt

    def count(self, name: str, where: filters.Node | None = None) -> int:
        cls = class_name(name)
        flt = self._filter(cls, where)
        if flt is False:
            return 0
        with self._errors(f"count {cls}"):
            res = self._handle(cls).aggregate.over_all(total_count=True, filters=None if flt is True else flt)
        return int(res.total_count or 0)
