"""Faults, bad input and crash safety (a real subprocess killed with SIGKILL)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import FailedRecord, TransientError
from bge_vdb.store import Collection, connect
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document, Record
from tests.support.fake_embedder import HashEmbedder
from tests.support.faults import FaultInjector
from tests.sync.conftest import NO_SLEEP

WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"document {i} says {'x' * (i % 5)} hello", {"i": i}) for i in range(n)]


def test_transient_write_failures_at_30_percent_end_fully_synced() -> None:
    mem = MemoryStore()
    mem.retry_policy = NO_SLEEP
    emb = HashEmbedder(dim=16)
    spec = mem.collection("c", embedder=emb).spec
    flaky = FaultInjector(mem, ["upsert_records"], error=lambda: TransientError("injected 503"),
                          rate=0.3, when="mixed", seed=11)
    col = Collection(flaky, spec, emb)  # type: ignore[arg-type]
    rep = sync_corpus(col, docs(200), batch_size=10)
    assert flaky.failures > 5  # the faults really happened, both before and after the write
    assert flaky.failed_before > 0 and flaky.failed_after > 0
    assert rep.failed == [] and rep.added == 200
    assert sorted(r.id for page in col.scroll(1000) for r in page) == sorted(f"d{i}" for i in range(200))


class RefusingStore(MemoryStore):
    """Refuses the ids in ``refuse`` one by one, as a database refusing bad records does."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()

    def upsert_records(self, name: str, records: Sequence[Record]) -> list[FailedRecord]:
        ok = [r for r in records if r.id not in self.refuse]
        super().upsert_records(name, ok)
        return [FailedRecord(r.id, "refused by the database") for r in records if r.id in self.refuse]


def test_permanent_failures_are_reported_and_picked_up_next_run() -> None:
    store = RefusingStore()
    emb = HashEmbedder(dim=16)
    col = store.collection("c", embedder=emb)
    store.refuse = {"d3", "d7"}
    rep = sync_corpus(col, docs(10), mirror=True)
    assert sorted(f.id for f in rep.failed) == ["d3", "d7"]
    assert all("refused by the database" in f.reason for f in rep.failed)
    assert rep.added == 8 and not rep.ok and "nothing deleted" in (rep.mirror_note or "")
    assert "failed 'd3'" in str(rep)

    store.refuse = set()
    emb.embedded_texts.clear()
    rep = sync_corpus(col, docs(10))
    assert rep.ok and (rep.added, rep.unchanged) == (2, 8)
    assert sorted(emb.embedded_texts) == sorted([docs(10)[3].text, docs(10)[7].text])


def test_transient_failure_after_all_retries_is_reported_not_lost() -> None:
    mem = MemoryStore()
    mem.retry_policy = NO_SLEEP
    emb = HashEmbedder(dim=16)
    spec = mem.collection("c", embedder=emb).spec
    down = FaultInjector(mem, ["upsert_records"], error=lambda: TransientError("down"), rate=1.0)
    rep = sync_corpus(Collection(down, spec, emb), docs(5))  # type: ignore[arg-type]
    assert sorted(f.id for f in rep.failed) == [f"d{i}" for i in range(5)]
    assert "transient error after retries" in rep.failed[0].reason
    assert sync_corpus(mem.collection("c", embedder=emb), docs(5)).added == 5


def test_bad_input_is_reported_per_record_and_the_rest_goes_on() -> None:
    store = MemoryStore()
    store.max_metadata_bytes = 200  # type: ignore[misc]
    col = store.collection("c", embedder=HashEmbedder(dim=16))
    items: list[Any] = [
        {"id": "good1", "text": "fine text"},
        {"text": "no id here"},
        {"id": "empty", "text": "   "},
        {"id": "num", "text": 42},
        {"id": "meta", "text": "x", "metadata": {"when": object()}},
        {"id": "big", "text": "x", "metadata": {"blob": "y" * 500}},
        {"id": "good1", "text": "duplicate of the first"},
        Document("good2", "also fine"),
        "not a document",
        FailedRecord("file.jsonl:9", "file.jsonl:9: not valid JSON"),
    ]
    rep = sync_corpus(col, items)
    reasons = {f.id: f.reason for f in rep.failed}
    assert rep.added == 2 and sorted(r.id for p in col.scroll() for r in p) == ["good1", "good2"]
    assert "id is missing" in reasons["#1"] or "id must be a string" in reasons["#1"]
    assert "text is empty" in reasons["empty"]
    assert "text must be a string" in reasons["num"]
    assert "not JSON-serialisable" in reasons["meta"]
    assert "over this database's limit of 200" in reasons["big"]
    assert "duplicate id 'good1'" in reasons["good1"] and "first occurrence is kept" in reasons["good1"]
    assert "expected a Document or a dict" in reasons["#8"]
    assert reasons["file.jsonl:9"] == "file.jsonl:9: not valid JSON"
    assert col.fetch(["good1"])[0].text == "fine text"


