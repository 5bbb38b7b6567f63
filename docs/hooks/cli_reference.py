"""MkDocs hook: the CLI page is generated from ``bge_vdb.cli.build_parser()`` at build time.

``docs/cli.md`` holds the prose; the marker ``<!-- cli-reference -->`` is replaced by one section
per sub-command (usage, description, a table of its arguments), read from the argparse parser the
``bge-vdb`` command itself uses, so the page cannot disagree with the command.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- cli-reference -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _argument_row(action: argparse.Action) -> str | None:
    if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
        return None
    if action.option_strings:
        name = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0 and action.choices is None:
            name += f" `{action.metavar or action.dest.upper()}`"
    else:
        name = f"`{action.metavar or action.dest}`"
    detail = action.help or ""
    if action.choices is not None:
        detail += ("; " if detail else "") + "one of " + ", ".join(f"`{c}`" for c in action.choices)
    if action.required and action.option_strings:
        detail += " (required)"
    elif (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
          and action.nargs != 0 and f"({action.default})" not in detail):
        detail += f" (default `{action.default}`)"
    return f"| {name} | {_cell(detail)} |"


def _section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `bge-vdb {name}`", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    rows = [row for action in parser._actions if (row := _argument_row(action))]
    if rows:
        lines += ["| argument | meaning |", "|---|---|", *rows, ""]
    return lines


def render() -> str:
    """The Markdown of every sub-command, in the parser's order."""
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal's width
    from bge_vdb.cli import build_parser

    parser = build_parser()
    lines = ["```text", parser.format_usage().strip(), "```", ""]
    lines += [f"| {', '.join(f'`{s}`' for s in a.option_strings)} | {_cell(a.help or '')} |"
              for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    lines.insert(4, "| option | meaning |\n|---|---|")
    lines.append("")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name, subparser in sub.choices.items():
        if not subparser.description and helps.get(name):
            subparser.description = helps[name][0].upper() + helps[name][1:] + "."
        lines += _section(name, subparser)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace the marker of the CLI page with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
