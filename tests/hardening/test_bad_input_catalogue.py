"""The bad-input catalogue (issue 14): one table of careless inputs through the Python API and the
CLI. For each: the exception type (or the CLI's exit status), a message that names the offending
item, field or position, and a store that is exactly as it was (same collections, same records,
and for the CLI the same files on disk).

The API cases run against a real Qdrant local store holding a seeded 8-d collection; the CLI cases
against another one on disk, with a hash embedder standing in for models where the model is not
the point (cases about models use the real Embedder on a tiny random BERT).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bge_vdb import Document, Record, cli, connect
from bge_vdb.embedder import Embedder
from bge_vdb.errors import (
    BgeVdbError,
    ConfigError,
    DimensionMismatch,
    FilterError,
    InputError,
    ModelError,
    UnsupportedFilter,
)
from bge_vdb.sync import sync_corpus
from tests.support.fake_embedder import HashEmbedder

DIM = 8
SECRET = "sk-catalogue-secret-7d1e"


@dataclass(frozen=True)
class Case:
    """``run(env)`` does one careless thing; ``expect`` is the exception type, or the CLI's exit
    status; every string in ``names`` must appear in the message (stderr and stdout for the CLI)."""

    id: str
    run: Callable[[Any], Any]
    expect: type[BaseException] | int
    names: tuple[str, ...]


def rec(id: Any, vector: Any = None, **kw: Any) -> Record:
    return Record(id=id, vector=np.ones(DIM) if vector is None else vector, **kw)


def doc(id: Any = "n1", text: Any = "a new document", metadata: Any = None) -> Document:
    return Document(id, text, {} if metadata is None else metadata)


def upsert(*items: Any) -> Callable[[Any], Any]:
    # Good items first: nothing may be written when a later one is bad.
    return lambda env: env.col.upsert([rec("good-1"), doc("good-2", "fine text"), *items])


def search(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    return lambda env: env.col.search(*args, **kwargs)


def embedder(model: str | Callable[[Any], str], **kwargs: Any) -> Callable[[Any], Any]:
    def run(env: Any) -> Any:
        path = model(env) if callable(model) else model
        return Embedder(path, backend="torch", **kwargs).check_files()
    return run


def cli_run(*argv: str) -> Callable[[Any], Any]:
    return lambda env: env.cli(*argv)


def _src(env: Any, name: str) -> str:
    return str(env.files[name])


API: list[Case] = [
    # --- ids
    Case("id-not-a-string", upsert(rec(42)), InputError, ("item 2", "id must be a string", "int 42")),
    Case("id-empty", upsert(rec("")), InputError, ("item 2", "id is missing")),
    Case("id-too-long", upsert(rec("x" * 1025)), InputError, ("item 2", "longer than 1024 bytes")),
    Case("fetch-id-none", lambda env: env.col.fetch(["d1", None]), InputError, ("ids[1]", "NoneType")),
    Case("fetch-single-string", lambda env: env.col.fetch("d1"), InputError, ("not a single string",)),
    Case("delete-single-string", lambda env: env.col.delete("d1"), InputError, ("not a single string",)),
    Case("delete-id-number", lambda env: env.col.delete(["d1", 7]), InputError, ("ids[1]", "int 7")),
    Case("upsert-single-item", lambda env: env.col.upsert(doc()), InputError, ("not a single item",)),
    Case("upsert-not-a-record", upsert({"id": "x", "text": "t"}), InputError, ("item 2", "expected Document or Record")),
    # --- texts
    Case("text-none", upsert(doc("t1", None)), InputError, ("item 2 (id 't1')", "text must be a string")),
    Case("text-empty", upsert(doc("t1", "")), InputError, ("item 2 (id 't1')", "text is empty")),
    Case("text-whitespace", upsert(doc("t1", " \n\t ")), InputError, ("item 2 (id 't1')", "text is empty")),
    Case("text-bytes", upsert(doc("t1", b"bytes")), InputError, ("item 2 (id 't1')", "text must be a string")),
    Case("record-text-number", upsert(rec("r1", text=5)), InputError, ("item 2 (id 'r1')", "text must be a string")),
    Case("query-empty", search("   "), InputError, ("query", "text is empty")),
    # --- vectors
    Case("vector-wrong-dim", upsert(rec("v1", [1.0, 2.0, 3.0])), DimensionMismatch,
         ("item 2 (id 'v1')", "has 3 numbers, the collection needs 8")),
    Case("vector-nan", upsert(rec("v1", [math.nan] + [1.0] * 7)), InputError, ("item 2 (id 'v1')", "NaN or infinity")),
    Case("vector-inf", upsert(rec("v1", [math.inf] + [1.0] * 7)), InputError, ("item 2 (id 'v1')", "NaN or infinity")),
    Case("vector-zeros", upsert(rec("v1", [0.0] * 8)), InputError, ("item 2 (id 'v1')", "all zeros")),
    Case("vector-missing", upsert(Record("v1", None)), InputError, ("item 2 (id 'v1')", "vector is missing")),
    Case("vector-2d", upsert(rec("v1", np.ones((2, 4)))), InputError, ("item 2 (id 'v1')", "must be 1-d")),
    Case("vector-strings", upsert(rec("v1", ["a"] * 8)), InputError, ("item 2 (id 'v1')", "not a list of numbers")),
    Case("vector-overflow", upsert(rec("v1", [1e308] * 8)), InputError, ("item 2 (id 'v1')", "norm overflows")),
    Case("query-vector-wrong-dim", search([1.0, 0.0]), DimensionMismatch, ("query vector", "has 2 numbers")),
    # --- metadata
    Case("metadata-not-a-dict", upsert(doc("m1", metadata=["a"])), InputError, ("item 2 (id 'm1')", "metadata must be a dict")),
    Case("metadata-int-key", upsert(doc("m1", metadata={1: "a"})), InputError, ("item 2 (id 'm1')", "keys must be non-empty strings")),
    Case("metadata-empty-key", upsert(doc("m1", metadata={"": "a"})), InputError, ("item 2 (id 'm1')", "non-empty strings")),
    Case("metadata-nested-int-key", upsert(doc("m1", metadata={"a": {2: "b"}})), InputError,
         ("item 2 (id 'm1')", "metadata.a has a non-string key 2")),
    Case("metadata-nan", upsert(doc("m1", metadata={"score": math.nan})), InputError, ("item 2 (id 'm1')", "not JSON-serialisable")),
    Case("metadata-set", upsert(doc("m1", metadata={"tags": {"a", "b"}})), InputError, ("item 2 (id 'm1')", "not JSON-serialisable")),
    Case("metadata-huge-int", upsert(doc("m1", metadata={"big": 2**70})), InputError,
         ("item 2 (id 'm1')", "metadata.big is an integer of 71 bits")),
    Case("metadata-deep-list-key", upsert(doc("m1", metadata={"a": [{3: 1}]})), InputError,
         ("item 2 (id 'm1')", "metadata.a[0] has a non-string key 3")),
    # --- filters
    Case("filter-not-a-dict", search([1.0] * DIM, where="lang=en"), FilterError, ("a filter must be a dict", "lang=en")),
    Case("filter-unknown-op", search([1.0] * DIM, where={"lang": {"$regex": "e"}}), FilterError, ("'$regex'", "'lang'")),
    Case("filter-gt-string", search([1.0] * DIM, where={"year": {"$gt": "2020"}}), FilterError, ("$gt compares finite numbers", "filter.year")),
    Case("filter-in-empty", search([1.0] * DIM, where={"lang": {"$in": []}}), FilterError, ("$in takes a non-empty list", "filter.lang")),
    Case("filter-exists-not-bool", search([1.0] * DIM, where={"lang": {"$exists": 1}}), FilterError, ("$exists takes true or false",)),
    Case("filter-empty-segment", search([1.0] * DIM, where={"a..b": 1}), FilterError, ("'a..b'", "empty path segment")),
    Case("filter-and-not-list", search([1.0] * DIM, where={"$and": {"a": 1}}), FilterError, ("$and takes a non-empty list",)),
    Case("filter-not-list", search([1.0] * DIM, where={"$not": [{"a": 1}]}), FilterError, ("$not takes one condition dict",)),
    Case("filter-value-none", search([1.0] * DIM, where={"lang": None}), FilterError, ("filter.lang", "NoneType")),
    Case("filter-value-nan", search([1.0] * DIM, where={"score": math.nan}), FilterError, ("filter.score", "finite")),
    Case("filter-nested-no-op", search([1.0] * DIM, where={"author": {"name": "Ada"}}), FilterError, ("'author.name'",)),
    Case("filter-op-without-field", search([1.0] * DIM, where={"$eq": 1}), FilterError, ("$eq needs a field",)),
    Case("filter-big-int-qdrant", search([1.0] * DIM, where={"id": 2**53 + 1}), UnsupportedFilter, ("'id'", "2**53")),
    Case("delete-where-empty", lambda env: env.col.delete(where={}), InputError, ("would delete everything",)),
    Case("delete-nothing", lambda env: env.col.delete(), InputError, ("needs ids=... or where=...",)),
    # --- k and batch sizes
    Case("k-zero", search([1.0] * DIM, k=0), InputError, ("k must be a positive int, got 0",)),
    Case("k-bool", search([1.0] * DIM, k=True), InputError, ("k must be a positive int, got True",)),
    Case("k-string", search([1.0] * DIM, k="5"), InputError, ("k must be a positive int, got '5'",)),
    Case("scroll-batch-zero", lambda env: next(env.col.scroll(0)), InputError, ("batch_size must be a positive int, got 0",)),
    Case("sync-batch-zero", lambda env: sync_corpus(env.col, [doc()], batch_size=0), ConfigError, ("batch_size", "got 0")),
    Case("sync-on-long", lambda env: sync_corpus(env.col, [doc()], on_long="cut"), ConfigError, ("on_long", "'cut'")),
    Case("sync-bad-scope", lambda env: sync_corpus(env.col, [doc()], scope={"$nope": 1}), FilterError, ("'$nope'",)),
    Case("sync-single-doc", lambda env: sync_corpus(env.col, doc()), InputError, ("not a single one",)),
    Case("upsert-on-invalid", lambda env: env.col.upsert([doc()], on_invalid="ignore"), ConfigError, ("on_invalid",)),
    # --- collections, URLs and options
    Case("collection-name-empty", lambda env: env.store.collection("", dim=DIM), InputError, ("collection name", "''")),
    Case("collection-dim-zero", lambda env: env.store.collection("new", dim=0), InputError, ("dim must be a positive int, got 0",)),
    Case("collection-dim-mismatch", lambda env: env.store.collection("docs", dim=4), DimensionMismatch,
         ("'docs'", "holds 8-d vectors but 4-d")),
    Case("collection-missing", lambda env: env.store.collection("nope", create=False), BgeVdbError, ("'nope'", "does not exist")),
    Case("url-no-scheme", lambda env: connect("qdrant-data"), ConfigError, ("'qdrant-data'",)),
    Case("url-unknown-scheme", lambda env: connect("qdrnt:///tmp/x"), ConfigError, ("'qdrnt'", "known schemes")),
    Case("url-qdrant-option", lambda env: connect(f"qdrant+http://127.0.0.1:9?db_nme={SECRET}"), ConfigError, ("'db_nme'",)),
    Case("url-weaviate-option", lambda env: connect("weaviate+http://127.0.0.1:9?grpc_prot=1"), ConfigError, ("'grpc_prot'",)),
    Case("url-pinecone-key", lambda env: connect(f"pinecone://?api_key={SECRET}"), ConfigError, ("API key in a URL",)),
    Case("url-qdrant-timeout", lambda env: connect("qdrant+http://127.0.0.1:9?timeout=-1"), ConfigError, ("timeout", "'-1'")),
    Case("url-qdrant-no-dir", lambda env: connect("qdrant://"), ConfigError, ("no directory",)),
    Case("url-milvus-not-db", lambda env: connect("milvus://./data.txt"), ConfigError, ("ending in .db", "data.txt")),
    Case("option-unknown", lambda env: connect("memory://", dim=DIM), ConfigError, ("'dim'",)),
    Case("option-qdrant-unknown", lambda env: connect("qdrant://:memory:", prefer_grcp=True), ConfigError, ("'prefer_grcp'",)),
    # --- models and model directories
    Case("model-dir-missing", embedder("./no-such-model-dir"), ModelError, ("no-such-model-dir", "does not exist")),
    Case("model-is-a-file", embedder(lambda env: _src(env, "jsonl_ok")), ModelError, ("is a file",)),
    Case("model-no-config", embedder(lambda env: str(env.files["empty_dir"])), ModelError, ("has no config.json",)),
    Case("model-bin-weights", embedder(lambda env: str(env.files["bin_model"])), ModelError, ("model.safetensors", "pytorch_model.bin")),
    Case("model-pooling", embedder(lambda env: str(env.files["max_pool_model"])), ModelError, ("1_Pooling/config.json", "pooling_mode_max_tokens")),
    Case("model-preset-unknown", embedder(lambda env: str(env.tiny), preset="bge-small"), ConfigError, ("unknown preset 'bge-small'",)),
    Case("model-preset-dim", lambda env: Embedder(str(env.tiny), preset="BAAI/bge-base-en-v1.5").layout, ModelError,
         ("dimension 768", "says 384")),
    Case("embedder-batch-zero", embedder("BAAI/bge-small-en-v1.5", batch_size=0), ConfigError, ("batch_size", "0")),
    Case("embedder-max-length", embedder("BAAI/bge-small-en-v1.5", max_length=2), ConfigError, ("max_length", "2")),
    Case("embedder-precision", embedder("BAAI/bge-small-en-v1.5", precision="fp8"), ConfigError, ("precision", "'fp8'")),
    Case("embedder-pooling-arg", embedder("BAAI/bge-small-en-v1.5", pooling="max"), ConfigError, ("pooling", "'max'")),
    Case("embed-single-string", lambda env: env.tiny_embedder.embed_documents("one text"), TypeError, ("single string",)),
    Case("embed-empty-text", lambda env: env.tiny_embedder.embed_documents(["ok", " "]), InputError, ("position 1", "empty")),
    Case("embed-non-string", lambda env: env.tiny_embedder.embed_queries(["ok", 3]), TypeError, ("position 1", "int")),
]

CLI: list[Case] = [
    # --- readers' files (the store holds nothing new: every row is bad)
    Case("cli-jsonl-malformed", lambda env: env.sync(_src(env, "jsonl_malformed")), 1, ("line 2", "not valid JSON")),
    Case("cli-jsonl-no-text", lambda env: env.sync(_src(env, "jsonl_no_text")), 1, ("line 1", "no 'text' field", "--text-field")),
    Case("cli-jsonl-text-number", lambda env: env.sync(_src(env, "jsonl_text_number")), 1, ("line 1", "holds int", "--text-field")),
    Case("cli-jsonl-no-id", lambda env: env.sync(_src(env, "jsonl_no_id")), 1, ("line 1", "no usable 'id'", "--id-field")),
    Case("cli-jsonl-not-object", lambda env: env.sync(_src(env, "jsonl_list")), 1, ("line 1", "expected a JSON object")),
    Case("cli-jsonl-not-utf8", lambda env: env.sync(_src(env, "jsonl_latin1")), 1, ("line 1", "not UTF-8", "0xe9")),
    Case("cli-jsonl-bad-metadata", lambda env: env.sync(_src(env, "jsonl_bad_meta")), 1, ("line 1", "metadata must be a dict")),
    Case("cli-csv-empty-cell", lambda env: env.sync(_src(env, "csv_empty_cell")), 1, ("line 2", "text is empty")),
    Case("cli-csv-extra-cells", lambda env: env.sync(_src(env, "csv_extra")), 1, ("line 2", "more cells than header")),
    Case("cli-csv-no-text-column", lambda env: env.sync(_src(env, "csv_no_text")), 2, ("no column 'text'", "--text-field")),
    Case("cli-csv-not-utf8-header", lambda env: env.sync(_src(env, "csv_latin1_header")), 2, ("line 1 (the header)", "not UTF-8")),
    Case("cli-parquet-no-column", lambda env: env.sync(_src(env, "parquet_no_text")), 2, ("no column 'text'", "--text-field")),
    Case("cli-parquet-int-text", lambda env: env.sync(_src(env, "parquet_int_text")), 2, ("column 'text' holds int64",)),
    Case("cli-parquet-null-text", lambda env: env.sync(_src(env, "parquet_null_text")), 1, ("row 1", "text must be a string")),
    Case("cli-parquet-garbage", lambda env: env.sync(_src(env, "parquet_garbage")), 2, ("not a readable Parquet file",)),
    Case("cli-dir-empty-file", lambda env: env.sync(_src(env, "dir_empty_file")), 1, ("empty.txt", "the file is empty")),
    Case("cli-source-missing", lambda env: env.sync(_src(env, "missing")), 2, ("neither a file",)),
    Case("cli-source-suffix", lambda env: env.sync(_src(env, "xml")), 2, ("unknown source type '.xml'",)),
    Case("cli-source-one-txt", lambda env: env.sync(_src(env, "one_txt")), 2, ("pass the directory",)),
    # --- arguments
    Case("cli-k-zero", lambda env: env.cli("search", env.url, "docs", "q", "-k", "0"), 2, ("-k", "got '0'")),
    Case("cli-batch-size", lambda env: env.sync(_src(env, "jsonl_ok"), "--batch-size", "0"), 2, ("--batch-size", "got '0'")),
    Case("cli-on-long", lambda env: env.sync(_src(env, "jsonl_ok"), "--on-long", "cut"), 2, ("--on-long", "'cut'")),
    Case("cli-where-json", lambda env: env.cli("search", env.url, "docs", "q", "--where", "{lang: en}"), 2, ("--where", "not valid JSON")),
    Case("cli-where-op", lambda env: env.cli("search", env.url, "docs", "q", "--where", '{"a": {"$like": 1}}'), 2, ("--where", "'$like'")),
    Case("cli-scope", lambda env: env.sync(_src(env, "jsonl_ok"), "--scope", '{"$or": {}}'), 2, ("--scope", "$or")),
    Case("cli-query-empty", lambda env: env.cli("search", env.url, "docs", " "), 2, ("QUERY", "empty")),
    Case("cli-migrate-batch", lambda env: env.cli("migrate", env.url, "docs", "memory://", "copy", "--batch-size", "-1"), 2, ("--batch-size",)),
    # --- URLs, stores, collections
    Case("cli-url-scheme", lambda env: env.sync(_src(env, "jsonl_ok"), "--to", "qdrnt:///tmp/x"), 2, ("'qdrnt'",)),
    Case("cli-url-option", lambda env: env.sync(_src(env, "jsonl_ok"), "--to", env.url + f"?db_nme={SECRET}"), 2, ("'db_nme'",)),
    Case("cli-info-not-a-store", lambda env: env.cli("info", f"qdrant://{env.files['empty_dir']}"), 2, ("is not a Qdrant local store",)),
    Case("cli-info-file", lambda env: env.cli("info", f"qdrant://{env.files['jsonl_ok']}"), 2, ("is a file, not a Qdrant",)),
    Case("cli-info-missing-store", lambda env: env.cli("info", f"qdrant://{env.files['missing']}"), 2, ("no Qdrant store",)),
    Case("cli-milvus-missing", lambda env: env.cli("info", f"milvus://{env.files['missing']}.db"), 2, ("no Milvus Lite store",)),
    Case("cli-search-missing-collection", lambda env: env.cli("search", env.url, "nope", "q"), 2, ("'nope' does not exist",)),
    Case("cli-info-missing-collection", lambda env: env.cli("info", env.url, "nope", "--json"), 2, ("'nope' does not exist",)),
    Case("cli-migrate-missing-store", lambda env: env.cli("migrate", f"qdrant://{env.files['missing']}", "docs", "memory://", "c"), 2,
         ("no Qdrant store",)),
    Case("cli-sync-dimension", lambda env: env.sync(_src(env, "jsonl_ok"), "--collection", "narrow"), 2, ("'narrow'", "holds 4-d vectors but 8-d")),
    Case("cli-search-other-model", lambda env: env.cli("search", env.url, "docs", "q", "--model", "m/other"), 2,
         ("written by 'test/hash-embedder'", "--model")),
    Case("cli-model-missing", lambda env: env.real_model_cli("sync", _src(env, "jsonl_ok"), "--to", env.url, "--collection", "docs",
                                                              "--model", str(env.files["missing"])), 2, ("does not exist",)),
    Case("cli-model-bin-only", lambda env: env.real_model_cli("sync", _src(env, "jsonl_ok"), "--to", env.url, "--collection", "docs",
                                                               "--model", str(env.files["bin_model"]), "--backend", "torch"), 2,
         ("model.safetensors", "pytorch_model.bin")),
    Case("cli-embed-empty-text", lambda env: env.real_model_cli("embed", str(env.tiny), "ok", ""), 2, ("position 1", "empty")),
]

CASES = API + CLI


def records(store: Any) -> dict[str, Any]:
    """Everything a store holds: per collection, each record's text, metadata and vector."""
    out: dict[str, Any] = {}
    for name in store.list_collections():
        col = store.collection(name, create=False, check_fingerprint=False)
        rows = {r.id: (r.text, json.dumps(dict(r.metadata), sort_keys=True), np.round(r.vector, 6).tolist())
                for page in col.scroll(with_vectors=True) for r in page}
        out[name] = (col.count(), rows, dict(col.fingerprint or {}))
    return out


