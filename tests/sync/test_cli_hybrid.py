"""`bge-vdb sync --hybrid` and `bge-vdb search --mode/--alpha/--fusion` on real Qdrant local mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bge_vdb import cli
from tests.sync.test_cli import fake_model, run, write_jsonl

__all__ = ["fake_model"]  # the fixture: a HashEmbedder stands in for the model


def test_sync_hybrid_then_search_every_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            fake_model: list[str]) -> None:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    write_jsonl(src, [{"id": f"d{i}", "text": f"document about topic {i}"} for i in range(8)]
                + [{"id": "code", "text": "error code E1234 in the 向量数据库 driver"}])
    code, _ = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one", "--hybrid")
    assert code == 0

    code, out = run(capsys, "search", url, "c", "E1234", "--mode", "lexical", "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)] == ["code"]
    asked = len(fake_model)
    code, out = run(capsys, "search", url, "c", "数据库", "--mode", "lexical", "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)] == ["code"]
    assert len(fake_model) == asked  # a lexical search loads no model

    code, out = run(capsys, "search", url, "c", "E1234 driver", "-k", "3", "--mode", "hybrid",
                    "--alpha", "0.2", "--fusion", "relative", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["id"] == "code" and len(hits) == 3

    code, out = run(capsys, "search", url, "c", "topic", "--mode", "hybrid", "--alpha", "1.5")
    assert code == 2


def test_hybrid_modes_on_a_dense_collection_say_how_to_fix_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               fake_model: list[str]) -> None:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    write_jsonl(src, [{"id": "a", "text": "alpha"}])
    assert run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one")[0] == 0
    for argv in (["search", url, "c", "alpha", "--mode", "hybrid"],
                 ["sync", str(src), "--to", url, "--collection", "c", "--model", "m/one", "--hybrid"]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code != 0 and "dense-only" in err and "hybrid=True" in err, (argv, err)


def test_sync_analyzer_cjk_unigram_is_stored_and_searched_by(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            fake_model: list[str]) -> None:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    write_jsonl(src, [{"id": "db", "text": "向量数据库"}, {"id": "other", "text": "文本检索"}])
    argv = ["sync", str(src), "--to", url, "--collection", "c", "--model", "m/one"]
    assert run(capsys, *argv, "--analyzer", "cjk-unigram")[0] == 0
    code, out = run(capsys, "info", url, "c", "--json")
    assert code == 0 and json.loads(out)["lexical"]["analyzer"] == "cjk-unigram"
    # One character is a term of its own under this analyzer (the default's terms are pairs).
    code, out = run(capsys, "search", url, "c", "量", "--mode", "lexical", "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)] == ["db"]
    assert run(capsys, *argv, "--analyzer", "cjk-unigram")[0] == 0  # a re-run opens it as it is
    code = cli.main([*argv, "--analyzer", "standard"])
    err = capsys.readouterr().err
    assert code != 0 and "cjk-unigram" in err, err
    code = cli.main([*argv[:-2], "--model", "m/one", "--analyzer", "bigram"])
    assert code == 2 and "invalid choice" in capsys.readouterr().err
