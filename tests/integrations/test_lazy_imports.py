"""The integrations import their frameworks only when used, and name the extra when missing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_package_import_pulls_in_no_framework() -> None:
    proc = run("""
        import sys
        import bge_vdb.integrations as integ
        heavy = [m for m in ("langchain_core", "llama_index", "torch", "transformers") if m in sys.modules]
        print("heavy:", heavy, sorted(integ.__all__))
    """)
    assert proc.returncode == 0, proc.stderr
    assert ("heavy: [] ['BGEEmbedding', 'BGEEmbeddings', 'BGELlamaVectorStore', 'BGERerankCompressor', "
            "'BGERerankPostprocessor', 'BGEVectorStore']") in proc.stdout


@pytest.mark.parametrize(("blocked", "name", "extra"), [
    ("langchain_core", "BGEVectorStore", "langchain"),
    ("llama_index", "BGELlamaVectorStore", "llamaindex"),
])
def test_missing_framework_names_the_extra(blocked: str, name: str, extra: str) -> None:
    proc = run(f"""
        import sys
        sys.modules[{blocked!r}] = None  # as if the package were not installed
        import bge_vdb.integrations as integ
        from bge_vdb.errors import MissingExtra
        try:
            getattr(integ, {name!r})
        except MissingExtra as exc:
            print("MissingExtra:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert f"pip install 'bge-vdb[{extra}]'" in proc.stdout
