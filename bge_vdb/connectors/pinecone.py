"""Pinecone connector (pinecone SDK 10, REST API 2026-07): one collection = one index.

``connect("pinecone://?api_key_env=PINECONE_API_KEY&cloud=aws&region=us-east-1&namespace=ns")``,
``host=http://localhost:5080`` for Pinecone Local or a proxy, or ``PineconeStore(client=pc)``.

How names, ids, metadata and filters map onto Pinecone is in :mod:`.pinecone_mapping`. Here:

* The collection's name and embedder fingerprint are one record in the reserved namespace
  ``__bge_vdb__`` (one per data namespace), so they never show in count, scroll, search or fetch.
* Scroll lists ids (``/vectors/list``, 100 a page) and fetches them; a filtered scroll or count
  filters the fetched records with :func:`bge_vdb.filters.matches` (list and stats take no filter
  on serverless). Delete by filter is the base class's scroll-then-delete-ids.
* A hybrid collection (``hybrid=True``) is an index with the ``dotproduct`` metric whose records
  carry sparse values (BM25 term weights without IDF); bge-vdb writes unit-length dense vectors,
  so the dot product *is* the cosine similarity and the collection reports cosine. IDF is applied
  on the query side from term statistics kept as :mod:`.pinecone_lexical` describes. A lexical
  search is a sparse query with an all-zero dense vector (score = BM25); a hybrid search runs the
  dense and the lexical query and fuses them here: Pinecone's own sparse-dense score is a weighted
  *sum* of raw scores, not bge-vdb's fusion.
* Retries: the SDK's own retries are switched off (control plane via ``retry_config``, data
  plane by rebuilding the index client's HTTP client), so bge-vdb's policy is the only layer.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pinecone import Pinecone
from pinecone.errors.exceptions import (
    ApiError,
    ConflictError,
    NotFoundError,
    PineconeConnectionError,
    PineconeError,
    PineconeTimeoutError,
    RateLimitError,
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
    permanent_connection_failure,
)
from ..store import Cursor, VectorStore, refuse_unknown, url_options
from ..types import CollectionSpec, Distance, Hit, Record
from .pinecone_lexical import MAX_SPARSE_VALUES, PineconeHybrid, TermSets, TermStatistics
from .pinecone_mapping import (
    MAX_TOP_K,
    META_NAMESPACE,
    decode_record,
    dumps,
    encode_metadata,
    index_name,
    pinecone_id,
    to_pinecone_filter,
    url_chunks,
)

log = logging.getLogger("bge_vdb.pinecone")

MAX_METADATA_BYTES = 40 * 1024
_METRICS = {"cosine": Distance.COSINE, "euclidean": Distance.EUCLID, "dotproduct": Distance.DOT}
_URL_OPTIONS = ("api_key_env", "host", "namespace", "cloud", "region", "timeout", "ready_timeout")
_FLOAT_JSON_BYTES = 24  # longest JSON of one float64 ("-1.2345678901234567e-05,")


class PineconeStore(PineconeHybrid, VectorStore):
    scheme: ClassVar[str] = "pinecone"
    supports_lexical: ClassVar[bool] = True
    max_batch_count: ClassVar[int] = 1000  # vectors per upsert request
    max_batch_bytes: ClassVar[int] = 2 * 1024 * 1024 - 16 * 1024  # 2 MB request, envelope headroom
    max_metadata_bytes: ClassVar[int | None] = MAX_METADATA_BYTES

    def __init__(
        self,
        client: Pinecone | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str = "PINECONE_API_KEY",
        host: str | None = None,
        namespace: str = "",
        cloud: str = "aws",
        region: str = "us-east-1",
        timeout: float = 20.0,
        ready_timeout: float = 300.0,
        poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if namespace == META_NAMESPACE:
            raise ConfigError(f"namespace {META_NAMESPACE!r} is reserved by bge-vdb")
        self.namespace = namespace
        self.cloud, self.region = cloud, region
        self.ready_timeout, self.poll_interval, self._sleep = ready_timeout, poll_interval, sleep
        self._host = host
        self._owns_client = client is None
        if client is None:
            key = api_key or os.environ.get(api_key_env, "")
            if not key:
                raise ConfigError(f"no Pinecone API key: pass api_key=... or set the {api_key_env} "
                                  "environment variable")
            from pinecone import RetryConfig

            try:
                client = Pinecone(api_key=key, host=host, timeout=timeout,
                                  retry_config=RetryConfig(max_retries=0))
            except PineconeError as exc:  # the SDK's messages never echo the key
                raise ConfigError(f"cannot configure the Pinecone client: {exc}") from None
        self._client = client
        self._indexes: dict[str, Any] = {}  # index name -> data-plane client
        self._lexical: dict[str, tuple[lexical.LexicalSpec, TermStatistics] | None] = {}
        # One bge-vdb record per namespace (each namespace is its own collection of the index).
        self._meta_id = pinecone_id("collection:" + namespace)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PineconeStore:
        refuse_unknown(options, _keyword_options(), "Pinecone option")
        kwargs: dict[str, Any] = dict(cls._url_query(url))
        for key in ("timeout", "ready_timeout"):
            if key in kwargs:
                try:
                    kwargs[key] = float(kwargs[key])
                except ValueError:
                    raise ConfigError(f"{key} must be a number of seconds, got {kwargs[key]!r}") from None
        kwargs.update(options)
        return cls(**kwargs)

    @classmethod
    def check_url(cls, url: str, *, must_exist: bool = False) -> None:
        cls._url_query(url)

    @staticmethod
    def _url_query(url: str) -> dict[str, str]:
        parts = urlsplit(url)
        if parts.netloc or parts.path not in ("", "/"):
            raise ConfigError("a Pinecone URL carries its options in the query: "
                              "pinecone://?api_key_env=PINECONE_API_KEY&host=http://localhost:5080")
        if "api_key" in parse_qs(parts.query, keep_blank_values=True):
            raise ConfigError("do not put an API key in a URL (URLs end up in logs): pass api_key=... "
                              "or name an environment variable with api_key_env=")
        return url_options(url, _URL_OPTIONS, "Pinecone")

    def __repr__(self) -> str:  # never the API key
        return f"PineconeStore(host={self._host or 'api.pinecone.io'!r}, namespace={self.namespace!r})"

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------------------ control plane
    def _describe(self, iname: str) -> Any | None:
        try:
            with _map_errors(f"describing index {iname!r}"):
                return self._client.indexes.describe(iname)
        except CollectionNotFound:
            return None

    def _wait(self, iname: str, gone: bool) -> Any:
        """Poll until the index is ready (or gone), at most ``ready_timeout`` seconds of sleeps."""
        polls = max(1, math.ceil(self.ready_timeout / self.poll_interval))
        for _ in range(polls + 1):
            model = self._describe(iname)
            if (model is None) if gone else (model is not None and model.status.ready):
                return model
            self._sleep(self.poll_interval)
        state = "still exists" if gone else "is not ready"
        raise ConnectorError(f"Pinecone index {iname!r} {state} after {self.ready_timeout:g} s")

    def list_collections(self) -> list[str]:
        with _map_errors("listing indexes"):
            models = list(self._client.indexes.list())
        names = []
        for model in models:
            meta = self._meta(model.name) if _dense_field(model) is not None else None
            names.append(str(meta["name"]) if meta else model.name)
        return sorted(names)

    def describe_collection(self, name: str) -> CollectionSpec | None:
        iname = index_name(name)
        model = self._describe(iname)
        if model is None:
            return None
        field = _dense_field(model)
        if field is None:
            raise CollectionError(f"Pinecone index {iname!r} (collection {name!r}) has no dense vector "
                                  "field '_values'; bge-vdb uses vector indexes made with dimension=")
        if not model.status.ready:
            model = self._wait(iname, gone=False)
        meta = self._meta(iname)
        if meta is not None and meta.get("name") != name:
            raise CollectionError(f"collection {name!r} maps to Pinecone index {iname!r}, which holds "
                                  f"collection {meta.get('name')!r}; choose another name")
        fingerprint = json.loads(meta["fingerprint"]) if meta and meta.get("fingerprint") else None
        distance = _METRICS.get(field.metric, Distance.OTHER)
        lex = None
        if meta and meta.get("lexical"):
            lex = lexical.LexicalSpec.from_dict(json.loads(meta["lexical"]))
            if field.metric == "dotproduct":
                distance = Distance.COSINE  # bge-vdb's unit vectors: the dot product is the cosine
            self._lexical[name] = (lex, self._stats(iname, int(field.dimension)))
        else:
            self._lexical[name] = None
        return CollectionSpec(name, int(field.dimension), distance, fingerprint, lex)

    def create_collection(self, spec: CollectionSpec) -> None:
        iname = index_name(spec.name)
        metric = "cosine" if spec.lexical is None else "dotproduct"  # sparse values need dotproduct
        schema = {"fields": {"_values": {"type": "dense_vector", "dimension": spec.dim, "metric": metric}}}
        deployment = {"deployment_type": "managed", "cloud": self.cloud, "region": self.region}
        # A 409 means it exists: a retried create whose first answer was lost, or a concurrent one.
        with _map_errors(f"creating index {iname!r} for collection {spec.name!r}"), suppress(ConflictError):
            self._client.indexes.create(name=iname, schema=schema, deployment=deployment, timeout=-1)
        self._wait(iname, gone=False)
        self._write_meta(iname, spec.name, spec.dim, spec.fingerprint, spec.lexical)
        self._lexical.pop(spec.name, None)

    def drop_collection(self, name: str) -> None:
        iname = index_name(name)
        self._lexical.pop(name, None)
        index = self._indexes.pop(iname, None)
        if index is not None:
            index.close()
        try:
            with _map_errors(f"deleting index {iname!r}"):
                self._client.indexes.delete(iname, timeout=-1)
        except CollectionNotFound:
            return
        self._wait(iname, gone=True)  # so that a collection of the same name can be made again

    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any] | None) -> None:
        spec = self.describe_collection(name)
        if spec is None:
            raise CollectionNotFound(f"collection {name!r} (Pinecone index {index_name(name)!r}) does not exist")
        self._write_meta(index_name(name), name, spec.dim, fingerprint, spec.lexical)

    def _meta(self, iname: str) -> dict[str, Any] | None:
        with _map_errors(f"reading bge-vdb's record in index {iname!r}"):
            got = self._index(iname).fetch(ids=[self._meta_id], namespace=META_NAMESPACE)
        vec = got.vectors.get(self._meta_id)
        return dict(vec.metadata or {}) if vec is not None else None

    def _write_meta(self, iname: str, name: str, dim: int, fingerprint: Mapping[str, Any] | None,
                    lex: lexical.LexicalSpec | None = None) -> None:
        meta = {"name": name, "fingerprint": json.dumps(dict(fingerprint)) if fingerprint else ""}
        if lex is not None:
            meta["lexical"] = json.dumps(lex.to_dict())
        values = [1.0] + [0.0] * (dim - 1)  # Pinecone refuses all-zero dense vectors
        with _map_errors(f"writing bge-vdb's record in index {iname!r}"):
            self._index(iname).upsert(vectors=[{"id": self._meta_id, "values": values,
                                                "metadata": meta}], namespace=META_NAMESPACE)

    def _index(self, iname: str) -> Any:
        """The data-plane client of an index, with the SDK's own retries switched off."""
        index = self._indexes.get(iname)
        if index is None:
            model = self._describe(iname)
            if model is None or not model.host:
                raise CollectionNotFound(f"Pinecone index {iname!r} does not exist")
            host = model.host
            if (self._host or "").startswith("http://"):  # Pinecone Local: plaintext everywhere
                host = "http://" + host.split("://", 1)[-1]
            with _map_errors(f"opening index {iname!r}"):
                index = _without_sdk_retries(self._client.index(host=host))
            self._indexes[iname] = index
        return index

    # --------------------------------------------------------------------------- data plane
    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        hybrid = self._hybrid(name)
        refused, wire = [], []
        new: TermSets = {}
        for rec in records:
            meta = encode_metadata(rec)
            size = len(dumps(meta))
            if size > MAX_METADATA_BYTES:
                refused.append(FailedRecord(rec.id, (
                    f"Pinecone metadata of this record would be {size} bytes (its text, metadata and "
                    f"bge-vdb's filter fields), over Pinecone's limit of {MAX_METADATA_BYTES} bytes")))
                continue
            row: dict[str, Any] = {"id": pinecone_id(rec.id), "values": np.asarray(rec.vector).tolist(), "metadata": meta}
            if hybrid is not None:
                spec = hybrid[0]
                indices, values = lexical.sparse(lexical.term_weights(lexical.analyze(rec.text or "", spec), spec))
                if len(indices) > MAX_SPARSE_VALUES:
                    refused.append(FailedRecord(rec.id, f"the text has {len(indices)} distinct terms, over "
                                                        f"Pinecone's {MAX_SPARSE_VALUES} sparse values per record"))
                    continue
                if indices:  # Pinecone refuses an empty sparse vector: such a record has no terms
                    row["sparse_values"] = {"indices": indices, "values": values}
                new[row["id"]] = indices
            wire.append(row)
        if wire:
            self._write(name, hybrid, new, lambda index: index.upsert(vectors=wire, namespace=self.namespace))
        return refused

    def record_nbytes(self, record: Record) -> int:
        # An upper bound of the record's JSON in the upsert body, the same for same-shaped records.
        dim = 0 if record.vector is None else len(record.vector)
        return (_FLOAT_JSON_BYTES * dim + len(dumps(encode_metadata(record)))
                + len(dumps(pinecone_id(record.id))) + 48)

    def query(
        self, name: str, vector: np.ndarray, k: int, where: filters.Node | None, with_vectors: bool
    ) -> list[Hit]:
        if k > MAX_TOP_K:
            raise InputError(f"Pinecone returns at most {MAX_TOP_K} hits per query, k={k} was asked")
        with self._data(name, "query") as index:
            res = index.query(vector=np.asarray(vector).tolist(), top_k=k, filter=to_pinecone_filter(where),
                              include_metadata=True, include_values=with_vectors, namespace=self.namespace)
        return [self._hit(m, with_vectors) for m in res.matches]

    @staticmethod
    def _hit(m: Any, with_vectors: bool) -> Hit:
        rec = decode_record(m.id, m.metadata, m.values if with_vectors else None)
        return Hit(rec.id, float(m.score), rec.text, rec.metadata, rec.vector)

    def fetch_records(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        return self._fetch(name, [pinecone_id(i) for i in ids], with_vectors)

    def _fetch(self, name: str, pids: Sequence[str], with_vectors: bool) -> list[Record]:
        out: list[Record] = []
        for chunk in url_chunks(pids):
            with self._data(name, "fetch") as index:
                got = index.fetch(ids=chunk, namespace=self.namespace).vectors
            out.extend(decode_record(p, got[p].metadata, got[p].values if with_vectors else None)
                       for p in chunk if p in got)
        return out

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            pids = [pinecone_id(i) for i in ids]
            gone: TermSets = dict.fromkeys(pids)
            self._write(name, self._hybrid(name), gone, lambda index: index.delete(ids=pids, namespace=self.namespace))

    def scroll_page(
        self, name: str, cursor: Cursor, limit: int, where: filters.Node | None, with_vectors: bool
    ) -> tuple[list[Record], Cursor]:
        # /vectors/list has no filter: list a page of ids, fetch them, filter here exactly.
        with self._data(name, "list") as index:
            page = index.list_paginated(limit=min(limit, 100), pagination_token=cursor, namespace=self.namespace)
        pids = [item.id for item in page.vectors if item.id]
        records = self._fetch(name, pids, with_vectors) if pids else []
        if where is not None:
            records = [r for r in records if filters.matches(where, r.metadata)]
        return records, (page.pagination.next if page.pagination else None) or None

    def count(self, name: str, where: filters.Node | None = None) -> int:
        if where is not None:  # serverless stats take no filter: count a filtered scroll
            total, cursor = 0, None
            while True:  # not _scroll_all: the caller's retry covers this call, do not nest another
                page, cursor = self.scroll_page(name, cursor, 100, where, False)
                total += len(page)
                if cursor is None:
                    return total
        with self._data(name, "describe_index_stats") as index:
            stats = index.describe_index_stats()
        summary = stats.namespaces.get(self.namespace or "__default__") or stats.namespaces.get(self.namespace)
        return int(summary.vector_count) if summary is not None else 0

    @contextmanager
    def _data(self, name: str, what: str) -> Iterator[Any]:
        iname = index_name(name)
        with _map_errors(f"{what} on collection {name!r} (Pinecone index {iname!r})"):
            try:
                yield self._index(iname)
            except NotFoundError:
                self._indexes.pop(iname, None)
                raise


def _keyword_options() -> set[str]:
    import inspect

    return set(inspect.signature(PineconeStore.__init__).parameters) - {"self"}


def _dense_field(model: Any) -> Any | None:
    field = model.schema.fields.get("_values")
    return field if getattr(field, "dimension", None) is not None else None


# --------------------------------------------------------------------------------- errors

def _without_sdk_retries(index: Any) -> Any:
    """Rebuild the data-plane client's HTTP layer with ``max_retries=0``.

    The SDK retries 408/429/5xx and connection errors up to 3 times with waits of up to 60 s
    (90 s with a Retry-After), and ``Pinecone(retry_config=...)`` does not reach data-plane REST
    clients. Under bge-vdb's own policy that would multiply into many minutes, so the SDK makes
    one attempt and ``bge_vdb.retry`` alone decides. Private SDK attributes: if they moved, keep
    the SDK's retries and say so.
    """
    try:
        from pinecone import RetryConfig
        from pinecone._internal.constants import DATA_PLANE_API_VERSION
        from pinecone._internal.http_client import HTTPClient

        old = index._http
        index._http = HTTPClient(replace(index._config, retry_config=RetryConfig(max_retries=0)),
                                 DATA_PLANE_API_VERSION)
        old.close()
    except (ImportError, AttributeError, TypeError) as exc:
        log.warning("could not switch off the Pinecone SDK's data-plane retries (%s); retries of the "
                    "SDK and of bge-vdb will compound", exc)
    return index


def _retry_after(exc: ApiError) -> float | None:
    hint = getattr(exc, "retry_after", None)
    if hint is None:
        raw = (exc.headers or {}).get("retry-after")
        try:
            hint = float(raw) if raw is not None else None
        except ValueError:
            hint = None
    return hint


@contextmanager
def _map_errors(what: str) -> Iterator[None]:
    """The one place where Pinecone SDK errors become bge-vdb errors. The SDK's messages carry
    status, message and request id, never the API key."""
    try:
        yield
    except RateLimitError as exc:
        raise TransientError(f"Pinecone rate limit while {what}: {exc}", retry_after=_retry_after(exc)) from exc
    except NotFoundError as exc:
        raise CollectionNotFound(f"not found while {what}: {exc}") from exc
    except ApiError as exc:
        if exc.status_code == 501:  # never served, whatever the request carries
            raise RequestNotImplemented(f"Pinecone does not implement {what}: {exc}") from exc
        if exc.status_code >= 500 or exc.status_code == 408:
            raise TransientError(f"Pinecone server error while {what}: {exc}",
                                 retry_after=_retry_after(exc)) from exc
        raise ConnectorError(f"Pinecone refused {what}: {exc}") from exc
    except PineconeConnectionError as exc:  # the message names the host, never the key
        permanent = permanent_connection_failure(exc)
        if permanent:
            raise ConnectorError(f"Pinecone connection failed while {what}: {permanent}") from exc
        raise ServerUnreachable(f"Pinecone unreachable while {what}: {exc}") from exc
    except PineconeTimeoutError as exc:
        raise TransientError(f"Pinecone timed out while {what}: {exc}") from exc
    except PineconeError as exc:
        raise ConnectorError(f"Pinecone SDK error while {what}: {exc}") from exc
