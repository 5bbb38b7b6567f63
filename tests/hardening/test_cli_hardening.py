"""The CLI as a new user meets it (issue 14, item 11): read-only commands create nothing, bad
arguments are refused before any model loads or store is made, exit status 2 for configuration
errors, a closed pipe ends quietly, log lines never land inside the progress bar, and a re-sync
with nothing to embed never loads the model."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import cli, connect
from tests.support.fake_embedder import HashEmbedder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The models the CLI opened (a hash embedder stands in for them)."""
    asked: list[str] = []

    def open_embedder(model: str, backend: str, precision: str = "auto") -> Any:
        asked.append(model)
        return HashEmbedder(dim=16, name=model)

    monkeypatch.setattr(cli, "_open_embedder", open_embedder)
    return asked


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(root: Path) -> dict[str, tuple[int, str, int]]:
    """Every file below ``root``: size, content hash and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            out[str(path.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest(), path.stat().st_mtime_ns)
    return out


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ read-only commands

@pytest.mark.parametrize("url", ["qdrant://{tmp}/not-a-store", "milvus://{tmp}/nothere.db"])
def test_read_only_commands_never_create_a_store(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 opened: list[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    url = url.format(tmp=work)
    for argv in (["info", url], ["info", url, "c", "--json"], ["search", url, "c", "a query"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", argv
        assert re.fullmatch(r"bge-vdb: error: no (Qdrant|Milvus Lite) store at .*\n", err), err
    assert list(work.iterdir()) == [] and opened == []


@pytest.mark.parametrize("url", ["qdrant://{tmp}/some-file", "milvus://{tmp}/garbage.db"])
def test_a_file_where_a_store_belongs_is_a_clean_error(url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    name = url.rsplit("/", 1)[1]
    (tmp_path / name).write_bytes(b"not a store\n")
    url = url.format(tmp=tmp_path)
    for argv in (["info", url], ["sync", str(jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "x"}])),
                                 "--to", url, "--collection", "c"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err
        assert re.fullmatch(r"bge-vdb: error: '.*' is a file, not a .*\n", err), err
    assert (tmp_path / name).read_bytes() == b"not a store\n"


@pytest.mark.parametrize("url", ["qdrant://{tmp}/store", "milvus://{tmp}/store.db"])
def test_read_only_commands_leave_an_existing_store_as_it_was(url: str, tmp_path: Path, opened: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = url.format(tmp=tmp_path)
    src = jsonl(tmp_path / "d.jsonl", [{"id": f"d{i}", "text": f"topic {i}"} for i in range(5)])
    assert run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one")[0] == 0
    store_path = tmp_path / url.rsplit("/", 1)[1]
    before = tree(store_path)
    assert before
    for argv in (["info", url], ["info", url, "c", "--json"], ["search", url, "c", "topic 3", "-k", "2"],
                 ["search", url, "missing", "topic"], ["sync", str(src), "--to", url, "--collection", "new",
                                                       "--dry-run"]):
        run(capsys, *argv)
    assert tree(store_path) == before
    with connect(url) as store:
        assert store.list_collections() == ["c"]


def test_a_dry_run_against_no_store_plans_without_creating_one(tmp_path: Path, opened: list[str],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = jsonl(tmp_path / "d.jsonl", [{"id": f"d{i}", "text": f"topic {i}"} for i in range(3)])
    code, out, _ = run(capsys, "sync", str(src), "--to", f"qdrant://{tmp_path / 'q'}", "--collection", "c",
                       "--dry-run", "--json")
    assert code == 0 and json.loads(out)["added"] == 3 and json.loads(out)["dry_run"]
    assert not (tmp_path / "q").exists()


# ------------------------------------------------------------ checked before any model or store

@pytest.mark.parametrize(("argv", "message"), [
    (["search", "{url}", "c", "q", "-k", "0"], "argument -k: must be a positive integer, got '0'"),
    (["search", "{url}", "c", "q", "-k", "ten"], "argument -k: must be a positive integer, got 'ten'"),
    (["sync", "{src}", "--to", "{url}", "--collection", "c", "--batch-size", "-5"],
     "argument --batch-size: must be a positive integer"),
    (["sync", "{src}", "--to", "qdrnt://{tmp}/q", "--collection", "c"], "unknown store URL scheme 'qdrnt'"),
    (["sync", "{src}", "--to", "{url}?prefer_grcp=1", "--collection", "c"], "unknown Qdrant URL option(s) 'prefer_grcp'"),
    (["sync", "{csv}", "--to", "{url}", "--collection", "c"], "no column 'text' (choose it with --text-field)"),
    (["sync", "{src}", "--to", "{url}", "--collection", "c", "--scope", '{"lang": {"$regex": "e"}}'],
     "--scope: unknown filter operator '$regex'"),
    (["search", "{url}", "c", "q", "--where", '{"year": {"$gt": "2020"}}'], "--where: $gt compares finite numbers"),
    (["search", "{url}", "c", "   "], "QUERY: text is empty"),
])
def test_bad_arguments_are_refused_before_a_model_or_a_store(argv: list[str], message: str, tmp_path: Path,
                                                             opened: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "alpha"}])
    (tmp_path / "d.csv").write_text("id,body\na,alpha\n", encoding="utf-8")
    fill = {"url": f"qdrant://{tmp_path / 'q'}", "src": str(src), "csv": str(tmp_path / "d.csv"), "tmp": str(tmp_path)}
    code, _, err = run(capsys, *[a.format(**fill) if "{" in a and not a.startswith("{\"") else a for a in argv])
    assert code == 2 and message in err, err
    assert opened == [] and not (tmp_path / "q").exists()


def test_a_model_that_cannot_be_found_exits_2_and_creates_nothing(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "alpha"}])
    code, _, err = run(capsys, "sync", str(src), "--to", f"qdrant://{tmp_path / 'q'}", "--collection", "c",
                       "--model", str(tmp_path / "no-such-model"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "q").exists()


# ------------------------------------------------------------------------------- exit status

def test_dimension_and_fingerprint_errors_are_configuration_errors(tmp_path: Path, opened: list[str],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = f"qdrant://{tmp_path / 'q'}"
    with connect(url) as store:
        store.collection("narrow", dim=8)
    src = jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "alpha"}])
    code, _, err = run(capsys, "sync", str(src), "--to", url, "--collection", "narrow")
    assert code == 2 and "holds 8-d vectors but 16-d were asked for" in err

    assert run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", "m/one")[0] == 0
    code, _, err = run(capsys, "search", url, "c", "alpha", "--model", "m/two")
    assert code == 2 and "written by 'm/one'" in err
    assert "check_fingerprint" not in err and "Leave out --model" in err


def test_a_missing_text_field_names_the_line_and_the_flag(tmp_path: Path, opened: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "alpha"}, {"id": "b", "body": "beta"}])
    code, out, _ = run(capsys, "sync", str(src), "--to", f"qdrant://{tmp_path / 'q'}", "--collection", "c")
    assert code == 1
    assert f"failed 'b': {src} line 2 (id 'b'): no 'text' field; the text is read from the field named by --text-field" in out


# ----------------------------------------------------------------------------- in a terminal

def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # The reader is gone before the first byte is written: `bge-vdb models | head -0`.
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([sys.executable, "-m", "bge_vdb.cli", "models"], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""


SYNC_IN_A_TERMINAL = """
import logging, sys
from bge_vdb import cli
from tests.support.fake_embedder import HashEmbedder

