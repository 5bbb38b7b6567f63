"""The streaming readers: JSONL, CSV, Parquet, a directory, and the SOURCE chooser."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import ConfigError, FailedRecord
from bge_vdb.readers import (
    count_source,
    open_source,
    read_csv,
    read_directory,
    read_jsonl,
    read_parquet,
    wiki100_path,
)
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document
from tests.support.fake_embedder import HashEmbedder


def test_jsonl_fields_metadata_and_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join([
        json.dumps({"id": "a", "text": "alpha", "metadata": {"lang": "en"}}),
        json.dumps({"id": 7, "text": "seven", "lang": "fr", "year": 2020}),
        "{not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"text": "no id"}),
    ]) + "\n", encoding="utf-8")
    items = list(read_jsonl(p))
    assert items[0] == Document("a", "alpha", {"lang": "en"})
    assert items[1] == Document("7", "seven", {"lang": "fr", "year": 2020})  # int id -> str
    assert isinstance(items[2], FailedRecord) and items[2].id == f"{p} line 3" and "not valid JSON" in items[2].reason
    assert isinstance(items[3], FailedRecord) and "expected a JSON object" in items[3].reason
    assert isinstance(items[4], FailedRecord) and "no usable 'id'" in items[4].reason
    assert len(items) == 5 and count_source(p) == 5

    custom = tmp_path / "c.jsonl"
    custom.write_text(json.dumps({"key": "k", "body": "b", "extra": 1}) + "\n")
    assert list(read_jsonl(custom, id_field="key", text_field="body")) == [Document("k", "b", {"extra": 1})]


def test_csv_columns_become_metadata(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text('id,text,lang\na,"hello, world",en\nb,"multi\nline",fr\nc,x,y,EXTRA\n', encoding="utf-8")
    items = list(read_csv(p))
    assert items[0] == Document("a", "hello, world", {"lang": "en"})
    assert items[1] == Document("b", "multi\nline", {"lang": "fr"})
    assert isinstance(items[2], FailedRecord) and "more cells than header" in items[2].reason
    with pytest.raises(ConfigError, match="no column"):
        list(read_csv(p, text_field="body"))


def test_parquet_streams_in_row_batches(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    table = pa.table({"id": [f"r{i}" for i in range(2500)], "text": [f"row {i}" for i in range(2500)],
                      "n": list(range(2500))})
    pq.write_table(table, p, row_group_size=1000)
    items = list(read_parquet(p, batch_rows=300))
    assert len(items) == 2500 and items[1234] == Document("r1234", "row 1234", {"n": 1234})
    assert count_source(p) == 2500


def test_directory_ids_are_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("top", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# nested", encoding="utf-8")
    (tmp_path / "skip.json").write_text("{}")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    items = list(read_directory(tmp_path))
    ok = [i for i in items if isinstance(i, Document)]
    assert [d.id for d in ok] == ["a.txt", "sub/b.md"]
    assert ok[1].metadata == {"path": "sub/b.md", "title": "b"}
    bad = [i for i in items if isinstance(i, FailedRecord)]
    assert [b.id for b in bad] == ["bad.txt"] and "cannot be read as utf-8" in bad[0].reason
    assert count_source(tmp_path) == 3


def test_open_source_picks_the_reader_and_wiki100(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a file"):
        open_source(tmp_path / "missing.jsonl")
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(ConfigError, match="unknown source type"):
        open_source(tmp_path / "x.xml")
    wiki = list(open_source("wiki100"))
    assert len(wiki) == count_source("wiki100") == len(list(wiki100_path().glob("*.txt")))
    assert any(d.id == "Moon.txt" for d in wiki)


def test_reader_errors_flow_into_the_sync_report(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "a", "text": "alpha"}\n{oops\n{"id": "b", "text": ""}\n', encoding="utf-8")
    col = MemoryStore().collection("c", embedder=HashEmbedder(dim=8))
    rep = sync_corpus(col, read_jsonl(p))
    assert rep.added == 1 and rep.documents == 3
    assert sorted(f.id for f in rep.failed) == [f"{p} line 2", "b"]
