"""Readers name the line (from 1) and the field of every bad row, and check what they can before
the first document is read (issue 14, item 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bge_vdb.errors import ConfigError, FailedRecord
from bge_vdb.readers import open_source, read_csv, read_parquet
from bge_vdb.types import Document


def failures(items: list[Document | FailedRecord]) -> list[str]:
    return [i.reason for i in items if isinstance(i, FailedRecord)]


def test_jsonl_missing_text_field_names_the_field_the_flag_and_the_line(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "ok"}) + "\n\n"
                   + json.dumps({"id": "b", "body": "text under another name"}) + "\n", encoding="utf-8")
    items = list(open_source(src))
    assert items[0] == Document("a", "ok", {})
    (reason,) = failures(items)
    assert f"{src} line 3" in reason and "no 'text' field" in reason and "--text-field" in reason
    assert items[1].id == "b"  # the record is named by its id when it has one
    ok = list(open_source(src, text_field="body"))
    assert ok[1] == Document("b", "text under another name", {})


def test_jsonl_non_utf8_line_fails_alone(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_bytes(b'{"id": "a", "text": "one"}\n{"id": "b", "text": "caf\xe9"}\n{"id": "c", "text": "three"}\n')
    items = list(open_source(src))
    assert [i.id for i in items if isinstance(i, Document)] == ["a", "c"]
    (reason,) = failures(items)
    assert f"{src} line 2" in reason and "not UTF-8" in reason and "0xe9" in reason


@pytest.mark.parametrize(("bad", "named"), [("body", "--text-field"), ("key", "--id-field")])
def test_csv_missing_column_is_refused_before_reading(tmp_path: Path, bad: str, named: str) -> None:
    src = tmp_path / "d.csv"
    src.write_text("id,text\na,alpha\n", encoding="utf-8")
    kwargs = {"text_field": bad} if named == "--text-field" else {"id_field": bad}
    with pytest.raises(ConfigError, match=rf"no column '{bad}' \(choose it with {named}\)"):
        read_csv(src, **kwargs)  # no iteration: the header is read at once


def test_csv_rows_name_their_lines(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_bytes(b'id,text\na,"two\nlines"\nb,\n\nc,caf\xe9\nd,fine\n')
    items = list(read_csv(src))
    assert [i.id for i in items if isinstance(i, Document)] == ["a", "d"]
    empty, not_utf8 = failures(items)
    assert f"{src} line 4 (id 'b')" in empty and "text is empty (the 'text' field)" in empty and "--text-field" in empty
    assert f"{src} line 6" in not_utf8 and "not UTF-8" in not_utf8


def test_parquet_schema_is_checked_up_front(tmp_path: Path) -> None:
    src = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), src)
    with pytest.raises(ConfigError, match=r"no column 'text' \(choose it with --text-field\)"):
        read_parquet(src)
    pq.write_table(pa.table({"id": ["a"], "text": [7]}), src)
    with pytest.raises(ConfigError, match=r"column 'text' holds int64, not strings"):
        read_parquet(src)
    src.write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        read_parquet(src)


def test_parquet_null_text_names_the_row(tmp_path: Path) -> None:
    src = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", None]}), src)
    items = list(read_parquet(src))
    (reason,) = failures(items)
    assert f"{src} row 2 (id 'b')" in reason and "text must be a string" in reason


def test_empty_text_file_in_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha", encoding="utf-8")
    (tmp_path / "b.txt").write_text("  \n", encoding="utf-8")
    items = list(open_source(tmp_path))
    assert failures(items) == ["b.txt: the file is empty"]
