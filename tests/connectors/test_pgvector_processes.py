"""Several processes writing one collection through one PostgreSQL over TCP: two syncs of
disjoint parts of a corpus started at the same instant (both create the collection), and two
syncs of overlapping parts; the result must be exactly one clean sync of the whole corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bge_vdb.store import connect
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document, fingerprint_digest
from tests.support.fake_embedder import HashEmbedder
from tests.support.pg_server import fresh_database

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 300

WORKER = """
import json, sys
from bge_vdb.store import connect
from bge_vdb.sync import sync_corpus
from tests.connectors.test_pgvector_processes import corpus
from tests.support.fake_embedder import HashEmbedder

url, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
emb = HashEmbedder(dim=16, max_length=40)
sys.stdin.readline()  # the parent releases every worker at once
with connect(url) as store:
    col = store.collection("shared", embedder=emb)
    report = sync_corpus(col, corpus()[start:stop], batch_size=25, on_long="split", overlap=4)
print(json.dumps(report.to_dict()), flush=True)
"""


def corpus() -> list[Document]:
    docs = []
    for i in range(N_DOCS):
        words = 70 if i % 10 == 0 else 8  # every tenth document is split into chunks
        docs.append(Document(f"doc-{i:04d}", " ".join(f"w{i}x{j}" for j in range(words)), {"i": i, "part": i % 3}))
    return docs


def _run_together(url: str, parts: list[tuple[int, int]]) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(a), str(b)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for a, b in parts]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode(errors="replace")[-3000:]
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


def _snapshot(url: str) -> dict[str, tuple[str | None, str | None, dict[str, object], np.ndarray]]:
    with connect(url) as store:
        col = store.collection("shared", dim=16, create=False)
        return {r.id: (r.text, r.content_hash, dict(r.metadata), np.asarray(r.vector))
                for page in col.scroll(250, with_vectors=True) for r in page}


@pytest.fixture(scope="module")
def clean() -> dict[str, tuple[str | None, str | None, dict[str, object], np.ndarray]]:
    """One process syncing the whole corpus: what the concurrent runs must equal."""
    with fresh_database() as url:
        with connect(url) as store:
            report = sync_corpus(store.collection("shared", embedder=HashEmbedder(dim=16, max_length=40)),
                                 corpus(), batch_size=25, on_long="split", overlap=4)
            assert report.ok
        return _snapshot(url)


def _same(got: dict[str, tuple[str | None, str | None, dict[str, object], np.ndarray]],
          want: dict[str, tuple[str | None, str | None, dict[str, object], np.ndarray]]) -> None:
    assert sorted(got) == sorted(want)  # every record exactly once (ids are the primary key)
    for rid, (text, chash, meta, vec) in want.items():
        assert got[rid][:3] == (text, chash, meta), rid
        np.testing.assert_array_equal(got[rid][3], vec)


def test_two_writer_processes_sync_disjoint_parts(clean: dict[str, tuple[str | None, str | None, dict[str, object], np.ndarray]]) -> None:
    with fresh_database() as url:
        reports = _run_together(url, [(0, N_DOCS // 2), (N_DOCS // 2, N_DOCS)])
        assert all(r["ok"] for r in reports)
        assert sum(int(r["documents"]) for r in reports) == N_DOCS  # type: ignore[call-overload]
        _same(_snapshot(url), clean)
        with connect(url) as store:
            spec = store.describe_collection("shared")
            assert spec is not None and spec.fingerprint is not None
            assert fingerprint_digest(spec.fingerprint) == fingerprint_digest(HashEmbedder(dim=16, max_length=40).fingerprint)
            assert store.list_collections() == ["shared"]


def test_three_writer_processes_with_overlapping_parts(clean: dict[str, tuple[str | None, str | None, dict[str, object], np.ndarray]]) -> None:
    with fresh_database() as url:
        reports = _run_together(url, [(0, 200), (100, N_DOCS), (50, 250)])
        assert all(r["ok"] for r in reports)
        _same(_snapshot(url), clean)
