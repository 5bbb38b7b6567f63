"""Every ordered pair of connectors: copy, check each record exactly, verify, then resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bge_vdb.migrate import migrate
from bge_vdb.types import Distance, Record, fingerprint_digest
from tests.support.stores import STORE_FACTORIES

from .conftest import DIM, SRC_EMBEDDER, fill_source

STORES = ["memory", "qdrant-local", "milvus-lite", "weaviate-fake", "pinecone-fake", "pgvector"]
# Qdrant re-normalizes cosine vectors on write (float32 x/|x|), moving values by up to an ulp:
# vectors landing there are compared within 1e-7; everywhere else they must be bit for bit.
RENORMALIZING = {"qdrant-local"}
PAIRS = [(a, b) for a in STORES for b in STORES if a != b]


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_migrate_pair(src_kind: str, dst_kind: str, tmp_path: Path, records: list[Record]) -> None:
    for kind in (src_kind, dst_kind):
        if kind not in STORE_FACTORIES:
            pytest.skip(f"the {kind} store factory is not registered yet")
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    with STORE_FACTORIES[src_kind](tmp_path / "src") as src_store, \
            STORE_FACTORIES[dst_kind](tmp_path / "dst") as dst_store:
        src = fill_source(src_store, "migsrc", records)
        # Snapshot first: Qdrant local's search re-normalizes its stored vectors in place, so
        # the source's bits may move by an ulp once verification has queried it.
        want = {r.id: r for r in src.fetch([r.id for r in records], with_vectors=True)}
        report = migrate(src, (dst_store, "migdst"), batch_size=25)

        assert report.failed == []
        assert (report.read, report.written, report.skipped) == (60, 60, 0)
        v = report.verification
        assert v is not None
        assert v.ok, v.differences
        assert (v.source_count, v.destination_count, v.vectors_checked) == (60, 60, 60)
        assert v.queries == 20 and v.queries_agreeing == 20 and v.topk_overlap == 1.0

        spec = dst_store.describe_collection("migdst")
        assert spec is not None and spec.dim == DIM and spec.distance == Distance.COSINE
        assert fingerprint_digest(spec.fingerprint) == fingerprint_digest(SRC_EMBEDDER.fingerprint)

        dst = dst_store.collection("migdst", embedder=SRC_EMBEDDER, create=False)
        got = dst.fetch(list(want), with_vectors=True)
        assert [r.id for r in got] == list(want)
        atol = 1e-7 if dst_kind in RENORMALIZING else 0.0
        for r in got:
            w = want[r.id]
            diff = np.abs(np.asarray(r.vector, dtype=np.float32) - np.asarray(w.vector, dtype=np.float32))
            assert float(diff.max()) <= atol, (r.id, float(diff.max()))
            assert r.text == w.text
            assert dict(r.metadata) == dict(w.metadata)  # nested values and Chinese text intact
            assert r.content_hash == w.content_hash

        # Run again: the destination is the checkpoint, nothing is rewritten.
        again = migrate(src, dst, batch_size=25)
        assert (again.read, again.written, again.skipped) == (60, 0, 60)
        assert again.ok
        assert dst.count() == 60
