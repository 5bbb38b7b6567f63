"""The LangChain and LlamaIndex examples run offline end to end and print sensible answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_langchain_retriever_example() -> None:
    out = run_example("langchain_retriever.py")
    assert "indexed 36 sections of 6 articles" in out
    lines = out.splitlines()
    vaccine = lines[lines.index("Q: How do vaccines protect people from infections?") + 1]
    assert vaccine.startswith("  [Disease /")
    assert "score=" in out and "(cosine)  [Astronomy]" in out
    block = out.split("(only Computer or Electricity)")[1].split("\n\n")[0]
    hits = [line for line in block.splitlines() if line.startswith("  [")]
    assert len(hits) == 2 and all(h.startswith(("  [Computer", "  [Electricity")) for h in hits)


@pytest.mark.slow
def test_llamaindex_query_example() -> None:
    out = run_example("llamaindex_query.py")
    ingested = int(out.split("ingested ")[1].split(" chunks")[0])
    assert ingested > 6
    assert f"re-run: 0 chunks re-embedded (unchanged documents are skipped); collection holds {ingested} chunks" in out
    lines = out.splitlines()
    first = lines[lines.index("Q: Which instruments do orchestras use?") + 1]
    assert "[Music]" in first
    block = out.split("(Computer or Electricity only)")[1].split("\n\n")[0]
    assert all("[Computer]" in h or "[Electricity]" in h for h in block.splitlines()[1:])
    after = out.split("after deleting the Music document: ")[1]
    assert int(after.split(" chunks")[0]) < ingested and "[Music]" not in after
