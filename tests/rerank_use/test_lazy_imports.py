"""Reranked search and the framework rerankers import nothing heavy until used, and a missing
framework names the extra to install."""

from __future__ import annotations

import pytest

from tests.integrations.test_lazy_imports import run


def test_search_with_rerank_parameters_imports_no_model_or_framework() -> None:
    proc = run("""
        import sys
        import bge_vdb, bge_vdb.integrations, bge_vdb.rerank_search, bge_vdb.cli
        from bge_vdb import connect
        col = connect("memory://").collection("c", dim=4)
        try:
            col.search([1.0, 0.0, 0.0, 0.0], 2, rerank=object())
        except bge_vdb.InputError as exc:
            print("refused:", exc)
        heavy = [m for m in ("torch", "transformers", "onnxruntime", "langchain_core", "llama_index")
                 if m in sys.modules]
        print("heavy:", heavy)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "refused: rerank= takes a bge_vdb.Reranker" in proc.stdout and "heavy: []" in proc.stdout


@pytest.mark.parametrize(("blocked", "name", "extra"), [
    ("langchain_core", "BGERerankCompressor", "langchain"),
    ("llama_index", "BGERerankPostprocessor", "llamaindex"),
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
