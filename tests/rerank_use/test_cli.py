"""`bge-vdb search --rerank MODEL [--candidates N] [--rerank-backend] [--rerank-precision]` end to
end on a real Qdrant local store, with the real Reranker on a tiny cross-encoder directory (the
embedder is the hash test double the CLI tests inject, see tests/sync/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bge_vdb import Reranker
from tests.rerank_use.oracle import expected
from tests.sync.test_cli import fake_model, run, write_jsonl

__all__ = ["fake_model"]  # the fixture: a HashEmbedder stands in for the embedding model

ROWS = [{"id": f"d{i}", "text": text, "lang": "en" if i % 2 else "fr"} for i, text in enumerate([
    "vector database search", "river city water", "lazy dog", "quick brown fox jumps", "panda eats bamboo",
    "the capital of france is paris", "berlin is in germany", "book of the mountain", "fire and water",
    "retrieval of relevant passage", "hello world", "short text", "long river of the city"])]


@pytest.fixture
def synced(tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_model: list[str]) -> str:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    write_jsonl(src, ROWS)
    code, _ = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one", "--hybrid")
    assert code == 0
    fake_model.clear()
    return url


@pytest.mark.parametrize("mode", ["dense", "hybrid", "lexical"])
def test_search_rerank_is_the_first_stage_reranked(synced: str, cross_encoder_dir: Path, reranker: Reranker,
                                                  capsys: pytest.CaptureFixture[str], fake_model: list[str],
                                                  mode: str) -> None:
    query, where = "river water of the city", '{"lang": "en"}'
    code, out = run(capsys, "search", synced, "c", query, "-k", "8", "--mode", mode, "--where", where, "--json")
    assert code == 0
    first = json.loads(out)
    code, out = run(capsys, "search", synced, "c", query, "-k", "3", "--mode", mode, "--where", where,
                    "--rerank", str(cross_encoder_dir), "--candidates", "8", "--rerank-backend", "torch",
                    "--rerank-precision", "fp32", "--json")
    assert code == 0
    got = json.loads(out)
    want, _ = expected(reranker, query, [(h["id"], h["text"]) for h in first], 3)
    assert [h["id"] for h in got] == [i for i, _ in want]
    assert [h["score"] for h in got] == pytest.approx([s for _, s in want], abs=1e-5)
    assert {h["reranker"] for h in got} == {reranker.model_id}
    assert all(h["metadata"]["lang"] == "en" for h in got)
    assert fake_model == ([] if mode == "lexical" else ["m/one", "m/one"])  # lexical: no embedder at all

    code, out = run(capsys, "search", synced, "c", query, "-k", "2", "--mode", mode, "--rerank",
                    str(cross_encoder_dir), "--rerank-backend", "torch")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(f"reranked by {reranker.model_id}") and len(lines) == 3
    assert f"the best 2 of up to 50 {mode} candidates" in lines[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["--candidates", "4"], "go with --rerank MODEL"),
    (["--rerank-backend", "torch"], "go with --rerank MODEL"),
    (["--rerank", "{ce}", "-k", "5", "--candidates", "3"], "--candidates: candidates=3 is less than k=5"),
    (["--rerank", "{ce}", "--candidates", "0"], "must be a positive integer"),
    (["--rerank", "{ce}", "--rerank-precision", "int8"], "invalid choice"),
    (["--rerank", "{ce}", "--rerank-backend", "onnx", "--rerank-precision", "bf16"], "is a torch option"),
    (["--rerank", "/no/such/reranker"], "--rerank: model directory '/no/such/reranker' does not exist"),
    (["--rerank", "{ce}", "--where", "{bad"], "--where is not valid JSON"),
])
def test_bad_values_fail_before_any_model_or_store(synced: str, cross_encoder_dir: Path, argv: list[str],
                                                  message: str, capsys: pytest.CaptureFixture[str],
                                                  fake_model: list[str]) -> None:
    from bge_vdb import cli

    args = [a.replace("{ce}", str(cross_encoder_dir)) for a in argv]
    code = cli.main(["search", synced, "c", "river", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert fake_model == []  # no embedder was opened


def test_read_only_and_no_secret_in_errors(tmp_path: Path, cross_encoder_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from bge_vdb import cli

    missing = tmp_path / "nothing-here"
    code = cli.main(["search", f"qdrant://{missing}", "c", "river", "--rerank", str(cross_encoder_dir)])
    assert code == 2 and not missing.exists()  # a search creates no store
    for url in ("tei+http://user:s3cret@127.0.0.1:9/", "openai+http://127.0.0.1:9/v1?model=m&api_key=s3cret",
                "https://user:s3cret@example.invalid/reranker?token=s3cret"):
        code = cli.main(["search", f"qdrant://{missing}", "c", "river", "--rerank", url])
        captured = capsys.readouterr()
        assert code == 2 and "s3cret" not in captured.err + captured.out, captured.err
        assert not missing.exists()


def test_records_without_text_are_named(tmp_path: Path, cross_encoder_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from bge_vdb import cli, connect
    from bge_vdb.types import Record

    url = f"qdrant://{tmp_path / 'q'}"
    with connect(url) as store:
        col = store.collection("c", dim=16)
        col.upsert([Record("bare", vector=[1.0] + [0.0] * 15)])
    code = cli.main(["search", url, "c", "river", "--model", "m/one", "--rerank", str(cross_encoder_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "record 'bare'" in err and "has no text" in err


def test_a_reranker_on_a_server_is_named_and_its_token_never_shown(
        synced: str, cross_encoder_dir: Path, reranker: Reranker, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--rerank tei+http://... : TEI's /rerank (the wire-level fake, scoring with
    sentence-transformers' CrossEncoder on the same weights) gives the local model's ranking; the
    token comes from HF_TOKEN and appears in no output or error."""
    from bge_vdb import cli
    from tests.fakes.tei_server import fake_tei

    token = "tei-token-search-Zk5"
    with fake_tei(cross_encoder_dir, model_id="tiny/reranker", api_key=token) as server:
        monkeypatch.setenv("HF_TOKEN", token)
        query = "river water of the city"
        code, out = run(capsys, "search", synced, "c", query, "-k", "8", "--json")
        first = json.loads(out)
        code, out = run(capsys, "search", synced, "c", query, "-k", "3", "--candidates", "8",
                        "--rerank", server.url, "--json")
        assert code == 0 and token not in out
        got = json.loads(out)
        want, _ = expected(reranker, query, [(h["id"], h["text"]) for h in first], 3)
        assert [h["id"] for h in got] == [i for i, _ in want]
        assert [h["score"] for h in got] == pytest.approx([s for _, s in want], abs=1e-5)
        assert {h["reranker"] for h in got} == {f"tiny/reranker ({server.url})"}

        monkeypatch.setenv("HF_TOKEN", "wrong-token-Qp8")
        code = cli.main(["search", synced, "c", query, "--rerank", server.url])
        captured = capsys.readouterr()
        assert code == 2 and "HTTP 401" in captured.err
        assert "wrong-token-Qp8" not in captured.err + captured.out and token not in captured.err
        code = cli.main(["search", synced, "c", query, "--rerank", server.url, "--rerank-backend", "torch"])
        assert code == 2 and "option of the local Reranker" in capsys.readouterr().err
