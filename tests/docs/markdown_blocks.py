"""The fenced code blocks of the README and of docs/, as the documentation tests see them.

A block's info string is its language, then optionally a title (which GitHub ignores and the
site shows above the block): ```` ```python ```` runs; ```` ```python title="remote: needs a
server" ```` (a server that cannot run on the test machines) is only compiled; ```` ```bash
title="run by tests/examples/test_sync_wiki.py" ```` is run by that test instead, which must read
the page. Blocks in any other language (``text``, none) are prose, not code.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = {"python", "py", "pycon"}
SHELL = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and flags, and its text."""

    page: str  # path relative to the repository root
    line: int  # line number of the opening fence, from 1
    language: str
    title: str
    source: str

    @property
    def kind(self) -> str:
        if self.language in PYTHON:
            return "python"
        if self.language in SHELL:
            return "shell"
        return "prose"

    @property
    def remote(self) -> bool:
        return self.title.startswith("remote")

    @property
    def tested_by(self) -> str | None:
        return self.title.removeprefix("run by ") if self.title.startswith("run by ") else None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, in order."""
    page = path.relative_to(ROOT).as_posix()
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, words = m["fence"], m["info"].split()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and not lines[i].strip().strip(fence[0])):
            body.append(lines[i][len(m["indent"]):] if lines[i].startswith(m["indent"]) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start}: code block never closed")
        language = words[0].lower() if words else ""
        options = dict(w.split("=", 1) for w in shlex.split(m["info"])[1:] if "=" in w)
        out.append(Block(page, start, language, options.get("title", ""), "\n".join(body) + "\n"))
        i += 1
    return out


def documentation_pages() -> list[Path]:
    """README.md and every Markdown page of the site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks() -> list[Block]:
    """Every python and shell block of the documentation."""
    return [b for p in documentation_pages() for b in blocks_of(p) if b.kind != "prose"]
