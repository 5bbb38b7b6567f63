"""``sync_dataset``: :func:`~bge_vdb.sync.sync_corpus` scaled out on Ray Data (extra ``ray``).

A ``ray.data.Dataset`` of rows (``id``, ``text``, ``metadata``) is cut into batches; each batch goes
to one of ``num_workers`` actors (``Dataset.map_batches(_SyncWorker, concurrency=...)``) that loaded
the embedder once and opened its own store connection. An actor syncs a batch with
:func:`sync_rows`, which runs sync's own :class:`~bge_vdb.sync.SyncSession` (one ``fetch`` of
stored hashes, embed only what changed, the crash-safe write order of split documents, validation
and the embed/write pipeline), so every guarantee of ``sync_corpus`` holds per batch:
deterministic ids, upserts, retries in the connector, failed records listed and never marked
synced. The model-based tests (tests/model_based) drive :func:`sync_rows` and :class:`Driver`
without Ray, so this path is covered by the same proofs as ``sync_corpus``.

What crosses workers is done once, on the driver, from what the actors return per batch (their
report and the ids they saw with each one's chunk count):

* the counts and failures are summed into one :class:`~bge_vdb.sync.SyncReport`;
* duplicate ids across workers are found there (an actor only sees its own batches) and reported;
* mirror mode streams every seen id into sync's SQLite seen-set and runs sync's own deletion pass
  (``SyncSession.mirror``) after all workers succeeded. A run stamp written with each record was rejected for the same
  reason as in ``sync_corpus``: it would rewrite every unchanged record on every run;
* the collection is created before any worker starts (workers open it, never create it), and the
  model fingerprint is stored at the end of a clean run.

Ray Data restarts a dead actor and retries its batch; since a batch re-run is idempotent (the
stored hashes say what already landed), a worker killed mid-run costs only that batch's time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError, DimensionMismatch, FailedRecord, MissingExtra
from .readers import _row_to_doc
from .remote.options import is_remote_url
from .store import Collection, connect, describe_fingerprint
from .sync import SyncReport, SyncSession, check_options, uncounted_tokens_note
from .types import EmbedderProtocol, fingerprint_digest

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

#: Report fields summed over batches (the rest is merged by hand in :meth:`Driver.add`).
_SUMMED = ("added", "updated", "unchanged", "truncated", "embedded", "documents", "written", "split",
           "tokens", "stale_deleted")
ROW_FORMATS = ("rows", "jsonl")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingExtra("ray", "ray", "bge_vdb.distributed (sync on Ray Data)") from None
    return ray


@dataclass(frozen=True)
class EmbedderSpec:
    """How a worker builds its embedder: picklable, so it travels to every actor.

    ``model`` is what :class:`~bge_vdb.embedder.Embedder` takes (preset id or local directory,
    which must exist on every node, or a ``tei+``/``openai+`` URL every node can reach) with
    ``options`` as its keyword arguments, or a zero-argument callable returning any embedder (a
    picklable top-level function or class).
    """

    model: str | Callable[[], EmbedderProtocol]
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold an API key

    def build(self) -> EmbedderProtocol:
        if callable(self.model):
            return self.model()
        from .embedder import Embedder

        return Embedder(self.model, **dict(self.options))


@dataclass(frozen=True)
class _WorkerConfig:
    store_url: str = field(repr=False)  # may carry a token (?token=...)
    store_options: Mapping[str, Any] = field(repr=False)  # may hold an API key
    collection: str
    embedder: EmbedderSpec = field(repr=False)  # its options may hold a key of a remote embedder
    on_long: str
    window: int | None
    overlap: int
    dry_run: bool
    row_format: str
    id_field: str
    text_field: str
    metadata_field: str | None

    def __repr__(self) -> str:  # Ray logs actor arguments: no URL query, option or model option
        return (f"_WorkerConfig(store={_redact(self.store_url)!r}, collection={self.collection!r}, "
                f"on_long={self.on_long!r}, window={self.window!r}, overlap={self.overlap}, "
                f"dry_run={self.dry_run}, row_format={self.row_format!r})")


def _json_line_to_doc(line: str, where: str, cfg: _WorkerConfig) -> Any:
    """One JSONL line as ``read_jsonl`` would read it (bad lines become FailedRecords)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return FailedRecord(where, f"{where}: not valid JSON ({exc.msg})")
    if isinstance(row, dict):
        return _row_to_doc(row, where, cfg.id_field, cfg.text_field, cfg.metadata_field or "metadata")
    return FailedRecord(where, f"{where}: expected a JSON object, got {type(row).__name__}")


