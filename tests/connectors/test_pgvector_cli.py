"""The CLI on PostgreSQL: ``bge-vdb sync ... --to postgresql://...``, ``search``/``info`` on it, and
``bge-vdb migrate postgresql://... qdrant://...`` (and back), through ``connect()`` like any store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import cli
from bge_vdb.store import connect
from tests.support.fake_embedder import HashEmbedder
from tests.support.pg_server import fresh_database


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_open_embedder", lambda model, backend, precision="auto": HashEmbedder(dim=16, name=model))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = cli.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in argv else out


def test_sync_search_info_and_migrate_both_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": f"a document about topic {i}", "n": i}) + "\n"
                           for i in range(40)), encoding="utf-8")
    with fresh_database() as url:
        code, rep = run(capsys, "sync", str(src), "--to", url, "--collection", "docs", "--model", "m/one", "--json")
        assert code == 0 and rep["added"] == 40 and rep["ok"]
        code, rep = run(capsys, "sync", str(src), "--to", url, "--collection", "docs", "--model", "m/one", "--json")
        assert code == 0 and rep["unchanged"] == 40 and rep["embedded"] == 0

        code, hits = run(capsys, "search", url, "docs", "a document about topic 7", "-k", "3",
                         "--where", '{"n": {"$gte": 5}}', "--json")
        assert code == 0 and hits[0]["id"] == "d7" and all(h["metadata"]["n"] >= 5 for h in hits)
        code, out = run(capsys, "info", url)
        assert code == 0 and "docs" in out

        qdrant = f"qdrant://{tmp_path / 'q'}"
        code, rep = run(capsys, "migrate", url, "docs", qdrant, "copy", "--json")
        assert code == 0 and rep["written"] == 40 and rep["verification"]["ok"]
        with fresh_database() as back:
            code, rep = run(capsys, "migrate", qdrant, "copy", back, "again", "--json")
            assert code == 0 and rep["written"] == 40 and rep["verification"]["ok"]
            with connect(back) as store:
                assert store.collection("again", dim=16, create=False).count() == 40
