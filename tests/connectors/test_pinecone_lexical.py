"""Pinecone's term statistics (bge_vdb.connectors.pinecone_lexical) stay exact through writes that
crash at any step, against the wire-level fake.

A model-based test: random upserts (overwrites, records without terms) and deletes (of present
and absent ids), each maybe crashing after its journal is written (the data write never
happens), after the data write (the statistics are not updated) or after the statistics update
(the journal is left behind). The model is what the data holds; after the next write, which
finishes any journal left behind, N and every document frequency must equal a recount of the
model, and a lexical search must rank exactly as the memory store's over the same records.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_vdb import lexical
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.connectors.pinecone_lexical import MAX_SPARSE_VALUES, TermStatistics
from bge_vdb.store import VectorStore
from bge_vdb.types import Record
from tests.support.stores import pinecone_fake_store

DIM = 4
SPEC = lexical.LexicalSpec(avg_len=5.0)
IDS = [f"r{i}" for i in range(6)]
TEXTS = st.one_of(st.none(), st.just("the of"),
                  st.lists(st.sampled_from(["apple", "pie", "向量", "数据库", "river", "Apple"]),
                           min_size=1, max_size=5).map(" ".join))
CRASHES = st.sampled_from([None, None, "after_journal", "after_data", "after_stats"])
OPS = st.lists(st.one_of(
    st.tuples(st.just("upsert"), st.lists(st.tuples(st.sampled_from(IDS), TEXTS), min_size=1, max_size=3,
                                          unique_by=lambda t: t[0]), CRASHES),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(IDS), min_size=1, max_size=3, unique=True), CRASHES),
), min_size=1, max_size=8)
_names = itertools.count()


class Crash(Exception):
    """The injected failure (a killed process, as far as the statistics can tell)."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorStore]:
    with pinecone_fake_store(tmp_path_factory.mktemp("pinecone")) as s:
        yield s


def _crashing(point: str | None) -> Any:
    """Patches that crash this write's own step (not the recovery of an earlier journal, which
    runs first and must complete)."""
    mine: dict[str, Any] = {}
    write_journal, apply, finish = TermStatistics.write_journal, TermStatistics.apply, TermStatistics.finish

    def journal(self: TermStatistics, old: Any) -> Any:
        mine["batch"], mine["ids"] = written = write_journal(self, old)
        if point == "after_journal":
            raise Crash("injected after the journal")
        return written

    def apply_or_crash(self: TermStatistics, batch: str, old: Any, new: Any) -> None:
        if point == "after_data" and batch == mine.get("batch"):
            raise Crash("injected after the data write")
        apply(self, batch, old, new)

    def finish_or_crash(self: TermStatistics, ids: Any) -> None:
        if point == "after_stats" and list(ids) == mine.get("ids"):
            raise Crash("injected after the statistics")
        finish(self, ids)

    patches = [mock.patch.object(TermStatistics, "write_journal", journal),
               mock.patch.object(TermStatistics, "apply", apply_or_crash),
               mock.patch.object(TermStatistics, "finish", finish_or_crash)]
    stack = contextlib.ExitStack()
    for p in patches:
        stack.enter_context(p)
    return stack


def _vector(rid: str) -> list[float]:
    return list(np.random.default_rng(int(rid[1:])).normal(size=DIM))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_term_statistics_survive_crashes(store: VectorStore, ops: list[Any]) -> None:
    name = f"lex{next(_names)}"
    store.collection(name, dim=DIM, hybrid=SPEC)
    model: dict[str, str | None] = {}
    for kind, items, crash in ops:
        with _crashing(crash):
            try:
                if kind == "upsert":
                    store.upsert_records(name, [Record(i, _vector(i), t) for i, t in items])
                else:
                    store.delete_ids(name, items)
            except Exception as exc:  # the injected crash, whatever the connector wraps it in
                assert crash is not None and "injected" in str(exc), exc
        if crash != "after_journal":  # the data write happened
            if kind == "upsert":
                model.update(items)
            else:
                for i in items:
                    model.pop(i, None)
    # The next write finishes whatever a crash left behind.
    store.upsert_records(name, [Record("last", _vector("r9"), "apple river")])
    model["last"] = "apple river"

    terms = {i: {lexical.term_id(t) for t in lexical.analyze(text or "")} for i, text in model.items()}
    vocabulary = set().union(*terms.values())
    hybrid = store._hybrid(name)  # type: ignore[attr-defined]
    assert hybrid is not None
    n_docs, df = hybrid[1].lookup(vocabulary)
    assert n_docs == len(model)
    assert df == {t: sum(t in ts for ts in terms.values()) for t in vocabulary}

    reference = MemoryStore().collection("ref", dim=DIM, hybrid=SPEC)
    reference.upsert([Record(i, _vector(i if i != "last" else "r9"), t) for i, t in model.items()])
    col = store.collection(name, hybrid=SPEC)
    for query in ("apple", "向量 pie", "river 数据库 apple"):
        got = [(h.id, round(h.score, 4)) for h in col.search(query, k=10, mode="lexical")]
        want = [(h.id, round(h.score, 4)) for h in reference.search(query, k=10, mode="lexical")]
        assert got == want, query
    store.drop_collection(name)


def test_a_record_with_too_many_terms_is_refused_alone(store: VectorStore) -> None:
    col = store.collection("toomany", dim=DIM, hybrid=SPEC)
    many = " ".join(f"w{i}" for i in range(MAX_SPARSE_VALUES + 1))
    failed = store.upsert_records("toomany", [Record("big", _vector("r1"), many), Record("ok", _vector("r2"), "apple")])
    assert [f.id for f in failed] == ["big"] and str(MAX_SPARSE_VALUES) in failed[0].reason
    assert [h.id for h in col.search("apple", mode="lexical")] == ["ok"]
    store.drop_collection("toomany")
