"""`bge-vdb info` says whether a collection is hybrid and with which lexical settings, in text and
JSON, on real Qdrant local mode and Milvus Lite, and touches nothing while it looks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bge_vdb import cli
from bge_vdb.lexical import LexicalSpec
from bge_vdb.store import connect
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder

SPEC = LexicalSpec(k1=1.5, b=0.6, avg_len=37.25)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the digest of its bytes (what a read-only command keeps)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(params=["qdrant", "milvus"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"qdrant://{tmp_path / 'q'}" if request.param == "qdrant" else f"milvus://{tmp_path / 'm.db'}"
    with connect(url) as store:
        store.collection("hyb", embedder=HashEmbedder(16), hybrid=SPEC).upsert(
            [Document("a", "向量 search"), Document("b", "apple")])
        store.collection("dense", embedder=HashEmbedder(16)).upsert([Document("a", "x")])
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_info_shows_the_lexical_spec_and_changes_nothing(store_url: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_digest(tmp_path)
    code, out = run(capsys, "info", store_url, "hyb", "--json")
    assert code == 0
    row = json.loads(out)
    assert row["hybrid"] is True and row["count"] == 2
    assert row["lexical"] == {"analyzer": "standard", "version": 1, "k1": 1.5, "b": 0.6, "avg_len": 37.25}
    assert LexicalSpec.from_dict(row["lexical"]) == SPEC

    code, out = run(capsys, "info", store_url, "--json")
    rows = {r["collection"]: r for r in json.loads(out)}
    assert code == 0 and rows["dense"]["hybrid"] is False and rows["dense"]["lexical"] is None
    assert rows["hyb"]["lexical"] == row["lexical"]

    code, out = run(capsys, "info", store_url)
    assert code == 0
    assert "hyb: 2 records, 16-d, cosine, hybrid (dense + BM25)" in out
    assert "lexical            analyzer standard v1, k1 1.5, b 0.6, avg_len 37.25" in out
    assert "dense: 1 records, 16-d, cosine, dense-only" in out
    assert out.count("lexical ") == 1  # the dense-only collection has no lexical line
    assert tree_digest(tmp_path) == before  # read-only: not a byte written
