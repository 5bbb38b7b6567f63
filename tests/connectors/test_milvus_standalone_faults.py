"""Faults injected into the real Milvus 2.3.5 server itself, not into the client.

1. The server is stopped in the middle of ``sync_corpus``: the client retries within its bounded
   policy, then reports ServerUnreachable; the run stops with a partial report. The server is
   started again on the same data directory and the re-run converges to exactly what an
   uninterrupted sync writes (count and content checked, nothing twice, nothing lost).
2. The server is SIGKILLed while a writer is acknowledged batch after batch: after a restart on
   the same data directory every write the client saw acknowledged is there, exactly.

The module has a server of its own (the session's shared server is never stopped).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import ConnectorError, ServerUnreachable
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import Collection, connect
from bge_vdb.sync import _QUEUE_DEPTH, sync_corpus
from bge_vdb.types import Document, Record
from tests.support.fake_embedder import HashEmbedder
from tests.support.milvus_standalone import MilvusStandalone, running_server

pytestmark = pytest.mark.slow

ATTEMPTS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusStandalone]:
    # A 5 s session TTL: each restart waits out the dead process's etcd sessions.
    with running_server(tmp_path_factory.mktemp("milvus-faults"), {"common.session.ttl": 5}) as srv:
        yield srv


def corpus() -> list[Document]:
    out = []
    for i in range(300):
        words = 60 if i % 10 == 0 else 8  # every 10th document is split into chunks
        out.append(Document(f"doc-{i:03d}", " ".join(f"d{i}w{j}" for j in range(words)), {"i": i}))
    return out


def contents(col: Collection) -> dict[str, tuple[str | None, str | None, dict, np.ndarray]]:
    rows = [r for page in col.scroll(500, with_vectors=True) for r in page]
    out = {r.id: (r.text, r.content_hash, dict(r.metadata), np.asarray(r.vector)) for r in rows}
    assert len(out) == len(rows)  # no id twice
    return out


def test_server_stopped_mid_sync_then_restarted_converges(
    server: MilvusStandalone, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    docs = corpus()
    clean_emb = HashEmbedder(dim=16, max_length=24)
    reference = MemoryStore().collection("sync", embedder=clean_emb)
    sync_corpus(reference, docs, batch_size=25, on_long="split", overlap=4)  # an uninterrupted run
    want = contents(reference)
    emb = HashEmbedder(dim=16, max_length=24)

    waits: list[float] = []
    policy = RetryPolicy(attempts=ATTEMPTS, sleep=waits.append)  # bounded; waits recorded, not slept
    stopped_at: list[int] = []

    def stop_after_three_batches(done: int) -> None:
        if done >= 75 and not stopped_at:
            stopped_at.append(done)
            caplog.clear()  # retries before the stop (a slow call on a busy machine) are not counted
            server.stop()  # SIGTERM: the server shuts down mid-run

    caplog.set_level(logging.WARNING, logger="bge_vdb.retry")
    with connect(server.url, timeout=5, retry_policy=policy) as store:
        col = store.collection("sync", embedder=emb)
        report = sync_corpus(col, docs, batch_size=25, on_long="split", overlap=4,
                             progress=stop_after_three_batches)
        assert stopped_at == [75]
        # The run stopped, saying why, with what it did so far: a partial report.
        assert not report.ok and report.aborted and "cannot reach the Milvus server" in report.aborted
        assert 0 < report.written < len(want) and report.documents < len(docs)
        # While the server shuts down it answers "empty grpc client: ..." (code 65535) for a few
        # seconds before it stops listening: not a refusal of the records, so nothing is bisected
        # or failed for good; every failure says the server could not be reached.
        assert report.failed and all(
            "transient error after retries" in f.reason or f.reason == "not synced: run stopped"
            for f in report.failed), [f.reason for f in report.failed]
        # Bounded retries: no call tries more than the policy's attempts, and the calls that
        # give up are those in flight (the reader's and the writer's steps already handed over,
        # at most 5 store calls each), not one per record or per batch.
        tries = [r.getMessage() for r in caplog.records if r.name == "bge_vdb.retry"]
        assert not [t for t in tries if f"(try {ATTEMPTS})" in t]
        calls = sum("(try 1)" in t for t in tries)
        assert 0 < calls <= 1 + 5 * (_QUEUE_DEPTH + 1) < len(want) - report.written
        # A direct call gives up the same way, after the policy's attempts.
        waits.clear()
        with pytest.raises(ServerUnreachable, match="cannot reach the Milvus server"):
            col.count()
        assert len(waits) == ATTEMPTS - 1

    server.start()  # the same data directory, new ports
    with connect(server.url) as store:
        col = store.collection("sync", embedder=emb)
        before = contents(col)
        assert len(before) >= report.written  # what was acknowledged before the stop survived
        again = sync_corpus(col, docs, batch_size=25, on_long="split", overlap=4)
        assert again.ok and again.documents == len(docs)
        assert again.embedded < len(clean_emb.embedded_texts)  # what landed before the stop was kept
        got = contents(col)
        assert col.count() == len(want) == len(got)
        assert sorted(got) == sorted(want)
        for rid, (text, chash, meta, vec) in want.items():
            assert got[rid][:3] == (text, chash, meta), rid
            np.testing.assert_allclose(got[rid][3], vec, atol=1e-6)
        with capsys.disabled():
            print(f"\nstop mid-sync: {report.written} records written before the stop, "
                  f"{len(before)} found after the restart, {again.embedded} texts embedded by the "
                  f"re-run, {len(got)} records at the end (clean run: {len(want)})")


def test_server_sigkilled_mid_write_keeps_every_acknowledged_write(
    server: MilvusStandalone, capsys: pytest.CaptureFixture[str]
) -> None:
    if not server.running():
        server.start()
    rng = np.random.default_rng(11)
    acked: dict[str, Record] = {}
    attempted: dict[str, Record] = {}
    failure: list[BaseException] = []
    enough = threading.Event()

    with connect(server.url, timeout=5, retry_policy=RetryPolicy(attempts=1)) as store:
        col = store.collection("acked", dim=8)

        def writer() -> None:
            for b in range(10_000):
                vecs = rng.normal(size=(20, 8))
                batch = [Record(f"b{b:05d}-{i:02d}", vecs[i], f"batch {b} record {i}", {"b": b, "i": i})
                         for i in range(20)]
                attempted.update((r.id, r) for r in batch)
                try:
                    col.upsert(batch)
                except ConnectorError as exc:  # the server is gone: stop writing
                    failure.append(exc)
                    return
                acked.update((r.id, r) for r in batch)  # upsert returned: acknowledged
                if b == 40:
                    enough.set()

        thread = threading.Thread(target=writer)
        thread.start()
        assert enough.wait(timeout=300)
        server.kill()  # SIGKILL while the writer keeps going
        thread.join(timeout=300)
        assert not thread.is_alive() and failure  # the writer saw the server die

    server.start()
    with connect(server.url) as store:
        col = store.collection("acked", dim=8, create=False)
        found = contents(col)
        missing = sorted(set(acked) - set(found))
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
        assert set(found) <= set(attempted)  # nothing that was never written
        assert col.count() == len(found)  # no duplicate rows behind the ids
        for rid, (text, _, meta, vec) in found.items():  # every row whole, as written
            rec = attempted[rid]
            assert (text, meta) == (rec.text, dict(rec.metadata))
            np.testing.assert_allclose(vec, np.asarray(rec.vector) / np.linalg.norm(rec.vector), atol=1e-6)
        with capsys.disabled():
            print(f"\nSIGKILL mid-write: {len(acked)} records acknowledged before the kill, "
                  f"{len(found)} found after the restart ({len(found) - len(acked)} of the "
                  f"{len(attempted) - len(acked)} in flight landed), none lost")
