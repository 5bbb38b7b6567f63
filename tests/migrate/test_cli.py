"""``bge-vdb migrate``: summary, JSON, exit codes, refusal, a failed verification, --reembed."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_vdb import store as store_module
from bge_vdb.cli import main
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import FailedRecord
from bge_vdb.store import connect
from bge_vdb.types import CollectionSpec, Distance, fingerprint_digest

from .conftest import DIM, fill_source, make_records

_names = itertools.count()


def _source(n: int = 60) -> str:
    """A named in-process memory store holding collection 'docs'; returns its URL."""
    url = f"memory://cli-src-{next(_names)}"
    fill_source(connect(url), "docs", make_records(n))
    return url


def _dst_url() -> str:
    return f"memory://cli-dst-{next(_names)}"


def test_summary_and_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = _source(), _dst_url()
    assert main(["migrate", src, "docs", dst, "copy", "--batch-size", "7"]) == 0
    out = capsys.readouterr().out
    assert "written 60" in out and "verification: PASSED" in out and "top-10 agreement 20/20" in out
    assert connect(dst).count("copy") == 60


def test_json_report_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = _source(), _dst_url()
    assert main(["migrate", src, "docs", dst, "copy", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["ok"] and first["written"] == 60 and first["verification"]["ok"]
    assert first["verification"]["topk_overlap"] == 1.0
    assert main(["migrate", src, "docs", dst, "copy", "--json", "--no-verify"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["written"], second["skipped"], second["verification"]) == (0, 60, None)


def test_refusal_is_an_error_and_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = _source(), _dst_url()
    connect(dst).create_collection(CollectionSpec("copy", DIM + 1, Distance.COSINE))
    assert main(["migrate", src, "docs", dst, "copy"]) == 2  # a configuration error (issue 14)
    assert "9-d" in capsys.readouterr().err
    assert connect(dst).count("copy") == 0
    assert main(["migrate", src, "nope", dst, "copy2"]) == 2
    assert "'nope' does not exist" in capsys.readouterr().err
    assert main(["migrate", src, "docs", dst, "copy", "--batch-size", "0"]) == 2


class LossyStore(MemoryStore):
    """Acknowledges every write but silently drops one record: only verification can tell."""

    def upsert_records(self, name: str, records: Any) -> list[FailedRecord]:
        return super().upsert_records(name, [r for r in records if r.id != "doc-0042"])


class RefusingStore(MemoryStore):
    def upsert_records(self, name: str, records: Any) -> list[FailedRecord]:
        super().upsert_records(name, [r for r in records if r.id != "doc-0007"])
        return [FailedRecord("doc-0007", "rejected by the server")] if any(r.id == "doc-0007" for r in records) else []


@pytest.mark.parametrize(("store_cls", "needle"), [
    (LossyStore, "DIFFERENCE: 1 source id(s) missing from the destination: 'doc-0042'"),
    (RefusingStore, "FAILED 'doc-0007': rejected by the server"),
])
def test_failures_exit_one_and_are_listed(store_cls: type, needle: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(store_module._REGISTRY, "lossy", (f"{__name__}:{store_cls.__name__}", None, None))
    src = _source()
    assert main(["migrate", src, "docs", f"lossy://cli-bad-{next(_names)}", "copy"]) == 1
    out = capsys.readouterr().out
    assert needle in out and "verification: FAILED" in out


def test_reembed_with_a_real_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from bge_vdb.embedder import Embedder
    from tests.embedder.conftest import _build_tiny

    monkeypatch.setenv("BGE_VDB_CACHE", str(tmp_path / "cache"))
    model = _build_tiny(tmp_path / "tiny", hidden=32, layout="bge")
    src, dst = _source(40), _dst_url()
    assert main(["migrate", src, "docs", dst, "reembedded", "--reembed", str(model), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["reembedded"] == 40 and report["dim"] == 32
    emb = Embedder(str(model))
    spec = connect(dst).describe_collection("reembedded")
    assert spec is not None and spec.dim == 32
    assert fingerprint_digest(spec.fingerprint) == fingerprint_digest(emb.fingerprint)
    stored = {r.id: r for r in connect(dst).fetch_records("reembedded", [f"doc-{i:04d}" for i in range(40)], True)}
    texts = [stored[f"doc-{i:04d}"].text or "" for i in range(40)]
    fresh = emb.embed_documents(texts)
    got = np.stack([stored[f"doc-{i:04d}"].vector for i in range(40)])
    assert np.allclose(got, fresh, atol=1e-4)


def test_file_backed_urls_including_one_store_for_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("qdrant_client")
    url, other = f"qdrant://{tmp_path / 'q1'}", f"qdrant://{tmp_path / 'q2'}"
    with connect(url) as store:
        fill_source(store, "docs", make_records(30))
    # Same URL twice: one client is opened (Qdrant local locks its directory).
    assert main(["migrate", url, "docs", url, "copy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 30
    assert main(["migrate", url, "copy", other, "docs"]) == 0
    assert "verification: PASSED" in capsys.readouterr().out
    with connect(other) as store:
        assert store.count("docs") == 30
