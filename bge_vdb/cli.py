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
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return 0
        print(f"{'model':42} {'dim':>5} {'pooling':8} {'max_len':>7}  query instruction")
        for r in rows:
            print(f"{r['id']:42} {r['dim']:>5} {r['pooling']:8} {r['max_length']:>7}  {r['query_instruction']!r}")
        return 0

    p.set_defaults(func=run)


# --- embedder commands (embed, export-onnx) -----------------------------------------------
# --- sync commands (sync, search, info) ---------------------------------------------------
# --- migrate command ----------------------------------------------------------------------

_ADDERS = [_add_models]


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
