"""A local BGE directory gets its query instruction (issue 14, item 4): recognised from what the
directory says about itself, or named with ``preset=``; otherwise a warning, once. A collection
records the preset, and search uses its instruction when the embedder knows none."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_vdb import Embedder, connect
from bge_vdb.errors import ConfigError, ModelError
from bge_vdb.models import EN_INSTRUCTION

BGE_CARD = """---
tags:
- sentence-transformers
model-index:
- name: bge-small-en-v1.5
  results: []
license: mit
---
# BGE small
"""


@pytest.mark.parametrize(("how", "kwargs"), [
    ("config.json as BAAI published bge-large-en-v1.5's",
     {"name_or_path": "/root/.cache/torch/sentence_transformers/BAAI_bge-small-en/"}),
    ("config.json with the Hub id", {"name_or_path": "BAAI/bge-small-en-v1.5"}),
    ("the model card's model-index", {"card": BGE_CARD}),
])
def test_a_bge_directory_is_recognised(model_copy: Any, how: str, kwargs: dict[str, Any]) -> None:
    emb = Embedder(str(model_copy(**kwargs)), backend="torch")
    assert emb.query_instruction == EN_INSTRUCTION, how
    assert emb.fingerprint["preset"] == "BAAI/bge-small-en-v1.5"
    assert emb.fingerprint["query_instruction"] == EN_INSTRUCTION
    q = "which river runs through the city"
    np.testing.assert_allclose(emb.embed_query(q), emb.embed_documents([EN_INSTRUCTION + q])[0], atol=1e-6)
    assert not np.allclose(emb.embed_query(q), emb.embed_documents([q])[0], atol=1e-3)


def test_a_hugging_face_cache_snapshot_is_recognised(tiny_384: Path, tmp_path: Path) -> None:
    from tests.embedder.conftest import fake_hf_cache

    snapshot = fake_hf_cache(tmp_path, "BAAI/bge-small-en-v1.5", tiny_384)
    assert Embedder(str(snapshot), backend="torch").query_instruction == EN_INSTRUCTION


def test_a_namesake_of_another_width_is_not_taken_for_the_preset(model_copy: Any) -> None:
    # bge-small-zh is 512-d: a 384-d model claiming that name is something else.
    emb = Embedder(str(model_copy(name_or_path="BAAI/bge-small-zh-v1.5")), backend="torch")
    assert emb.query_instruction == "" and emb.fingerprint["preset"] is None


def test_no_instruction_warns_once(model_copy: Any, caplog: pytest.LogCaptureFixture) -> None:
    path = model_copy("unknown")
    emb = Embedder(str(path), backend="torch")
    with caplog.at_level(logging.WARNING, logger="bge_vdb"):
        emb.embed_query("first")
        emb.embed_queries(["second", "third"])
        Embedder(str(path), backend="torch").embed_query("another embedder, same model")
        emb.embed_documents(["passages never need one"])
    warnings = [r.getMessage() for r in caplog.records if "no query instruction" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0] and "preset=" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bge_vdb"):
        Embedder(str(model_copy("silenced")), backend="torch", query_instruction="").embed_query("x")
    assert not caplog.records


def test_preset_argument(model_copy: Any) -> None:
    path = str(model_copy())
    emb = Embedder(path, backend="torch", preset="BAAI/bge-small-en-v1.5")
    assert emb.query_instruction == EN_INSTRUCTION and emb.fingerprint["preset"] == "BAAI/bge-small-en-v1.5"
    assert Embedder(path, preset="BAAI/bge-small-en-v1.5", query_instruction="q: ").query_instruction == "q: "
    with pytest.raises(ConfigError, match="unknown preset 'bge-small'"):
        Embedder(path, preset="bge-small")
    with pytest.raises(ModelError, match="dimension 512"):
        Embedder(path, backend="torch", preset="BAAI/bge-small-zh-v1.5").embed_documents(["x"])


def test_search_uses_the_instruction_the_collection_records(model_copy: Any) -> None:
    path = str(model_copy())
    writer = Embedder(path, backend="torch", preset="BAAI/bge-small-en-v1.5")
    store = connect("memory://")
    col = store.collection("docs", embedder=writer)
    from bge_vdb import Document

    texts = ["the river runs through the city", "a quick brown fox", "the mountain at night",
             "water and fire", "a book about the house"]
    col.upsert([Document(f"d{i}", t) for i, t in enumerate(texts)])
    assert col.fingerprint is not None and col.fingerprint["preset"] == "BAAI/bge-small-en-v1.5"

    reader = Embedder(path, backend="torch")  # knows no instruction: the collection's is used
    assert reader.query_instruction == ""
    hits = store.collection("docs", embedder=reader, create=False).search("river in the city", k=5)
    expected = col.search(writer.embed_query("river in the city").tolist(), k=5)
    assert [h.id for h in hits] == [h.id for h in expected]
    np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], atol=1e-5)
    # An explicit choice wins: query_instruction="" embeds the bare query.
    bare = Embedder(path, backend="torch", query_instruction="")
    got = store.collection("docs", embedder=bare, create=False).search("river in the city", k=5)
    plain = col.search(bare.embed_documents(["river in the city"])[0].tolist(), k=5)
    np.testing.assert_allclose([h.score for h in got], [h.score for h in plain], atol=1e-5)
