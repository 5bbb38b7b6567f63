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
from tests.remote.conftest import ANONYMOUS, FAST_RETRY, INFINITY_KEY, MINILM_ID
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


def test_without_token_counts_sync_says_so_and_refuses_splitting(
        tmp_path: Path, minilm_dir: Path, infinity_server: InfinityServer) -> None:
    """A served name with no tokenizer here: sync refuses on_long='split'/'error', embeds whole
    documents and says tokens were not counted. None is recorded as fitting whole (the server
    may have truncated it), so a later run that counts tokens and splits re-examines them all
    and splits the long ones (recorded as "w", they would never have been split)."""
    docs = corpus(30)  # doc-0 and doc-25 are over the 256-token limit
    url = infinity_server.url(ANONYMOUS)
    with STORE_FACTORIES["qdrant-local"](tmp_path) as store, \
            Embedder(url, api_key=INFINITY_KEY, max_length=256, retry=FAST_RETRY) as emb:
        col = store.collection("docs", embedder=emb)
        for on_long in ("split", "error"):
            with pytest.raises(errors.ConfigError, match=f"on_long='{on_long}' needs token counts"):
                sync_corpus(col, docs, on_long=on_long)
        assert col.count() == 0
        report = sync_corpus(col, docs)
        assert report.ok and report.added == len(docs) and report.tokens == 0 and report.truncated == 0
        assert report.tokens_note and "not counted" in report.tokens_note and ANONYMOUS in report.tokens_note
        assert "not counted" in str(report)
        assert sync_corpus(col, docs).unchanged == len(docs)  # a re-run: nothing to embed
        with Embedder(url, api_key=INFINITY_KEY, max_length=256, tokenizer=str(minilm_dir),
                      retry=FAST_RETRY) as counting:
            col = store.collection("docs", embedder=counting)
            again = sync_corpus(col, docs, on_long="split")
            assert again.ok and again.tokens_note is None
            # none was recorded as fitting whole: all are re-examined, the two long ones split
            assert (again.split, again.updated, again.unchanged) == (2, len(docs), 0)
            assert sync_corpus(col, docs, on_long="split").unchanged == len(docs)


def test_migrate_reembeds_through_a_server(tmp_path: Path, infinity_server: InfinityServer,
                                           minilm_local: Embedder) -> None:
    """migrate(reembed=...) with a remote embedder that cannot count tokens lands the server's
    vectors and verifies; no record is said to fit whole, as sync says it (a re-run of sync
    with that embedder then embeds nothing)."""
    from bge_vdb.migrate import migrate

    docs = corpus(20)
    with STORE_FACTORIES["memory"](tmp_path) as src_store, STORE_FACTORIES["qdrant-local"](tmp_path) as dst_store, \
            Embedder(infinity_server.url(ANONYMOUS), api_key=INFINITY_KEY, max_length=256,
                     retry=FAST_RETRY) as emb:
        src = src_store.collection("src", embedder=minilm_local)
        assert sync_corpus(src, docs).ok
        report = migrate(src, (dst_store, "dst"), reembed=emb)
        assert report.ok and report.reembedded == len(docs), (report.failed[:3], report.verification)
        dst = dst_store.collection("dst", create=False, check_fingerprint=False)
        got = vectors(dst)
        want = minilm_local.embed_documents([got[d.id][0] for d in docs])
        assert float(np.abs(np.stack([got[d.id][1] for d in docs]) - want).max()) < 1e-5
        dst = dst_store.collection("dst", embedder=emb)
        assert sync_corpus(dst, docs).unchanged == len(docs)