class Truncating(HashEmbedder):
    def embed_documents(self, texts):
        logging.getLogger("bge_vdb.embedder").warning("%d of %d text(s) exceeded 16 tokens and were truncated", 1, len(texts))
        return super().embed_documents(texts)

cli._open_embedder = lambda model, backend, precision="auto": Truncating(dim=16)
sys.exit(cli.main(sys.argv[1:]))
"""


def test_log_lines_are_printed_above_the_progress_bar(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "d.jsonl", [{"id": f"d{i}", "text": f"text {i}"} for i in range(3)])
    main, child = pty.openpty()  # stderr is a terminal, so the bar is drawn
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 0 columns: no bar
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SYNC_IN_A_TERMINAL), "sync", str(src),
                             "--to", f"qdrant://{tmp_path / 'q'}", "--collection", "c", "--batch-size", "1"],
                            stdout=subprocess.PIPE, stderr=child, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(child)
    raw = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    proc.wait(timeout=120)
    os.close(main)
    assert proc.returncode == 0
    text = raw.decode()
    starts = [m.start() for m in re.finditer("WARNING bge_vdb.embedder", text)]
    assert len(starts) == 3 and "sync:" in text
    for at in starts:
        line_start = max(text.rfind("\r", 0, at), text.rfind("\n", 0, at)) + 1
        assert text[line_start:at].strip() == "", repr(text[line_start - 80 : at + 30])


# -------------------------------------------------------------------------------- lazy model

def test_a_resync_with_nothing_to_embed_does_not_load_the_model(tmp_path: Path, tiny_384: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from bge_vdb.embedder import Embedder

    loads: list[str] = []
    real_load = Embedder.load

    def counting_load(self: Embedder) -> Embedder:
        if self._backend is None:
            loads.append(self.model)
        return real_load(self)

    monkeypatch.setattr(Embedder, "load", counting_load)
    src = jsonl(tmp_path / "d.jsonl", [{"id": f"d{i}", "text": f"the river {i}"} for i in range(4)])
    argv = ["sync", str(src), "--to", f"qdrant://{tmp_path / 'q'}", "--collection", "c",
            "--model", str(tiny_384), "--backend", "torch", "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["added"] == 4 and len(loads) == 1
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["unchanged"] == 4 and json.loads(out)["embedded"] == 0
    assert len(loads) == 1  # the second run never loaded the weights