def _items(rows: list[dict[str, Any]], cfg: _WorkerConfig, tag: str) -> list[Any]:
    # Ray keeps no global row order (nor JSONL line numbers): a row is named by its batch.
    if cfg.row_format == "jsonl":
        return [_json_line_to_doc(r["text"], f"{r.get('path') or 'jsonl'} (row {i} of {tag})", cfg)
                for i, r in enumerate(rows) if isinstance(r.get("text"), str) and r["text"].strip()]
    # As open_source does: the metadata column when a row has one, else every other column.
    meta_field = cfg.metadata_field or "metadata"
    return [_row_to_doc(r, f"row {i} of {tag}", cfg.id_field, cfg.text_field, meta_field)
            for i, r in enumerate(rows)]


@dataclass
class BatchResult:
    """What one batch sent back to the driver: its report and each seen id's shape."""

    report: SyncReport
    shapes: list[tuple[str, int]]


def sync_rows(col: Collection, embedder: EmbedderProtocol, rows: list[dict[str, Any]], cfg: _WorkerConfig,
              tag: str = "batch") -> BatchResult:
    """Sync one batch of dataset rows into ``col``: what a worker actor does per call.

    A ``SyncInterrupted`` (the embedder failed mid-batch) propagates, so Ray retries the batch;
    what landed before it is reused by the retry.
    """
    items = _items(rows, cfg, tag)
    report = SyncReport(dry_run=cfg.dry_run)
    with SyncSession(col, embedder, on_long=cfg.on_long, window=cfg.window, overlap=cfg.overlap,
                     dry_run=cfg.dry_run, report=report, step_texts=max(len(items), 1)) as session:
        session.run(items, batch_size=max(len(items), 1))
        return BatchResult(report, session.seen.shapes())


