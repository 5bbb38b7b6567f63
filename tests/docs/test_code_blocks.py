"""Every python and shell block of README.md and docs/ runs, so the documentation cannot drift.

Blocks of one page run in order in one namespace and one fresh directory (holding
``docs.jsonl``, see conftest.py), as a reader would type them. Python blocks are executed, and a line
``print(...)  # -> TEXT`` must print exactly TEXT; shell
blocks run line by line: ``bge-vdb ...`` through the CLI's own ``main`` (in this process, so the
fake model cache applies) and must exit 0; ``pip install`` lines must name extras that exist;
``python -m pytest`` must be CI's command; ``python benchmarks/X.py``/``examples/X.py`` must name
a script that exists and options it defines (benchmarks are never run by tests). Blocks marked
``remote`` are compiled (python) or parsed by ``bash -n`` (shell); ``tested-by=PATH`` blocks are
run by that test, which must exist and read the page.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import DOCS_JSONL
from .markdown_blocks import ROOT, Block, code_blocks

BLOCKS = code_blocks()


@dataclass
class Page:
    """The state a page's blocks share: directory, namespace, how far it ran."""

    directory: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    done: int = 0  # blocks of the page run so far
    broken: str | None = None


_pages: dict[str, Page] = {}


def _extras() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"]["optional-dependencies"])


def _logical_lines(source: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", source)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _check_install(argv: list[str], where: str) -> None:
    extras = _extras()
    for arg in argv:
        for group in re.findall(r"\[([^\]]+)\]", arg):
            unknown = set(group.split(",")) - extras
            assert not unknown, f"{where}: {arg!r} names extras pyproject.toml lacks: {unknown}"


def _check_script(argv: list[str], where: str) -> None:
    if argv[1] == "-m":
        script = ROOT / (argv[2].replace(".", "/") + ".py")
        args = argv[3:]
    else:
        script, args = ROOT / argv[1], argv[2:]
    assert script.is_file(), f"{where}: {script.relative_to(ROOT)} does not exist"
    assert script.parts[-2] in ("benchmarks", "examples", "fidelity"), f"{where}: tests never run {argv}"
    text = script.read_text(encoding="utf-8")
    for arg in args:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            assert f'"{option}"' in text, f"{where}: {script.name} defines no option {option}"


def _run_shell_line(line: str, where: str) -> str:
    """Run or check one command; say which it was."""
    argv = shlex.split(line, comments=True)
    if not argv:
        return "empty"
    if argv[0] == "bge-vdb":
        from bge_vdb.cli import main

        code = main(argv[1:])
        assert code == 0, f"{where}: `{line}` exited {code}"
        return "run"
    if argv[:3] == ["python", "-m", "pip"] or argv[0] == "pip":
        assert "install" in argv or "wheel" in argv, f"{where}: unexpected pip command {line!r}"
        _check_install(argv, where)
        return "checked"
    if argv[:3] == ["python", "-m", "pytest"]:
        assert "python -m pytest" in (ROOT / ".ci" / "run").read_text(), "CI no longer runs pytest"
        for arg in argv[3:]:
            if not arg.startswith("-"):
                assert (ROOT / arg.split("::")[0]).exists(), f"{where}: {arg} does not exist"
        return "checked"
    if argv[0] == "python" and len(argv) > 1:
        _check_script(argv, where)
        return "checked"
    raise AssertionError(f"{where}: the documentation tests do not know how to run {line!r}; "
                         "teach tests/docs/test_code_blocks.py, or mark the block `remote`")


_EXPECT = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s*#\s*->\s?(?P<expected>.*?)\s*$")


def _expect_print(where: str, expected: str, *args: Any) -> None:
    text = " ".join(str(a) for a in args)
    print(text)
    assert text == expected, f"{where}: the page says this prints {expected!r}, it printed {text!r}"


def _with_expectations(block: Block) -> str:
    """The block's source, each ``print(...)  # -> TEXT`` line checking what it prints."""
    lines = []
    for number, line in enumerate(block.source.splitlines(), start=block.line + 1):
        m = _EXPECT.match(line)
        if m:
            line = (f"{m['indent']}__expect_print__({f'{block.page}:{number}'!r}, "
                    f"{m['expected']!r}, {m['args']})")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _run_block(block: Block, page: Page) -> None:
    where = block.id
    if block.kind == "python":
        code = compile(_with_expectations(block), where, "exec")
        page.namespace["__expect_print__"] = _expect_print
        exec(code, page.namespace)
    else:
        for line in _logical_lines(block.source):
            _run_shell_line(line, where)


def _close_stores(namespace: dict[str, Any]) -> None:
    from bge_vdb import VectorStore

    for value in namespace.values():
        if isinstance(value, VectorStore):
            with contextlib.suppress(Exception):
                value.close()


def _page(block: Block, tmp_path_factory: pytest.TempPathFactory) -> Page:
    page = _pages.get(block.page)
    if page is None:
        directory = tmp_path_factory.mktemp(re.sub(r"\W", "_", block.page))
        lines = [__import__("json").dumps(d, ensure_ascii=False) for d in DOCS_JSONL]
        (directory / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        page = _pages[block.page] = Page(directory)
    return page


def _run_elsewhere(block: Block) -> str | None:
    """The test that runs this block, when another one does (and must read the page)."""
    if block.tested_by:
        return block.tested_by
    if block.page == "README.md" and block.kind == "shell":
        # The main job's commands (the real MiniLM on 101 articles) are run, and their output
        # checked, by the example test; it finds them by the section marker, not by a title.
        from tests.examples.test_sync_wiki import readme_main_job_commands

        commands = [shlex.split(ln)[1:] for ln in _logical_lines(block.source) if ln.startswith("bge-vdb ")]
        if commands and commands == readme_main_job_commands():
            return "tests/examples/test_sync_wiki.py"
    return None


def _runnable(page_name: str) -> list[Block]:
    return [b for b in BLOCKS if b.page == page_name and not b.remote and not _run_elsewhere(b)]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.id}-{b.kind}" for b in BLOCKS])
def test_code_block(block: Block, docs_world: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = _run_elsewhere(block)
    if elsewhere:
        test = ROOT / elsewhere
        assert test.is_file(), f"{block.id}: {elsewhere} does not exist"
        assert Path(block.page).name in test.read_text(encoding="utf-8"), \
            f"{block.id}: {elsewhere} does not read {block.page}"
        return
    if block.remote:
        if block.kind == "python":
            compile(block.source, block.id, "exec")
        else:
            done = subprocess.run(["bash", "-n"], input=block.source, text=True, capture_output=True)
            assert done.returncode == 0, f"{block.id}: {done.stderr}"
        return
    page = _page(block, tmp_path_factory)
    runnable = _runnable(block.page)
    index = runnable.index(block)
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    os.chdir(page.directory)
    try:
        while page.done <= index:  # earlier blocks of the page first (a selected subset)
            current = runnable[page.done]
            if page.broken:
                pytest.fail(f"{block.id}: an earlier block of {block.page} failed: {page.broken}")
            try:
                _run_block(current, page)
            except BaseException as exc:
                page.broken = f"{current.id}: {type(exc).__name__}: {exc}"
                raise
            finally:
                page.done += 1
    finally:
        if page.done == len(runnable) or page.broken:
            _close_stores(page.namespace)
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
