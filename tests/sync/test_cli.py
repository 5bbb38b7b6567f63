"""`bge-vdb sync/search/info` end to end on a real Qdrant local store (the embedder is the
hash test double, injected where the CLI builds one; the real model runs in tests/examples)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import cli
from bge_vdb.errors import ModelError
from tests.support.fake_embedder import HashEmbedder

REAL_OPEN_EMBEDDER = cli._open_embedder


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def open_embedder(model: str, backend: str, precision: str = "auto") -> Any:
        assert precision in ("auto", "fp32", "bf16", "int8")  # what --precision passes through
        asked.append(model)
        return HashEmbedder(dim=16, name=model)

    monkeypatch.setattr(cli, "_open_embedder", open_embedder)
    return asked


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_sync_search_info(tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_model: list[str]) -> None:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    write_jsonl(src, [{"id": f"d{i}", "text": f"document about topic {i}", "lang": "en" if i % 2 else "fr"}
                      for i in range(10)])
    code, out = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one")
    assert code == 0 and "sync done" in out
    assert re.search(r"added\s+10\n", out) and re.search(r"failed\s+0\n", out)

    code, out = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["unchanged"] == 10 and rep["embedded"] == 0 and rep["ok"]

    code, out = run(capsys, "search", url, "c", "document about topic 3", "-k", "3", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["id"] == "d3" and len(hits) == 3
    assert fake_model[-1] == "m/one"  # the model recorded in the collection

    code, out = run(capsys, "search", url, "c", "topic", "-k", "10", "--where", '{"lang": "fr"}', "--json")
    assert code == 0 and {h["metadata"]["lang"] for h in json.loads(out)} == {"fr"}

    code, out = run(capsys, "info", url, "c")
    assert code == 0 and "c: 10 records, 16-d, cosine" in out and "'m/one'" in out
    code, out = run(capsys, "info", url, "--json")
    assert code == 0 and json.loads(out)[0]["count"] == 10


def test_dry_run_mirror_and_failures_set_the_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    write_jsonl(src, [{"id": f"d{i}", "text": f"text {i}"} for i in range(6)])
    assert run(capsys, "sync", str(src), "--to", url, "--collection", "c")[0] == 0
    write_jsonl(src, [{"id": f"d{i}", "text": f"text {i}"} for i in range(4)])
    code, out = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--mirror", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 2 and json.loads(out)["dry_run"]
    code, out = run(capsys, "info", url, "c", "--json")
    assert json.loads(out)["count"] == 6

    write_jsonl(src, [{"id": "d0", "text": "text 0"}, {"id": "d0", "text": "again"}, {"id": "e", "text": ""}])
    code, out = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--mirror")
    assert code == 1
    assert "failed 'd0': document 1: duplicate id 'd0'" in out and "text is empty" in out
    assert "nothing deleted" in out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"qdrant://{tmp_path / 'q'}"
    assert cli.main(["sync", str(tmp_path / "nope.jsonl"), "--to", url, "--collection", "c"]) == 2
    assert "neither a file" in capsys.readouterr().err
    assert cli.main(["search", url, "missing", "q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    src = tmp_path / "d.jsonl"
    write_jsonl(src, [{"id": "a", "text": "x"}])
    assert cli.main(["sync", str(src), "--to", url, "--collection", "c", "--scope", "{bad"]) == 2
    assert "--scope is not valid JSON" in capsys.readouterr().err


def test_a_model_that_cannot_be_had_says_how_to_pass_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(ModelError) as info:
        REAL_OPEN_EMBEDDER("BAAI/bge-small-en-v1.5", "auto")
    msg = str(info.value)
    assert "cannot find model 'BAAI/bge-small-en-v1.5'" in msg
    assert "--model /path/to/model-dir" in msg and "all-MiniLM-L6-v2" in msg