def test_custom_field_names_and_progress() -> None:
    col = MemoryStore().collection("c", embedder=HashEmbedder(dim=16))
    seen: list[int] = []
    rows = [{"key": f"k{i}", "body": f"text {i}", "attrs": {"a": i}} for i in range(25)]
    rep = sync_corpus(col, iter(rows), id_field="key", text_field="body", metadata_field="attrs",
                      batch_size=10, progress=seen.append)
    assert rep.added == 25 and seen == [10, 20, 25]
    assert col.fetch(["k4"])[0].metadata == {"a": 4}


# ------------------------------------------------------------------------------ crash safety

def _run_worker(url: str, out: Path, kill_after_batches: int | None, seed: int) -> int:
    proc = subprocess.Popen([sys.executable, str(WORKER), url, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None
    if kill_after_batches is None:
        return proc.wait(timeout=300)
    rng = random.Random(seed)
    seen = 0
    for line in proc.stdout:
        if line.startswith(b"batch"):
            seen += 1
            if seen >= kill_after_batches:
                # A random extra spin so the kill lands anywhere in the writer's work.
                for _ in range(rng.randrange(0, 200_000)):
                    pass
                proc.send_signal(signal.SIGKILL)
                break
    return proc.wait(timeout=60)


def _snapshot(url: str) -> dict[str, tuple[str | None, np.ndarray]]:
    with connect(url) as store:
        col = store.collection("crash", dim=16, create=False)
        return {r.id: (r.content_hash, np.asarray(r.vector)) for p in col.scroll(500, with_vectors=True) for r in p}


@pytest.mark.parametrize("kind", ["qdrant", "milvus", "pgvector"])
def test_killed_sync_resumes_to_exactly_a_clean_sync(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "pgvector":  # a database per name on the test PostgreSQL (TCP), dropped after
        from tests.support.pg_server import Databases

        databases = Databases()
        request.addfinalizer(databases.drop_all)

    def url(name: str) -> str:
        if kind == "pgvector":
            return databases.url(name)
        return f"qdrant://{tmp_path / name}" if kind == "qdrant" else f"milvus://{tmp_path / name}.db"

    assert _run_worker(url("clean"), tmp_path / "clean.json", None, 0) == 0
    clean = _snapshot(url("clean"))
    rng = random.Random(5)
    killed = 0
    for round_no in range(3):
        rc = _run_worker(url("crashed"), tmp_path / f"r{round_no}.json", rng.randrange(1, 12), round_no)
        killed += rc == -signal.SIGKILL
    assert killed >= 2  # the kills really interrupted runs
    before = _snapshot(url("crashed"))
    assert _run_worker(url("crashed"), tmp_path / "final.json", None, 0) == 0
    after = _snapshot(url("crashed"))
    final = json.loads((tmp_path / "final.json").read_text())

    assert sorted(after) == sorted(clean)  # every record exactly once (ids are the unique keys)
    for rid, (chash, vec) in clean.items():
        assert after[rid][0] == chash
        np.testing.assert_allclose(after[rid][1], vec, atol=1e-6)
    # Nothing already written (with its final hash) was embedded again.
    done_texts = {final["texts"][rid] for rid, (h, _) in before.items() if clean.get(rid, (None,))[0] == h}
    assert not done_texts & set(final["embedded"])
    assert final["report"]["ok"] and final["report"]["embedded"] == len(final["embedded"])