class _SyncWorker:
    """A Ray actor: one embedder and one store connection for its life, one batch per call."""

    def __init__(self, cfg: _WorkerConfig) -> None:
        self.cfg = cfg
        self.embedder = cfg.embedder.build()
        if hasattr(self.embedder, "load"):
            self.embedder.load()
        self.store = connect(cfg.store_url, **dict(cfg.store_options))
        # The driver created the collection; a worker never does (no race between workers).
        self.col = self.store.collection(cfg.collection, embedder=self.embedder, create=False,
                                         check_fingerprint=False)
        self.batches = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        self.batches += 1
        result = sync_rows(self.col, self.embedder, batch.to_pylist(), self.cfg,
                           f"worker {os.getpid()} batch {self.batches}")
        return pa.table({
            "report": pa.array([json.dumps(result.report.to_dict(), ensure_ascii=False)], pa.string()),
            "ids": pa.array([[i for i, _ in result.shapes]], pa.list_(pa.string())),
            "chunks": pa.array([[n for _, n in result.shapes]], pa.list_(pa.int64())),
        })

    def __del__(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()


class Driver:
    """The driver's side of a distributed sync: sums batch reports into one, finds duplicate
    ids across batches, then (after every batch succeeded) runs mirror deletion and stores the
    model fingerprint, through one :class:`~bge_vdb.sync.SyncSession` over the collection."""

    def __init__(self, col: Collection, embedder: EmbedderProtocol, report: SyncReport, *, on_long: str,
                 window: int | None, overlap: int, dry_run: bool) -> None:
        self.col = col
        self.embedder = embedder
        self.report = report
        self.session = SyncSession(col, embedder, on_long=on_long, window=window, overlap=overlap,
                                   dry_run=dry_run, report=report)

    def add(self, payload: dict[str, Any], ids: list[str], chunks: list[int]) -> None:
        rep = self.report
        for name in _SUMMED:
            setattr(rep, name, getattr(rep, name) + int(payload[name]))
        rep.failed.extend(FailedRecord(f["id"], f["reason"]) for f in payload["failed"])
        for reason, n in payload["update_reasons"].items():
            rep.update_reasons[reason] = rep.update_reasons.get(reason, 0) + n
        if payload["aborted"]:
            rep.aborted = "; ".join(x for x in (rep.aborted, payload["aborted"]) if x)
        pairs = []
        seen = self.session.seen
        for doc_id, n in zip(ids, chunks, strict=True):
            if seen.add(doc_id):
                pairs.append((n, doc_id))
            else:  # both workers wrote it: which version is stored is not defined
                rep.failed.append(FailedRecord(doc_id, (
                    f"duplicate id {doc_id!r} in this run, synced in two batches; the stored "
                    f"version is whichever write landed last: make ids unique and re-run")))
        seen.set_shapes(pairs)

    def add_result(self, result: BatchResult) -> None:
        self.add(result.report.to_dict(), [i for i, _ in result.shapes], [n for _, n in result.shapes])

    def finish(self, *, mirror: bool, scope: Mapping[str, Any] | None, same_model: bool) -> None:
        if mirror:
            self.session.mirror(scope)
        if not self.report.dry_run and self.report.ok and not same_model:
            self.col.set_fingerprint(self.embedder.fingerprint)

    def close(self) -> None:
        self.session.close()


def sync_dataset(
    dataset: ray.data.Dataset,
    *,
    store_url: str,
    collection: str,
    model: str | os.PathLike[str] | Callable[[], EmbedderProtocol],
    num_workers: int = 2,
    batch_size: int = 256,
    mirror: bool = False,
    scope: Mapping[str, Any] | None = None,
    on_long: str = "truncate",
    window: int | None = None,
    overlap: int = 32,
    dry_run: bool = False,
    num_cpus: float = 1,
    num_gpus: float = 0,
    embedder_options: Mapping[str, Any] | None = None,
    store_options: Mapping[str, Any] | None = None,
    row_format: str = "rows",
    id_field: str = "id",
    text_field: str = "text",
    metadata_field: str | None = "metadata",
    progress: Callable[[int], None] | None = None,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> SyncReport:
    """Sync a Ray dataset into ``collection`` of the store at ``store_url``, as ``sync_corpus`` does.

    Args:
        dataset: rows with ``id_field``/``text_field`` columns and a ``metadata_field`` column (a
            struct/dict) or, when a row has none, every other column as metadata; with
            ``row_format="jsonl"``, the rows of ``ray.data.read_text`` (one JSON object per line,
            parsed in the workers exactly as ``read_jsonl`` parses them; a bad line is a
            per-record failure).
        store_url: a store every worker can open at the same time (e.g. a Milvus server; not
            Qdrant local mode, which allows one client per path).
        model: preset id, local model directory or remote embedder URL (``embedder_options`` go to
            :class:`~bge_vdb.embedder.Embedder`), or a picklable zero-argument embedder factory.
        num_workers: actors, each holding one embedder and one store connection.
        batch_size: rows per fetch/embed/write step of a worker.
        num_cpus: Ray CPUs reserved per worker; the embedder's ``threads`` default to it (not
            every core of the node, which workers would fight over).
        num_gpus: Ray GPUs reserved per worker.
        mirror: as in ``sync_corpus``; the deletion runs once on the driver after every worker
            succeeded.
        scope: as in ``sync_corpus``.
        on_long: as in ``sync_corpus``.
        window: as in ``sync_corpus``.
        overlap: as in ``sync_corpus``.
        dry_run: as in ``sync_corpus``.
        progress: called on the driver with the number of rows handled so far.
        ray_remote_args: extra ``map_batches`` arguments (e.g. ``runtime_env``, ``memory``).
    """
    ray = _import_ray()
    _check_shared_store(store_url)
    check_options(on_long, batch_size)
    if row_format not in ROW_FORMATS:
        raise ConfigError(f"row_format must be one of {ROW_FORMATS}, got {row_format!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ConfigError(f"num_workers must be a positive int, got {num_workers!r}")
    if not isinstance(dataset, ray.data.Dataset):
        raise ConfigError(f"sync_dataset takes a ray.data.Dataset, got {type(dataset).__name__}")
    options = dict(embedder_options or {})
    if not callable(model) and not is_remote_url(model):  # a server has no local threads
        options.setdefault("threads", max(1, int(num_cpus)))  # the CPUs reserved, not the node's
    spec = EmbedderSpec(model if callable(model) else os.fspath(model), options)
    emb = spec.build()  # on the driver: dimension and fingerprint only (weights load lazily)
    started = time.perf_counter()
    report = SyncReport(dry_run=dry_run, tokens_note=uncounted_tokens_note(emb, on_long))
    with connect(store_url, **dict(store_options or {})) as store:
        col = store.collection(collection, embedder=emb, check_fingerprint=False)
        if emb.dim != col.dim:
            raise DimensionMismatch(f"collection {collection!r} holds {col.dim}-d vectors, "
                                    f"the embedder makes {emb.dim}-d")
        scope_filter = dict(scope) if scope else None
        if scope_filter is not None:
            col.count(where=scope_filter)  # reject a bad scope before any work
        stored_fp = col.fingerprint
        same_model = bool(stored_fp) and fingerprint_digest(stored_fp) == fingerprint_digest(emb.fingerprint)
        if stored_fp and not same_model:
            report.fingerprint_note = (
                f"the collection was written by {describe_fingerprint(stored_fp)}; this run uses "
                f"{describe_fingerprint(emb.fingerprint)}: every document is re-embedded")
        cfg = _WorkerConfig(store_url, dict(store_options or {}), collection, spec, on_long, window,
                            overlap, dry_run, row_format, id_field, text_field, metadata_field)
        out = dataset.map_batches(
            _SyncWorker, fn_constructor_kwargs={"cfg": cfg},
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            batch_size=batch_size, batch_format="pyarrow", num_cpus=num_cpus, num_gpus=num_gpus,
            **dict(ray_remote_args or {}))
        driver = Driver(col, emb, report, on_long=on_long, window=window, overlap=overlap, dry_run=dry_run)
        try:
            _merge(out, driver, progress)
            driver.finish(mirror=mirror, scope=scope_filter, same_model=same_model)
        finally:
            driver.close()
            report.seconds = time.perf_counter() - started
    return report


def _redact(url: str) -> str:
    """A store URL without what may be secret: user info and the query (``?token=...``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + ("?..." if parts.query else "")


def _check_shared_store(store_url: str) -> None:
    """Every worker process opens the store itself, so it must be one they can all reach."""
    if not isinstance(store_url, str):
        raise ConfigError(f"store_url must be a URL string, got {type(store_url).__name__}")
    scheme, _, rest = store_url.partition("://")
    scheme = scheme.lower()
    local_file = scheme == "milvus" and rest.split("?")[0].endswith(".db")
    if scheme == "memory" or local_file or (scheme == "qdrant" and not rest.startswith(("http", "["))):
        raise ConfigError(
            f"{_redact(store_url)!r} is private to one process (memory store, Qdrant local mode or a Milvus "
            f"Lite file), but every Ray worker opens the store itself: use a server, e.g. "
            f"milvus://host:19530 (or `milvus-lite server --port` on this machine), "
            f"qdrant+http://..., weaviate+http://... or pinecone://"
        )


def _merge(out: ray.data.Dataset, driver: Driver, progress: Callable[[int], None] | None) -> None:
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        table: pa.Table = batch
        for row in table.to_pylist():
            driver.add(json.loads(row["report"]), row["ids"], row["chunks"])
        if progress is not None:
            progress(driver.report.documents)



def read_source(source: str | os.PathLike[str]) -> tuple[ray.data.Dataset, str]:
    """A Ray dataset of a JSONL or Parquet file (or a directory of them), and its ``row_format``.

    JSONL is read with ``ray.data.read_text`` and parsed in the workers, not with ``read_json``:
    Arrow would give every row every metadata key any row has (as nulls), so the content hashes
    would differ from ``sync_corpus`` on the same file, and one bad line would fail the whole read.
    """
    ray = _import_ray()
    path = os.fspath(source)
    names = sorted(os.listdir(path)) if os.path.isdir(path) else [path]
    suffixes = {os.path.splitext(n)[1].lower() for n in names if not os.path.basename(n).startswith(".")}
    # Read tasks reserve no CPU: the workers hold them all when num_workers * num_cpus equals the
    # cluster's CPUs, and a read task waiting for a CPU would deadlock the pipeline.
    # ray_remote_args, not num_cpus=: Ray 2.10 (our floor) has no num_cpus keyword on read_text,
    # and read_parquet hands unknown keywords on to pyarrow.
    no_cpu = {"num_cpus": 0}
    if suffixes and suffixes <= {".jsonl", ".ndjson"}:
        return ray.data.read_text(path, include_paths=True, ray_remote_args=no_cpu), "jsonl"
    if suffixes and suffixes <= {".parquet"}:
        return ray.data.read_parquet(path, ray_remote_args=no_cpu), "rows"
    raise ConfigError(f"--ray reads .jsonl/.ndjson or .parquet files (or a directory of one kind); "
                      f"{path!r} has {', '.join(sorted(suffixes)) or 'no files'}")


def sync_source(source: str | os.PathLike[str], *, address: str | None = None, **options: Any) -> SyncReport:
    """``bge-vdb sync SOURCE --ray``: join the cluster at ``address`` (``"auto"``: the running
    one; none: a local instance started and stopped here) and :func:`sync_dataset` SOURCE."""
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        # A local instance gets one logical CPU beyond what the worker actors reserve: Ray Data's
        # file-listing stage asks for a CPU, and with every CPU held by a worker it waits forever.
        # (On a cluster, leave a CPU free the same way; see docs/scaling.md.)
        reserved = int(options.get("num_workers", 2) * options.get("num_cpus", 1)) + 1
        local_cpus = None if address else max(os.cpu_count() or 1, reserved)
        ray.init(address=address, num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
    try:
        dataset, row_format = read_source(source)
        return sync_dataset(dataset, row_format=row_format, **options)
    finally:
        if started_here:
            ray.shutdown()
