"""A model-based (stateful) test of ``sync_corpus``: Hypothesis drives random operations on a
corpus and on the store underneath, and after every sync the collection must hold exactly what a
plain model says.

The model is a dict ``doc id -> (text, metadata, settings of the last successful sync)``; from it
and the embedder's own ``split_text`` the test derives the records a document must have (ids,
texts, metadata, chunk sets). Content hashes must equal those of a clean sync of that document
into an empty store, and vectors the embedding of the record's text.

Rules: add, edit (grow, shrink, metadata only), delete, restore and roll back documents; change
``on_long``/``window``/``overlap``; sync with ``mirror`` on or off, a ``scope``, a batch size and
a document order, optionally with a crash (a ``BaseException`` at the n-th write or delete of the
connector, before or after it applies) and with chosen records refused by the database (one by
one or as whole requests) during that run.

Invariant after every sync that returns a report: every document of the source not listed in
``report.failed`` is stored exactly as the model says, no record belongs to no document (no
orphan chunk, no chunk of another version), failures have a cause the test injected (a refusal,
an ``on_long="error"`` document), and a run with no fault injected reports ``ok``. After a crash
or a failure the documents it touched are "dirty" (their state is unknown), until a later run
that includes them resolves them; a dirty document's records are the only ones allowed to be
anything. So "one clean re-run restores the invariant" is checked every time a crashed run is
followed by a clean one.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.retry import RetryPolicy
from bge_vdb.store import Collection, VectorStore
from bge_vdb.sync import SyncReport, sync_corpus
from bge_vdb.sync_hash import reserved_id
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder
from tests.support.faults import WRITES, Crash, FaultyStore

IDS = ["a", "b", "c", "d#x", "ü-é", "数据"]  # '#' inside an id is fine; '#<digits>' is refused
VOCAB = ["alpha", "beta", "gamma", "δέλτα", "数据库", "x", "y", "zeta", "eta", "θ"]
MAX_LENGTH = 10  # tokens are words + 2: documents over 8 words are long
NO_SLEEP = RetryPolicy(attempts=3, sleep=lambda _s: None)
Snapshot = dict[str, tuple[str | None, dict[str, Any], str | None]]


@dataclass(frozen=True)
class Settings:
    on_long: str = "split"
    window: int | None = None
    overlap: int = 2


@dataclass(frozen=True)
class Version:
    text: str
    meta_json: str  # hashable, canonical metadata

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(json.loads(self.meta_json))


def make_text(seed: int, n: int) -> str:
    return " ".join(VOCAB[(seed * 7 + j * 3 + (j * j) % 5) % len(VOCAB)] for j in range(n))


def make_meta(src: str, n: int, nested: bool) -> str:
    meta: dict[str, Any] = {"src": src, "n": n}
    if nested:
        meta["deep"] = {"tags": ["数据", "ü"], "k": {"v": n % 3}}
    return json.dumps(meta, sort_keys=True, ensure_ascii=False)


def expected_records(doc_id: str, v: Version, s: Settings, emb: HashEmbedder) -> dict[str, tuple[str, dict[str, Any]]] | None:
    """What the store must hold for a document (None: sync must refuse it, on_long='error')."""
    meta = v.metadata
    too_long = emb.count_tokens([v.text])[0] > emb.max_length
    if too_long and s.on_long == "error":
        return None
    if too_long and s.on_long == "split":
        chunks = emb.split_text(v.text, window=s.window, overlap=s.overlap)
        if len(chunks) > 1:
            out = {}
            for i, chunk in enumerate(chunks):
                m = {**meta, "parent_id": doc_id, "chunk_index": i}
                if i == 0:
                    m["chunk_count"] = len(chunks)
                out[f"{doc_id}#{i}"] = (chunk, m)
            return out
    return {doc_id: (v.text, meta)}


def owner(record_id: str) -> str:
    return record_id.rpartition("#")[0] if reserved_id(record_id) else record_id


class SyncMachine(RuleBasedStateMachine):
    """The machine runs against ``make_store()``; subclasses pick the engine and the driver."""

    make_store: ClassVar[Callable[[], VectorStore]] = MemoryStore
    collections: ClassVar[int] = 0
    #: What the runs exercised (the test asserts the faults really happened, and prints it).
    seen: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        inner = type(self).make_store()
        inner.retry_policy = NO_SLEEP
        self.store = FaultyStore(inner)
        self.store.retry_policy = NO_SLEEP
        SyncMachine.collections += 1
        self.seen["examples"] += 1
        self.name = f"model_{SyncMachine.collections}"
        self.emb = HashEmbedder(dim=8, max_length=MAX_LENGTH)
        self.col = self.store.collection(self.name, embedder=self.emb)
        self.source: dict[str, Version] = {}
        self.history: dict[str, list[Version]] = {}
        self.settings = Settings()
        self.model: dict[str, tuple[Version, Settings]] = {}
        self.dirty: set[str] = set()
        self.last_ok = False  # the last sync was ok and nothing changed since
        self.oracle: dict[tuple[str, Version, Settings], Snapshot] = {}

    def check_invariants(self, *args: Any, **kwargs: Any) -> None:
        self.seen["steps"] += 1  # runs after every step: counts them for the printed figures
        super().check_invariants(*args, **kwargs)

    def teardown(self) -> None:
        self.store.inner.drop(self.name)

    # ------------------------------------------------------------------------ the corpus
    def _put(self, doc_id: str, v: Version) -> None:
        self.source[doc_id] = v
        self.history.setdefault(doc_id, []).append(v)
        self.last_ok = False

    @initialize(docs=st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 50), st.integers(1, 40),
                                        st.sampled_from(["a", "b"]), st.booleans()), min_size=1, max_size=6))
    def corpus(self, docs: list[tuple[str, int, int, str, bool]]) -> None:
        for doc_id, seed, n, src, nested in docs:
            self.add(doc_id, seed, n, src, nested)

    @rule(doc_id=st.sampled_from(IDS), seed=st.integers(0, 50), n=st.integers(1, 40),
          src=st.sampled_from(["a", "b"]), nested=st.booleans())
    def add(self, doc_id: str, seed: int, n: int, src: str, nested: bool) -> None:
        self._put(doc_id, Version(make_text(seed, n), make_meta(src, n, nested)))

    @precondition(lambda self: self.source)
    @rule(data=st.data(), how=st.sampled_from(["grow", "shrink", "metadata"]), k=st.integers(1, 30),
          src=st.sampled_from(["a", "b"]))
    def edit(self, data: st.DataObject, how: str, k: int, src: str) -> None:
        """Grow (text appended: leading chunks stay), shrink, or change only the metadata."""
        doc_id = data.draw(st.sampled_from(sorted(self.source)))
        v = self.source[doc_id]
        if how == "grow":
            self._put(doc_id, Version(v.text + " " + make_text(k, k), v.meta_json))
        elif how == "shrink":
            self._put(doc_id, Version(" ".join(v.text.split()[:k]), v.meta_json))
        else:
            self._put(doc_id, Version(v.text, make_meta(src, k % 4, False)))

    @precondition(lambda self: self.source)
    @rule(data=st.data(), k=st.integers(1, 3))
    def delete(self, data: st.DataObject, k: int) -> None:
        for doc_id in data.draw(st.lists(st.sampled_from(sorted(self.source)), min_size=1, max_size=k, unique=True)):
            del self.source[doc_id]
        self.last_ok = False

    @precondition(lambda self: any(len(h) > 1 or i not in self.source for i, h in self.history.items()))
    @rule(data=st.data())
    def bring_back(self, data: st.DataObject) -> None:
        """An earlier version returns: a rollback, or a deleted document restored as it was last
        synced, shortened to fit in one record, or as any earlier version."""
        doc_id = data.draw(st.sampled_from(sorted(i for i, h in self.history.items()
                                                  if len(h) > 1 or i not in self.source)))
        history = self.history[doc_id] if doc_id not in self.source else self.history[doc_id][:-1]
        last = self.history[doc_id][-1]
        synced = [self.model[doc_id][0]] if doc_id in self.model else []
        short = Version(" ".join(last.text.split()[:3]), last.meta_json)
        self._put(doc_id, data.draw(st.sampled_from([*synced, short, *history])))

    @rule(on_long=st.sampled_from(["split", "split", "truncate", "error"]),
          window=st.sampled_from([None, 4, 6]), overlap=st.integers(0, 2))
    def change_settings(self, on_long: str, window: int | None, overlap: int) -> None:
        self.settings = Settings(on_long, window, overlap)
        self.last_ok = False

    # --------------------------------------------------------------------------- syncing
    def run_sync(self, docs: list[Document], *, mirror: bool, scope: dict[str, Any] | None,
                 batch_size: int) -> SyncReport:
        s = self.settings
        return sync_corpus(self.col, docs, mirror=mirror, scope=scope, batch_size=batch_size,
                           on_long=s.on_long, window=s.window, overlap=s.overlap)

    SYNC_ARGS: ClassVar[dict[str, Any]] = {
        "mirror": st.booleans(), "scoped": st.booleans(), "batch_size": st.sampled_from([1, 2, 3, 64]),
        "order": st.randoms(use_true_random=False),
        # The n-th write of the run, or the n-th delete (mirror passes, stale chunks); small n
        # more often, since a sync that changed little writes little.
        "crash": st.none() | st.tuples(st.integers(1, 3) | st.integers(1, 12), st.sampled_from(["before", "after"]),
                                       st.sampled_from([WRITES, ("delete_ids",)])),
        # Records the database refuses during this sync, one by one or as a whole request.
        "refuse": st.none() | st.tuples(
            st.sets(st.sampled_from([*IDS, *(f"{i}#{k}" for i in IDS[:3] for k in range(4))]), min_size=1, max_size=3),
            st.sampled_from(["record", "batch"])),
    }

    @rule(**SYNC_ARGS)
    def sync(self, mirror: bool, scoped: bool, batch_size: int, order: random.Random,
             crash: tuple[int, str, tuple[str, ...]] | None, refuse: tuple[set[str], str] | None) -> None:
        self._sync(mirror, scoped, batch_size, order, crash, refuse)

    @rule(**SYNC_ARGS)
    def sync_again(self, mirror: bool, scoped: bool, batch_size: int, order: random.Random,
                   crash: tuple[int, str, tuple[str, ...]] | None, refuse: tuple[set[str], str] | None) -> None:
        """The same rule twice: rules are drawn uniformly, so syncs are a fifth of the steps."""
        self._sync(mirror, scoped, batch_size, order, crash, refuse)

    @precondition(lambda self: any(i in self.source for i in self.model))
    @rule(data=st.data(), scoped=st.booleans(), batch_size=st.sampled_from([1, 3, 64]),
          order=st.randoms(use_true_random=False), crash=SYNC_ARGS["crash"], refuse=SYNC_ARGS["refuse"])
    def remove_and_mirror(self, data: st.DataObject, scoped: bool, batch_size: int, order: random.Random,
                          crash: tuple[int, str, tuple[str, ...]] | None, refuse: tuple[set[str], str] | None) -> None:
        """The corpus shrinks and a mirror sync follows (the path where chunks are deleted
        before their #0 and a crash in between must leave nothing unaccounted for)."""
        synced = sorted(i for i in self.source if i in self.model)
        for doc_id in data.draw(st.lists(st.sampled_from(synced), min_size=1, max_size=2, unique=True)):
            del self.source[doc_id]
        self._sync(True, scoped, batch_size, order, crash, refuse)

    def _sync(self, mirror: bool, scoped: bool, batch_size: int, order: random.Random,
              crash: tuple[int, str, tuple[str, ...]] | None, refuse: tuple[set[str], str] | None) -> None:
        """Sync the source; with ``crash`` the n-th write or delete of the connector raises, with
        ``refuse`` the database refuses those records (and deletes naming them) in this run."""
        if crash is not None:
            self.store.crash_on_write(*crash)
        self.store.refused, self.store.refuse_mode = refuse if refuse is not None else (set(), "record")
        docs = [Document(i, v.text, v.metadata) for i, v in self.source.items()]
        order.shuffle(docs)
        scope = {"src": "a"} if scoped else None
        try:
            report = self.run_sync(docs, mirror=mirror, scope=scope, batch_size=batch_size)
        except Crash:
            self.seen["syncs crashed"] += 1
            if mirror and any(i not in self.source for i in self.model):
                self.seen["syncs crashed with documents to mirror away"] += 1
            self.store.disarm()
            self.store.refused = set()
            self.dirty |= set(self.source)
            if mirror:
                self.dirty |= {i for i in self.model if self._in_scope(i, scope)}
            self.last_ok = False
            return
        self.store.disarm()
        was_dirty = set(self.dirty)
        self._account(report, mirror=mirror, scope=scope)
        self.store.refused = set()
        seen = self.seen
        seen["syncs ok" if report.ok else "syncs with failures"] += 1
        seen["dirty documents resolved by a later run"] += len(was_dirty - self.dirty)
        seen["documents split"] += report.split
        seen["records deleted by mirror"] += report.deleted
        seen["stale records deleted"] += report.stale_deleted
        for reason, n in report.update_reasons.items():
            seen[f"updated because {reason}"] += n
        self.check_store()

    @precondition(lambda self: self.last_ok)
    @rule()
    def resync_is_a_no_op(self) -> None:
        self.seen["no-op re-syncs"] += 1
        docs = [Document(i, v.text, v.metadata) for i, v in sorted(self.source.items())]
        report = self.run_sync(docs, mirror=False, scope=None, batch_size=3)
        assert report.ok and report.embedded == 0 and report.written == 0, report
        assert report.unchanged == len(docs) and report.stale_deleted == 0, report

    def _in_scope(self, doc_id: str, scope: dict[str, Any] | None) -> bool:
        return scope is None or self.model[doc_id][0].metadata.get("src") == scope["src"]

    def _account(self, report: SyncReport, *, mirror: bool, scope: dict[str, Any] | None) -> None:
        """Update the model from what the run says it did; check that failures have a cause."""
        failed = {owner(f.id): f.reason for f in report.failed}
        refusing = bool(self.store.refused)
        for doc_id, reason in failed.items():
            too_long = "over the model's limit" in reason
            assert too_long or refusing, f"{doc_id!r} failed with nothing injected: {reason}"
        if not refusing and all("over the model's limit" in r for r in failed.values()):
            assert report.aborted is None
        for doc_id, v in self.source.items():
            reason = failed.get(doc_id)
            if reason is None:
                assert expected_records(doc_id, v, self.settings, self.emb) is not None
                self.model[doc_id] = (v, self.settings)
                self.dirty.discard(doc_id)
            elif "over the model's limit" not in reason:
                self.dirty.add(doc_id)  # refused mid-write: anything partial
            # else: refused before anything was written; the stored version is untouched
        unseen = [i for i in self.model if i not in self.source]
        if mirror and report.ok and self.source:  # an empty source never wipes a collection
            for doc_id in unseen:
                if self._in_scope(doc_id, scope):
                    del self.model[doc_id]
            if scope is None:  # every record of an unseen document is gone, dirty or not
                self.dirty &= set(self.source)
        elif mirror and report.mirror_note and "deleting stopped" in report.mirror_note:
            self.dirty |= {i for i in unseen if self._in_scope(i, scope)}
        self.last_ok = report.ok and not failed

    # -------------------------------------------------------------------------- checking
    def clean_snapshot(self, doc_id: str, v: Version, s: Settings) -> Snapshot:
        key = (doc_id, v, s)
        if key not in self.oracle:
            col = MemoryStore().collection("oracle", embedder=HashEmbedder(dim=8, max_length=MAX_LENGTH))
            rep = sync_corpus(col, [Document(doc_id, v.text, v.metadata)], on_long=s.on_long,
                              window=s.window, overlap=s.overlap)
            assert rep.ok, rep
            self.oracle[key] = {r.id: (r.text, dict(r.metadata), r.content_hash) for p in col.scroll(100) for r in p}
        return self.oracle[key]

    def stored(self) -> dict[str, Any]:
        col = Collection(self.store.inner, self.col.spec, None)
        return {r.id: r for page in col.scroll(50, with_vectors=True) for r in page}

    def check_store(self) -> None:
        self.seen["store checks"] += 1
        held = self.stored()
        accounted: set[str] = set()
        for doc_id, (v, s) in self.model.items():
            if doc_id in self.dirty:
                continue
            want = expected_records(doc_id, v, s, self.emb)
            assert want is not None
            clean = self.clean_snapshot(doc_id, v, s)
            assert set(clean) == set(want), (clean, want)  # the model and sync agree on shapes
            for rid, (text, meta) in want.items():
                assert rid in held, f"{rid!r} of {doc_id!r} is missing; store has {sorted(held)}"
                rec = held[rid]
                assert rec.text == text, (rid, rec.text, text)
                assert dict(rec.metadata) == meta, (rid, rec.metadata, meta)
                assert rec.content_hash == clean[rid][2], (rid, rec.content_hash, clean[rid][2])
                vec = self.emb.embed_documents([text])[0]
                assert np.allclose(np.asarray(rec.vector, dtype=np.float32), vec, atol=1e-5), rid
            accounted |= set(want)
        for rid, rec in held.items():
            if rid in accounted:
                continue
            parent = rec.metadata.get("parent_id")
            mine = owner(rid)
            assert mine in self.dirty or (isinstance(parent, str) and parent in self.dirty), (
                f"{rid!r} belongs to no document (model {sorted(self.model)}, dirty {sorted(self.dirty)})")


class RayPathMachine(SyncMachine):
    """The same machine, syncing through ``sync_dataset``'s per-batch path without Ray: each
    batch goes through ``sync_rows`` (what a worker actor runs) and the ``Driver`` merges the
    batch reports, finds duplicates, mirrors and stores the fingerprint, as on a cluster."""

    def run_sync(self, docs: list[Document], *, mirror: bool, scope: dict[str, Any] | None,
                 batch_size: int) -> SyncReport:
        from bge_vdb.distributed import Driver, EmbedderSpec, _WorkerConfig, sync_rows
        from bge_vdb.types import fingerprint_digest

        s = self.settings
        cfg = _WorkerConfig("memory://", {}, self.name, EmbedderSpec(lambda: self.emb), s.on_long, s.window,
                            s.overlap, False, "rows", "id", "text", "metadata")
        report = SyncReport()
        stored_fp = self.col.fingerprint
        same = bool(stored_fp) and fingerprint_digest(stored_fp) == fingerprint_digest(self.emb.fingerprint)
        driver = Driver(self.col, self.emb, report, on_long=s.on_long, window=s.window, overlap=s.overlap,
                        dry_run=False)
        try:
            rows = [{"id": d.id, "text": d.text, "metadata": dict(d.metadata)} for d in docs]
            for start in range(0, len(rows), batch_size):
                driver.add_result(sync_rows(self.col, self.emb, rows[start : start + batch_size], cfg))
            driver.finish(mirror=mirror, scope=scope, same_model=same)
        finally:
            driver.close()
        return report
