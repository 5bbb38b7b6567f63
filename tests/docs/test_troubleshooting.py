"""The error messages quoted on the troubleshooting page are the ones the code raises.

Each line of a ```` ```text title="error message" ```` block of docs/troubleshooting.md is ``ErrorClass: message``
with ``…`` where the message varies. The class must be one of bge_vdb's errors, and the fixed
parts of the message must all occur in the string literals of one module of bge_vdb (f-strings
and ``+`` chains read with their variable parts as ``…``), so a reworded error fails here until the page follows it.
"""

from __future__ import annotations

import ast
from functools import cache

import pytest

import bge_vdb.errors as errors

from .markdown_blocks import ROOT, blocks_of

PAGE = ROOT / "docs" / "troubleshooting.md"
QUOTES = [(b, line) for b in blocks_of(PAGE) if b.language == "text" and b.title == "error message"
          for line in b.source.splitlines() if line.strip()]


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    if isinstance(node, ast.IfExp):  # ... + (f" (embedder {x})" if embedder else "")
        return _literal_text(node.body)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "a " + f"{x}" + ...
        left, right = _literal_text(node.left), _literal_text(node.right)
        if left is not None or right is not None:
            return (left or "…") + (right or "…")
    return None


@cache
def _literals_by_module() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "bge_vdb").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        texts = [t for node in ast.walk(tree) if (t := _literal_text(node)) is not None]
        out[path.relative_to(ROOT).as_posix()] = texts
    return out


def _fragments(message: str) -> list[str]:
    return [f.strip() for f in message.split("…") if len(f.strip()) >= 3]


def test_the_page_quotes_the_errors_users_meet() -> None:
    names = {line.split(":", 1)[0] for _, line in QUOTES}
    for needed in ("ModelError", "DimensionMismatch", "FingerprintMismatch", "ServerUnreachable"):
        assert needed in names, f"the troubleshooting page no longer quotes {needed}"
    assert any("VARCHAR limit" in line for _, line in QUOTES)
    assert any("Close the other store first" in line for _, line in QUOTES)


@pytest.mark.parametrize(("block", "line"), QUOTES, ids=[f"{b.id}:{i}" for i, (b, _) in enumerate(QUOTES)])
def test_quoted_message_is_in_the_code(block: object, line: str) -> None:
    head, _, message = line.partition(": ")
    if head.isidentifier() and head[0].isupper():
        cls = getattr(errors, head, None)
        assert isinstance(cls, type) and issubclass(cls, errors.BgeVdbError), f"{head} is not a bge-vdb error"
    else:
        message = line
    fragments = _fragments(message)
    assert fragments, f"{line!r} quotes nothing fixed"
    found = [module for module, texts in _literals_by_module().items()
             if all(any(f in t for t in texts) for f in fragments)]
    missing = {f for f in fragments
               if not any(f in t for texts in _literals_by_module().values() for t in texts)}
    assert found, f"no module of bge_vdb says {line!r}; not found anywhere: {sorted(missing)}"
