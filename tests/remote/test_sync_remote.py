"""sync_corpus through a real embedding server (Infinity) into real engines (Qdrant local mode,
Milvus Lite): the vectors equal the local Embedder's, a re-run embeds nothing, and a server
killed mid-sync gives bounded retries, a clear error and a partial report; after a restart a
re-run converges to the complete collection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import errors
from bge_vdb.embedder import Embedder
from bge_vdb.errors import EmbedderUnavailable
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import Collection, VectorStore
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document
from tests.remote import infinity
from tests.remote.conftest import FAST_RETRY, INFINITY_KEY, MINILM_ID
from tests.remote.infinity import InfinityServer
from tests.remote.suite import WORDS
from tests.support.stores import STORE_FACTORIES

pytestmark = pytest.mark.timeout(1800)  # the first test may create Infinity's virtualenv


def corpus(n: int, version: int = 0) -> list[Document]:
    docs = []
    for i in range(n):
        length = 300 if i % 25 == 0 else 4 + (i * 7) % 40  # every 25th is over MiniLM's 256 tokens
        words = [WORDS[(i * 3 + j * (version + 1)) % len(WORDS)] for j in range(length)]
        docs.append(Document(f"doc-{i}", " ".join(words), {"n": i % 4}))
    return docs


def vectors(col: Collection) -> dict[str, tuple[str, np.ndarray]]:
    return {r.id: (r.text or "", np.asarray(r.vector, dtype=np.float32))
            for page in col.scroll(500, with_vectors=True) for r in page}


@pytest.fixture(params=["qdrant-local", "milvus-lite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    with STORE_FACTORIES[request.param](tmp_path) as s:
        yield s


def test_sync_through_infinity_equals_local_and_a_rerun_embeds_nothing(
        store: VectorStore, infinity_server: InfinityServer, minilm_local: Embedder) -> None:
    docs = corpus(60)
    with Embedder(infinity_server.url(), api_key=INFINITY_KEY, retry=FAST_RETRY) as emb:
        col = store.collection("docs", embedder=emb)
        first = sync_corpus(col, docs, on_long="split", batch_size=16)
        assert first.ok and first.added == len(docs) and first.split == 3
        stored = vectors(col)
        texts = [text for text, _ in stored.values()]
        want = minilm_local.embed_documents(texts)
        got = np.stack([vec for _, vec in stored.values()])
        assert float(np.abs(got - want).max()) < 1e-5  # parity, through the store
        sent = emb.runner.sent
        again = sync_corpus(col, docs, on_long="split", batch_size=16)
        assert (again.embedded, again.unchanged, again.added) == (0, len(docs), 0)
        assert emb.runner.sent == sent  # not one request
        changed = docs[:5] + corpus(60, version=1)[5:10] + docs[10:]
        third = sync_corpus(col, changed, on_long="split", batch_size=16)
        assert third.updated == 5 and third.unchanged == 55
        hit = col.search(changed[7].text, k=1)[0]
        assert hit.id.split("#")[0] == "doc-7"


def test_a_server_killed_mid_sync_then_restarted(tmp_path: Path, minilm_dir: Path) -> None:
    interrupted = getattr(errors, "SyncInterrupted", None)
    assert interrupted is not None, "sync's partial report (SyncInterrupted) is expected on main"
    docs = corpus(120)
    server = infinity.start(minilm_dir, served_names=[MINILM_ID])
    port, restarted = server.port, None
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, initial=0.05, max_wait=0.2, max_total=10.0, sleep=waits.append)
    try:
        with STORE_FACTORIES["qdrant-local"](tmp_path) as store:
            emb = Embedder(server.url(), retry=policy)
            col = store.collection("docs", embedder=emb)

            def kill_after_two_batches(done: int) -> None:
                if done >= 40 and server.process.poll() is None:
                    server.kill()

            with pytest.raises(interrupted) as info:
                sync_corpus(col, docs, batch_size=20, progress=kill_after_two_batches)
            cause = info.value.__cause__
            assert isinstance(cause, EmbedderUnavailable) and "after the retries" in str(cause)
            assert 1 <= len(waits) <= 2 * policy.attempts  # bounded, then it gave up
            report = info.value.report
            assert not report.ok and report.aborted and report.written >= 40
            assert col.count() == report.written

            restarted = infinity.start(minilm_dir, served_names=[MINILM_ID], port=port)  # same URL
            final = sync_corpus(col, docs, batch_size=20)
            assert final.ok and final.unchanged == report.written
            assert final.added == len(docs) - report.written and final.embedded == final.added
            assert col.count() == len(docs)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
