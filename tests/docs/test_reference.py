"""The generated parts of the site cover what they must: the API reference lists every public
name, and the CLI page (built from the parser by docs/hooks/cli_reference.py) every sub-command
and option of the ``bge-vdb`` command."""

from __future__ import annotations

import argparse
import importlib.util
import re

import bge_vdb

from .markdown_blocks import ROOT

REFERENCE = ROOT / "docs" / "reference"


def _documented(page: str) -> set[str]:
    text = (REFERENCE / page).read_text(encoding="utf-8")
    return set(re.findall(r"^::: (\S+)", text, flags=re.MULTILINE))


def test_every_public_name_of_bge_vdb_is_in_the_reference() -> None:
    documented = _documented("bge_vdb.md")
    missing = [n for n in bge_vdb.__all__ if n != "__version__" and f"bge_vdb.{n}" not in documented]
    assert not missing, f"docs/reference/bge_vdb.md lacks {missing}"


def test_the_integrations_reference_lists_every_class() -> None:
    import bge_vdb.integrations as integrations

    text = (REFERENCE / "integrations.md").read_text(encoding="utf-8")
    for name in integrations.__all__:
        assert re.search(rf"\b{name}\b", text), f"docs/reference/integrations.md lacks {name}"
    assert "::: bge_vdb.distributed" in (REFERENCE / "distributed.md").read_text(encoding="utf-8")


def _cli_hook():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_page_covers_every_command_and_option() -> None:
    from bge_vdb.cli import build_parser

    hook = _cli_hook()
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert hook.MARKER in page
    rendered = hook.on_page_markdown(page, page=None)
    assert hook.MARKER not in rendered
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 7
    for name, parser in sub.choices.items():
        section = rendered.split(f"## `bge-vdb {name}`", 1)
        assert len(section) == 2, f"the CLI page has no section for {name}"
        body = section[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings or [action.metavar or action.dest]:
                assert f"`{option}`" in body, f"bge-vdb {name}: {option} is not on the CLI page"


def test_the_readme_links_only_to_files_that_exist() -> None:
    # mkdocs --strict checks the site's links; the README is not part of the site.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
