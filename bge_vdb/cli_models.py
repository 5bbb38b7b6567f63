"""The ``bge-vdb`` commands about models: ``models`` (the presets), ``embed`` (a smoke test) and
``export-onnx``."""

from __future__ import annotations

import argparse
from typing import Any

from .cli_args import add_precision, print_json


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
            print_json(rows)
            return 0
        print(f"{'model':42} {'dim':>5} {'pooling':8} {'max_len':>7}  query instruction")
        for r in rows:
            print(f"{r['id']:42} {r['dim']:>5} {r['pooling']:8} {r['max_length']:>7}  {r['query_instruction']!r}")
        return 0

    p.set_defaults(func=run)


# --- embedder commands (embed, export-onnx) -----------------------------------------------


def _add_embed(sub: Any) -> None:
    p = sub.add_parser("embed", help="embed a few texts and print the vectors' shape (smoke test)")
    p.add_argument("model", help="preset id, Hugging Face id, local model directory, or a server's "
                   "tei+http(s)://... / openai+http(s)://.../v1?model=NAME URL")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--query", action="store_true", help="embed as queries (adds the instruction)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    add_precision(p)

    def run(args: argparse.Namespace) -> int:
        from .embedder import Embedder

        emb = Embedder(args.model, backend=args.backend, precision=args.precision)
        vecs = emb.embed_queries(args.texts) if args.query else emb.embed_documents(args.texts)
        fp = emb.fingerprint  # local or remote (a tei+/openai+ URL): what determines the vectors
        where = emb.backend.describe() if isinstance(emb, Embedder) else f"served by {emb.url}"
        print(f"model {fp['model']} ({where}): "
              f"{fp['pooling']} pooling, normalize={fp['normalize']}, max {emb.max_length} tokens")
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
ADDERS = [_add_models, _add_embed, _add_export_onnx]
