"""A property test of ``migrate``: random source collections, a crash at a random write of the
destination, a resumed run, and the proof that the destination equals the source.

Sources are built by ``sync_corpus`` (whole, truncated and split documents with unicode text and
nested metadata, so records carry sync's content hashes) plus records written directly (no
hash, nested metadata). The destination is wrapped in ``FaultyStore``: a ``BaseException`` is
raised at its n-th write, before or after it applies. Then ``migrate`` runs again and must:
report ``ok`` with verification passing, hold every source record exactly (ids, text, metadata,
content hash, vectors bit for bit, or within an ulp on Qdrant, which re-normalizes), skip what
the crashed run had already written, and, with ``reembed``, carry the content hashes to the new
model so that a following ``sync_corpus`` with it embeds and writes nothing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.migrate import migrate
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import Collection, VectorStore
from bge_vdb.sync import sync_corpus
from bge_vdb.sync_hash import carry_to_model, model_digest
from bge_vdb.types import Document, Record
from tests.model_based.budget import Budget
from tests.support.fake_embedder import HashEmbedder
from tests.support.faults import Crash, FaultyStore

VOCAB = ["vector", "数据库", "migration", "ü", "δ", "store", "page", "x", "y", "检索"]
NO_SLEEP = RetryPolicy(attempts=3, sleep=lambda _s: None)
_names = itertools.count()

documents = st.lists(
    st.tuples(st.integers(1, 30), st.integers(0, 9), st.sampled_from(["a", "b"]), st.booleans()),
    min_size=1, max_size=8)
raw_records = st.lists(st.tuples(st.integers(0, 9), st.booleans()), max_size=4)


def make_docs(spec: list[tuple[int, int, str, bool]]) -> list[Document]:
    out = []
    for i, (n, seed, src, nested) in enumerate(spec):
        text = " ".join(VOCAB[(seed + 3 * j + j * j) % len(VOCAB)] for j in range(n))
        meta: dict[str, Any] = {"src": src, "n": n}
        if nested:
            meta["deep"] = {"标签": ["迁移", "ü"], "k": {"v": seed}}
        out.append(Document(f"doc-{i}-{'é' if i % 2 else 'a'}", text, meta))
    return out


def build_source(store: VectorStore, docs: list[Document], raw: list[tuple[int, bool]], sync_kw: dict[str, Any],
                 old: HashEmbedder) -> Collection:
    col = store.collection(f"src_{next(_names)}", embedder=old)
    assert sync_corpus(col, docs, **sync_kw).ok
    if raw:  # records made outside sync: no content hash, nested metadata
        vecs = np.random.default_rng(len(raw)).normal(size=(len(raw), old.dim))
        col.upsert([Record(f"raw-{k}", vecs[k], f"raw text {seed} 数据", {"k": k, "nest": {"s": seed}}, None)
                    for k, (seed, _) in enumerate(raw)])
    return col


def snapshot(col: Collection) -> dict[str, Record]:
    return {r.id: r for page in col.scroll(50, with_vectors=True) for r in page}


def check_migration(src_store: VectorStore, dst_inner: VectorStore, *, docs_spec: list[Any], raw: list[Any],
                    split: bool, overlap: int, reembed: bool, crash: tuple[int, str] | None, batch_size: int,
                    atol: float) -> None:
    old = HashEmbedder(dim=8, name="test/old", max_length=10)
    new = HashEmbedder(dim=6, name="test/new", max_length=10)
    sync_kw: dict[str, Any] = {"on_long": "split" if split else "truncate", "overlap": overlap}
    docs = make_docs(docs_spec)
    src = build_source(src_store, docs, raw, sync_kw, old)
    want = snapshot(src)
    dst_inner.retry_policy = NO_SLEEP
    dst = FaultyStore(dst_inner)
    dst.retry_policy = NO_SLEEP
    name = f"dst_{next(_names)}"
    emb = new if reembed else None
    try:
        if crash is not None:
            dst.crash_on_write(*crash)
            with suppress(Crash):
                migrate(src, (dst, name), batch_size=batch_size, reembed=emb, verify=False)
            dst.disarm()
        landed = dst_inner.count(name) if dst_inner.describe_collection(name) else 0
        report = migrate(src, (dst, name), batch_size=batch_size, reembed=emb)
        assert report.ok, (report.failed, report.verification and report.verification.differences)
        assert report.read == len(want) and report.written + report.skipped == len(want)
        assert report.skipped >= (landed if crash is None or crash[1] == "before" else landed - batch_size)
        got = snapshot(dst.collection(name, create=False, check_fingerprint=False))
        assert sorted(got) == sorted(want)
        for rid, w in want.items():
            g = got[rid]
            assert (g.text, dict(g.metadata)) == (w.text, dict(w.metadata)), rid
            if reembed:
                fits = new.count_tokens([w.text or ""])[0] <= new.max_length
                assert g.content_hash == carry_to_model(w.content_hash, model_digest(new.fingerprint), fits=fits)
                assert np.allclose(g.vector, new.embed_documents([w.text or ""])[0], atol=1e-6), rid
            else:
                assert g.content_hash == w.content_hash, rid
                diff = np.abs(np.asarray(g.vector, np.float32) - np.asarray(w.vector, np.float32))
                assert float(diff.max()) <= atol, (rid, float(diff.max()))
        # The copy is current for sync with the model it now holds: nothing to embed or write.
        then = new if reembed else old
        rep = sync_corpus(dst.collection(name, embedder=then), docs, **sync_kw)
        assert rep.ok and rep.embedded == 0 and rep.written == 0 and rep.unchanged == len(docs), rep
    finally:
        dst_inner.drop(name)


def examples(on_real_engine: bool) -> settings:
    base = settings.default
    return settings(base, max_examples=max(25, base.max_examples // 4) if on_real_engine else base.max_examples)


PARAMS = {
    "docs_spec": documents, "raw": raw_records, "split": st.booleans(), "overlap": st.integers(0, 2),
    "reembed": st.booleans(),
    "crash": st.none() | st.tuples(st.integers(1, 6), st.sampled_from(["before", "after"])),
    "batch_size": st.sampled_from([1, 3, 7, 500]),
}


def run(check: Callable[..., None], on_real_engine: bool, budget: Budget, label: str) -> None:
    """Run ``check`` over generated parameters (the profile's examples, or rounds of them for
    the budget's time) and print how many examples ran."""
    ran = itertools.count()

    def counted(**kw: Any) -> None:
        next(ran)
        check(**kw)

    budget.run(lambda each: settings(each)(given(**PARAMS)(counted))(), examples(on_real_engine))
    print(f"\nmigrate into {label} ({budget.describe()}): examples {next(ran)}")


def test_migrate_model_memory(budget: Budget) -> None:
    run(lambda **kw: check_migration(MemoryStore(), MemoryStore(), atol=0.0, **kw), False, budget, "memory")


@pytest.fixture
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    from tests.support.stores import STORE_FACTORIES

    factory: Any = STORE_FACTORIES[request.param]
    cm: AbstractContextManager[VectorStore] = factory(tmp_path)
    with cm as store:
        yield store


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["qdrant-local", "milvus-lite"], indirect=True)
def test_migrate_model_into_a_real_engine(engine: VectorStore, budget: Budget) -> None:
    # Qdrant re-normalizes cosine vectors on write: an ulp of float32 may move.
    atol = 1e-7 if "qdrant" in type(engine).__name__.lower() else 0.0
    run(lambda **kw: check_migration(MemoryStore(), engine, atol=atol, **kw), True, budget, type(engine).__name__)


def test_the_carried_hash_is_what_sync_would_write() -> None:
    """A direct check of the hash carry for each record shape (not through migrate)."""
    old, new = HashEmbedder(dim=4, name="o", max_length=10), HashEmbedder(dim=4, name="n", max_length=10)
    docs = make_docs([(3, 1, "a", False), (25, 2, "b", True)])
    for kw in ({"on_long": "split", "overlap": 1}, {"on_long": "truncate"}):
        a, b = MemoryStore().collection("a", embedder=old), MemoryStore().collection("b", embedder=new)
        assert sync_corpus(a, docs, **kw).ok and sync_corpus(b, docs, **kw).ok
        carried = {r.id: carry_to_model(r.content_hash, model_digest(new.fingerprint),
                                        fits=new.count_tokens([r.text or ""])[0] <= new.max_length)
                   for r in snapshot(a).values()}
        assert carried == {r.id: r.content_hash for r in snapshot(b).values()}, json.dumps(kw)