def files(root: Path) -> dict[str, tuple[int, str, int]]:
    """Every file below ``root`` but the API store's (checked by its records): nothing appears
    (a store made in a directory that is not one), nothing changes."""
    return {str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and "api-store" not in p.parts}


def _write_inputs(root: Path) -> dict[str, Path]:
    f: dict[str, Path] = {}

    def put(name: str, filename: str, data: bytes) -> None:
        f[name] = root / filename
        f[name].write_bytes(data)

    put("jsonl_ok", "ok.jsonl", b'{"id": "n1", "text": "a fine new text"}\n')
    put("jsonl_malformed", "malformed.jsonl", b'\n{"id": "x", "text": "unterminated\n')
    put("jsonl_no_text", "no_text.jsonl", b'{"id": "x", "body": "under another name"}\n')
    put("jsonl_text_number", "text_number.jsonl", b'{"id": "x", "text": 12}\n')
    put("jsonl_no_id", "no_id.jsonl", b'{"text": "nobody"}\n')
    put("jsonl_list", "list.jsonl", b'["x", "y"]\n')
    put("jsonl_latin1", "latin1.jsonl", b'{"id": "x", "text": "caf\xe9"}\n')
    put("jsonl_bad_meta", "bad_meta.jsonl", b'{"id": "x", "text": "t", "metadata": [1, 2]}\n')
    put("csv_empty_cell", "empty_cell.csv", b"id,text\nx,\n")
    put("csv_extra", "extra.csv", b"id,text\nx,t,surplus\n")
    put("csv_no_text", "no_text.csv", b"id,body\nx,t\n")
    put("csv_latin1_header", "latin1.csv", b"id,t\xe9xt\nx,t\n")
    put("xml", "docs.xml", b"<docs/>")
    put("parquet_garbage", "garbage.parquet", b"PAR1 but not really")
    for name, table in (("parquet_no_text", pa.table({"id": ["x"], "body": ["t"]})),
                        ("parquet_int_text", pa.table({"id": ["x"], "text": [1]})),
                        ("parquet_null_text", pa.table({"id": ["x"], "text": pa.array([None], pa.string())}))):
        f[name] = root / f"{name}.parquet"
        pq.write_table(table, f[name])
    (root / "texts").mkdir()
    (root / "texts" / "empty.txt").write_text("")
    f["dir_empty_file"] = root / "texts"
    f["one_txt"] = root / "texts" / "empty.txt"
    f["missing"] = root / "does-not-exist"
    f["empty_dir"] = root / "empty-dir"
    f["empty_dir"].mkdir()
    return f


