"""The Milvus layout without a server: rows round-trip on both layouts (with and without
nullable fields), server versions are read and too-old servers refused, index choices checked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bge_vdb.connectors.milvus_layout import (
    NULLS_FIELD,
    IndexChoice,
    ServerInfo,
    new_schema,
    read_layout,
    to_record,
    to_row,
)
from bge_vdb.errors import ConfigError, ConnectorError
from bge_vdb.types import Record


def layout_of(nullable: bool) -> Any:
    schema = new_schema(4, nullable=nullable)
    fields = [f.to_dict() for f in schema.fields]
    if not nullable:  # what a 2.3 server's describe_collection says: no "nullable" key at all
        for f in fields:
            f.pop("nullable", None)
    return read_layout("c", fields, "FLAT")


def test_the_two_layouts() -> None:
    modern, old = layout_of(True), layout_of(False)
    assert modern.nulls is None and modern.nullable == {"text", "content_hash"}
    assert old.nulls == NULLS_FIELD and old.nullable == frozenset()
    assert NULLS_FIELD in old.output_fields(False) and NULLS_FIELD not in modern.output_fields(False)


texts = st.none() | st.text(max_size=20)
hashes = st.none() | st.sampled_from(["", "h1", "model:tag:digest"])


@settings(max_examples=300, deadline=None)
@given(text=texts, content_hash=hashes, nullable=st.booleans(),
       metadata=st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.text(max_size=5), max_size=3))
def test_rows_read_back_as_written_on_both_layouts(
    text: str | None, content_hash: str | None, nullable: bool, metadata: dict[str, Any]
) -> None:
    layout = layout_of(nullable)
    rec = Record("id-1", np.array([1, 0, 0, 0], dtype=np.float32), text, metadata, content_hash)
    row, why = to_row(rec, layout)
    assert why is None
    if not nullable:  # what a server without nullable fields stores: never a None
        assert row["text"] is not None and row["content_hash"] is not None
    back = to_record(row, layout, with_vectors=True)
    assert (back.id, back.text, back.content_hash, back.metadata) == (rec.id, text, content_hash, metadata)
    np.testing.assert_array_equal(back.vector, rec.vector)


def test_a_foreign_collection_without_nullable_text_gets_an_empty_string() -> None:
    fields = [f.to_dict() for f in new_schema(4, False).fields if f.name not in (NULLS_FIELD, "content_hash")]
    for f in fields:
        f.pop("nullable", None)
    layout = read_layout("foreign", fields, "HNSW")
    assert layout.nulls is None and layout.content_hash is None and layout.index_type == "HNSW"
    row, why = to_row(Record("a", np.ones(4), None), layout)
    assert why is None and row["text"] == ""


@pytest.mark.parametrize(("reported", "version", "nullable"), [
    ("v2.3.5-lite", (2, 3, 5), False),
    ("v2.4.15", (2, 4, 15), False),
    ("v2.5.4", (2, 5, 4), True),
    ("milvus_lite-3.2.2", (3, 2, 2), True),
    ("milvus_lite-2.4.1", (2, 4, 1), False),  # the C++ Lite of Milvus 2.4: no nullable fields
    ("Zilliz Cloud Vector Database(Compatible with Milvus 2.5)", (2, 5), True),
    ("unknown build", None, True),  # says no version: taken as current
])
def test_server_versions(reported: str, version: tuple[int, ...] | None, nullable: bool) -> None:
    info = ServerInfo.parse(reported)
    assert info.version == version and info.nullable_fields is nullable
    assert info.bm25 is nullable  # the BM25 function (hybrid collections) arrived with 2.5 too
    info.check_supported("http://h:19530")  # all of these are supported


@pytest.mark.parametrize("reported", ["v2.2.16", "v2.1.4", "2.0.2"])
def test_servers_older_than_2_3_are_refused_in_plain_words(reported: str) -> None:
    with pytest.raises(ConnectorError) as err:
        ServerInfo.parse(reported).check_supported("http://h:19530")
    msg = str(err.value)
    assert reported in msg and "2.3 or newer" in msg and "http://h:19530" in msg and "upsert" in msg


def test_index_choices() -> None:
    assert IndexChoice().build_params() == {}
    assert IndexChoice().search_params("FLAT", 10) == {"metric_type": "COSINE"}
    hnsw = IndexChoice("HNSW", hnsw_m=8, hnsw_ef_construction=64, search_ef=32)
    assert hnsw.build_params() == {"M": 8, "efConstruction": 64}
    # The search width follows the collection's own index, and is never below k.
    assert hnsw.search_params("HNSW", 10)["params"] == {"ef": 32}
    assert hnsw.search_params("HNSW", 100)["params"] == {"ef": 100}
    assert IndexChoice().search_params("HNSW", 5)["params"] == {"ef": 512}
    assert IndexChoice("HNSW").build_params() == {"M": 32, "efConstruction": 200}
    assert "params" not in hnsw.search_params("AUTOINDEX", 5)
    with pytest.raises(ConfigError, match="IVF_PQ"):
        IndexChoice("IVF_PQ")
    with pytest.raises(ConfigError, match="hnsw_m"):
        IndexChoice("HNSW", hnsw_m=0)
