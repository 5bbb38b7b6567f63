"""sync_dataset on a local Ray instance into Milvus Lite served on a loopback port (a store that
takes writers from several processes), checked against sync_corpus on the same input."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_vdb.distributed import read_source, sync_dataset, sync_source
from bge_vdb.errors import ConfigError
from bge_vdb.readers import _row_to_doc, read_parquet
from bge_vdb.store import Collection
from bge_vdb.sync import SyncReport, sync_corpus
from tests.distributed.conftest import EMB_OPTIONS
from tests.distributed.faults import DieOnceEmbedder

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "river", "city", "book", "water",
         "fire", "night", "day"]
COUNTS = ("added", "updated", "unchanged", "deleted", "truncated", "embedded", "documents", "written",
          "tokens", "split")


def corpus(n: int, version: int = 0) -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        length = 80 if i % 97 == 0 else 3 + i % 17  # every 97th is over the 64-token limit
        text = " ".join(WORDS[(i * 7 + j * (version + 1)) % len(WORDS)] for j in range(length))
        docs.append({"id": f"doc-{i}", "text": text, "metadata": {"n": i % 5, "src": "ab"[i % 2]}})
    return docs


def stored(col: Collection) -> dict[str, tuple[str | None, dict[str, Any], np.ndarray]]:
    out = {}
    for page in col.scroll(1000, with_vectors=True):
        for r in page:
            assert r.id not in out, f"{r.id} stored twice"
            out[r.id] = (r.text, dict(r.metadata), np.asarray(r.vector))
    return out


def assert_same_store(got: Collection, want: Collection) -> None:
    a, b = stored(got), stored(want)
    assert sorted(a) == sorted(b)
    for key, (text, meta, vec) in b.items():
        assert a[key][0] == text and a[key][1] == meta
        np.testing.assert_allclose(a[key][2], vec, atol=1e-4, err_msg=key)


def assert_same_counts(got: SyncReport, want: SyncReport) -> None:
    assert {k: getattr(got, k) for k in COUNTS} == {k: getattr(want, k) for k in COUNTS}
    assert sorted(f.id for f in got.failed) == sorted(f.id for f in want.failed)


def run_ray(ray_local: Any, docs: list[dict[str, Any]], url: str, name: str, model: Any, **kw: Any) -> SyncReport:
    ds = ray_local.data.from_items(docs, override_num_blocks=8)
    return sync_dataset(ds, store_url=url, collection=name, model=model, embedder_options=EMB_OPTIONS,
                        num_workers=2, batch_size=100, **kw)


def test_same_result_as_sync_corpus_then_mirror(ray_local: Any, milvus_url: str, tiny_model: Path,
                                                open_col: Any) -> None:
    docs = corpus(1500)
    docs[10]["text"] = ""  # a per-record failure, the same in both
    ref = open_col("dist_ref")
    want = sync_corpus(ref, docs, batch_size=100)
    got = run_ray(ray_local, docs, milvus_url, "dist_ray", str(tiny_model))
    assert want.added == 1499 and want.truncated == 16 and [f.id for f in want.failed] == ["doc-10"]
    assert_same_counts(got, want)
    ray_col = open_col("dist_ray")
    assert_same_store(ray_col, ref)
    assert ray_col.fingerprint is not None  # stored by the driver after a clean run

    # Mirror: 100 documents gone, 40 changed, the empty one fixed. Deleted once, on the driver.
    docs2 = corpus(1400)
    docs2[:40] = corpus(40, version=1)
    plan = run_ray(ray_local, docs2, milvus_url, "dist_ray", str(tiny_model), mirror=True, dry_run=True)
    assert plan.dry_run and (plan.deleted, plan.updated, plan.added, plan.written) == (100, 39, 1, 0)
    assert_same_store(ray_col, ref)  # a dry run changes nothing
    want2 = sync_corpus(ref, docs2, batch_size=100, mirror=True)
    got2 = run_ray(ray_local, docs2, milvus_url, "dist_ray", str(tiny_model), mirror=True)
    assert (want2.deleted, want2.updated, want2.added, want2.embedded) == (100, 40 - 1, 1, 40)
    assert_same_counts(got2, want2)
    assert_same_store(ray_col, ref)


def test_jsonl_source_bad_lines_and_mirror_deletes_nothing(ray_local: Any, milvus_url: str, tiny_model: Path,
                                                          open_col: Any, tmp_path: Path) -> None:
    col = open_col("dist_jsonl")
    sync_corpus(col, corpus(300), batch_size=100)
    lines = [json.dumps(d) for d in corpus(200)]
    lines[5] = json.dumps({"id": "doc-5", "text": 123})  # not a string
    lines[50:50] = ["", "{not json"]
    lines.append(json.dumps({"id": "doc-7", "text": "a second doc-7", "metadata": {}}))
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep = sync_source(src, store_url=milvus_url, collection="dist_jsonl", model=str(tiny_model),
                      embedder_options=EMB_OPTIONS, mirror=True, batch_size=100)
    assert rep.documents == 202  # the blank line is skipped, as read_jsonl does
    reasons = {f.id: f.reason for f in rep.failed}
    assert len(reasons) == 3, reasons
    assert "text must be a string" in reasons.pop("doc-5")
    assert "duplicate id" in reasons.pop("doc-7")
    (where, reason), = reasons.items()
    assert str(src) in where and "not valid JSON" in reason
    assert rep.deleted == 0 and rep.mirror_note is not None and "nothing deleted" in rep.mirror_note
    assert col.count() == 300


def test_parquet_rows_are_the_documents_read_parquet_reads(ray_local: Any, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": i, "text": f"text {i}", "lang": "en"} for i in range(30)]), path)
    dataset, row_format = read_source(path)
    assert row_format == "rows"
    rows = sorted(dataset.take_all(), key=lambda r: r["id"])
    got = [_row_to_doc(r, "row", "id", "text", "metadata") for r in rows]
    assert got == list(read_parquet(path))
    csv = tmp_path / "docs.csv"
    csv.write_text("id,text\n1,a\n")
    with pytest.raises(ConfigError, match=r"\.jsonl.*\.parquet.*has \.csv"):
        read_source(csv)


def test_worker_killed_mid_run_then_rerun_is_exactly_once(ray_local: Any, milvus_url: str, tiny_model: Path,
                                                          open_col: Any, tmp_path: Path) -> None:
    docs = corpus(1200)
    ref = open_col("dist_kill_ref")
    # Long documents are split: the crash-safe chunk/marker write order is exercised too.
    want = sync_corpus(ref, docs, batch_size=100, on_long="split", overlap=8)
    assert want.split == 13
    marker = tmp_path / "died"
    dying = functools.partial(DieOnceEmbedder, str(tiny_model), marker=str(marker), after=3, **EMB_OPTIONS)
    first = run_ray(ray_local, docs, milvus_url, "dist_kill", dying, on_long="split", overlap=8)
    assert marker.exists(), "the fault was not injected"
    # Ray restarted the actor and retried its batch: every document is there, once.
    assert first.ok and first.documents == 1200
    assert first.added + first.unchanged == 1200
    col = open_col("dist_kill")
    assert_same_store(col, ref)
    again = run_ray(ray_local, docs, milvus_url, "dist_kill", str(tiny_model), on_long="split", overlap=8)
    assert (again.embedded, again.written, again.unchanged, again.added) == (0, 0, 1200, 0)
    assert_same_store(col, ref)