def _model_dirs(root: Path, tiny: Path) -> dict[str, Path]:
    import shutil

    out = {}
    out["bin_model"] = root / "bin-model"
    shutil.copytree(tiny, out["bin_model"], ignore=shutil.ignore_patterns("model.safetensors"))
    (out["bin_model"] / "pytorch_model.bin").write_bytes(b"pickle, which bge-vdb never loads")
    out["max_pool_model"] = root / "max-pool-model"
    shutil.copytree(tiny, out["max_pool_model"])
    (out["max_pool_model"] / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_384: Path) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("catalogue")
    inputs = root / "inputs"
    inputs.mkdir()
    paths = _write_inputs(inputs) | _model_dirs(root, tiny_384)
    hash_embedder = HashEmbedder(dim=DIM)
    seed = [Document(f"d{i}", f"seeded document number {i}", {"lang": "en" if i % 2 else "fr", "year": 2020 + i})
            for i in range(5)]

    cli_url = f"qdrant://{root / 'cli-store'}"
    with connect(cli_url) as cli_store:
        cli_store.collection("docs", embedder=hash_embedder).upsert(seed)
        cli_store.collection("docs", embedder=hash_embedder).set_fingerprint(hash_embedder.fingerprint)
        cli_store.collection("narrow", dim=4)

    def run_cli(*argv: str, real_model: bool = False) -> tuple[int, str]:
        import contextlib
        import io

        real = cli._open_embedder
        if not real_model:
            cli._open_embedder = lambda model, backend, precision="auto": HashEmbedder(dim=DIM, name=model)  # type: ignore[assignment]
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(list(argv))
        finally:
            cli._open_embedder = real  # type: ignore[assignment]
        return code, out.getvalue() + err.getvalue()

    with connect(f"qdrant://{root / 'api-store'}") as store:
        col = store.collection("docs", embedder=hash_embedder)
        col.upsert(seed)
        col.upsert([Record("raw", np.arange(1, DIM + 1, dtype=float), text=None, metadata={"id": 2**53})])
        yield SimpleNamespace(
            store=store, col=col, files=paths, tiny=tiny_384, url=cli_url, root=root,
            cli=run_cli, real_model_cli=lambda *argv: run_cli(*argv, real_model=True),
            sync=lambda src, *more: run_cli("sync", src, "--to", cli_url, "--collection", "docs",
                                            *(more or ()), "--model", "test/hash-embedder"),
            tiny_embedder=Embedder(str(tiny_384), backend="torch", query_instruction=""),
        )


def test_the_catalogue_is_large_and_distinct() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, env: SimpleNamespace) -> None:
    before_api, before_files = records(env.store), files(env.root)
    with connect(env.url) as store:
        before_cli = records(store)
    if isinstance(case.expect, int):
        code, message = case.run(env)
        assert code == case.expect, message
        assert "Traceback" not in message
    else:
        with pytest.raises(case.expect) as err:
            case.run(env)
        message = str(err.value)
    for name in case.names:
        assert name in message, f"{name!r} not in {message!r}"
    assert SECRET not in message
    assert records(env.store) == before_api
    assert files(env.root) == before_files
    with connect(env.url) as store:
        assert records(store) == before_cli
