"""The framework rerankers with the real Reranker on a tiny cross-encoder, through the
frameworks' own pipelines over the bge-vdb vector stores: LangChain's
``ContextualCompressionRetriever`` around ``BGEVectorStore.as_retriever``, and a llama-index-core
query engine over ``BGELlamaVectorStore`` with ``BGERerankPostprocessor`` as its postprocessor.
Each result is compared with the independent computation of oracle.py: the retriever's own
documents/nodes, scored by ``Reranker.score``, sorted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_classic import retrievers  # ContextualCompressionRetriever (test extra)
from langchain_core.documents import Document

from bge_vdb import Reranker
from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import InputError
from bge_vdb.integrations import BGERerankCompressor, BGERerankPostprocessor
from bge_vdb.integrations.langchain import BGEEmbeddings, BGEVectorStore
from tests.rerank_use.oracle import assert_same_ranking, corpora, expected, texts
from tests.support.fake_embedder import HashEmbedder
from tests.support.stores import STORE_FACTORIES


def lc_store(corpus: list[tuple[str, int]], store: Any = None) -> BGEVectorStore:
    vs = BGEVectorStore(store or MemoryStore(), "lc", embedding=BGEEmbeddings(embedder=HashEmbedder(dim=16)))
    vs.add_texts([t for t, _ in corpus], [{"g": g} for _, g in corpus], ids=[f"d{i}" for i in range(len(corpus))])
    return vs


# ----------------------------------------------------------------------------------- LangChain

def check_compression(vs: BGEVectorStore, reranker: Reranker, query: str, fetch: int, top_n: int,
                      where: dict[str, Any] | None) -> None:
    base = vs.as_retriever(search_kwargs={"k": fetch, "filter": where})
    pipeline = retrievers.ContextualCompressionRetriever(
        base_compressor=BGERerankCompressor(reranker=reranker, top_n=top_n), base_retriever=base)
    got = pipeline.invoke(query)
    retrieved = base.invoke(query)
    want, scores = expected(reranker, query, [(d.id, d.page_content) for d in retrieved], top_n)
    hits = [_as_hit(d) for d in got]
    assert_same_ranking(hits, want, scores)
    by_id = {d.id: d for d in retrieved}
    for d in got:  # the retrieved document plus its score, nothing else changed
        assert d.page_content == by_id[d.id].page_content
        assert d.metadata == {**by_id[d.id].metadata, "relevance_score": pytest.approx(scores[d.id], abs=1e-5)}
    assert all("relevance_score" not in d.metadata for d in retrieved)


def _as_hit(doc: Any) -> Any:
    from bge_vdb.types import Hit

    return Hit(id=doc.id, score=doc.metadata["relevance_score"], text=doc.page_content, metadata={})


@settings(max_examples=50)
@given(corpus=corpora, query=texts, fetch=st.integers(1, 30), top_n=st.integers(1, 6),
       where=st.one_of(st.none(), st.integers(0, 2).map(lambda g: {"g": g})))
def test_compression_retriever_reranks_what_the_store_retrieved(
        reranker: Reranker, corpus: list[tuple[str, int]], query: str, fetch: int, top_n: int,
        where: dict[str, Any] | None) -> None:
    check_compression(lc_store(corpus), reranker, query, fetch, top_n, where)


@pytest.mark.parametrize("name", ["qdrant-local", "milvus-lite"])
def test_compression_retriever_on_engines(reranker: Reranker, name: str, tmp_path: Path) -> None:
    corpus = [(f"{a} {b}", i % 3) for i, (a, b) in enumerate(
        (a, b) for a in ("vector", "river", "city", "book", "fox") for b in ("panda", "water", "lazy", "dog"))]
    with STORE_FACTORIES[name](tmp_path) as store:
        vs = lc_store(corpus, store)
        check_compression(vs, reranker, "lazy fox water", 12, 4, None)
        check_compression(vs, reranker, "river panda", 20, 3, {"g": 1})


async def test_async_compression_matches_sync(reranker: Reranker) -> None:
    vs = lc_store([("vector database", 0), ("river city", 1), ("lazy dog", 0), ("quick brown fox", 1)])
    pipeline = retrievers.ContextualCompressionRetriever(
        base_compressor=BGERerankCompressor(reranker=reranker, top_n=2),
        base_retriever=vs.as_retriever(search_kwargs={"k": 4}))
    sync = pipeline.invoke("fox")
    assert [(d.id, d.metadata) for d in await pipeline.ainvoke("fox")] == [(d.id, d.metadata) for d in sync]


def test_compressor_defaults_options_and_errors(reranker: Reranker, cross_encoder_dir: Path) -> None:
    docs = [Document(id="a", page_content="vector database"), Document(page_content="river city")]
    built = BGERerankCompressor(str(cross_encoder_dir), backend="torch", precision="fp32", score_key="rr")
    assert built.top_n == 3 and isinstance(built.reranker, Reranker)
    got = built.compress_documents(docs, "river")
    assert sorted(d.page_content for d in got) == ["river city", "vector database"]
    assert [d.metadata["rr"] for d in got] == pytest.approx(sorted(
        reranker.score([("river", d.page_content) for d in docs]).tolist(), reverse=True), abs=1e-5)
    assert BGERerankCompressor(reranker=reranker).compress_documents([], "river") == []
    with pytest.raises(InputError, match=r"document 1 has no text"):
        BGERerankCompressor(reranker=reranker).compress_documents([docs[0], Document(page_content=" ")], "q")
    with pytest.raises(InputError, match=r"document 0 \(id 'a'\) has no text"):
        BGERerankCompressor(reranker=reranker).compress_documents([Document(id="a", page_content="")], "q")
    with pytest.raises(InputError, match="needs a text query"):
        BGERerankCompressor(reranker=reranker).compress_documents(docs, None)  # type: ignore[arg-type]
    for bad in ({"top_n": 0}, {"top_n": True}, {"top_n": 2.0}):
        with pytest.raises(InputError, match="top_n must be a positive int"):
            BGERerankCompressor(reranker=reranker, **bad)
    with pytest.raises(InputError, match="not both"):
        BGERerankCompressor(str(cross_encoder_dir), reranker=reranker)
    with pytest.raises(InputError, match=r"rerank= takes a bge_vdb\.Reranker"):
        BGERerankCompressor(reranker="BAAI/bge-reranker-base")


# ---------------------------------------------------------------------------------- LlamaIndex

def llama_index_over(corpus: list[tuple[str, int]], store: Any = None) -> Any:
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode

    from bge_vdb.integrations.llamaindex import BGEEmbedding, BGELlamaVectorStore

    embed_model = BGEEmbedding(embedder=HashEmbedder(dim=16))
    vector_store = BGELlamaVectorStore(store or MemoryStore(), "li", embed_model=embed_model)
    nodes = [TextNode(id_=f"n{i}", text=t, metadata={"g": g}) for i, (t, g) in enumerate(corpus)]
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)


def check_query_engine(index: Any, reranker: Reranker, query: str, fetch: int, top_n: int,
                       mode: Any = None) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import MetadataMode

    mode = mode or MetadataMode.EMBED
    post = BGERerankPostprocessor(reranker=reranker, top_n=top_n, metadata_mode=mode)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=fetch, node_postprocessors=[post])
    got = engine.query(query).source_nodes
    retrieved = index.as_retriever(similarity_top_k=fetch).retrieve(query)
    want, scores = expected(reranker, query,
                            [(n.node.node_id, n.node.get_content(metadata_mode=mode)) for n in retrieved], top_n)
    from bge_vdb.types import Hit

    assert_same_ranking([Hit(n.node.node_id, float(n.score), None, {}) for n in got], want, scores)


@settings(max_examples=50)
@given(corpus=corpora, query=texts, fetch=st.integers(1, 30), top_n=st.integers(1, 6),
       text_only=st.booleans())
def test_query_engine_reranks_what_the_index_retrieved(reranker: Reranker, corpus: list[tuple[str, int]],
                                                       query: str, fetch: int, top_n: int,
                                                       text_only: bool) -> None:
    from llama_index.core.schema import MetadataMode

    mode = MetadataMode.NONE if text_only else MetadataMode.EMBED
    check_query_engine(llama_index_over(corpus), reranker, query, fetch, top_n, mode)


@pytest.mark.parametrize("name", ["qdrant-local", "milvus-lite"])
def test_query_engine_on_engines(reranker: Reranker, name: str, tmp_path: Path) -> None:
    corpus = [(f"{a} {b}", i % 3) for i, (a, b) in enumerate(
        (a, b) for a in ("vector", "river", "city", "book", "fox") for b in ("panda", "water", "lazy", "dog"))]
    with STORE_FACTORIES[name](tmp_path) as store:
        check_query_engine(llama_index_over(corpus, store), reranker, "lazy fox water", 12, 4)


def test_postprocessor_reads_metadata_as_llama_index_does_and_refuses_bad_input(
        reranker: Reranker, cross_encoder_dir: Path) -> None:
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

    node = TextNode(id_="x", text="river city", metadata={"g": 1})
    assert "g: 1" in node.get_content(metadata_mode=MetadataMode.EMBED)  # what EMBED mode reads
    inputs = [NodeWithScore(node=node, score=0.5), NodeWithScore(node=TextNode(id_="y", text="lazy dog"), score=0.4)]
    post = BGERerankPostprocessor(str(cross_encoder_dir), backend="torch", precision="fp32")
    assert post.top_n == 2 and post.metadata_mode == MetadataMode.EMBED
    out = post.postprocess_nodes(inputs, query_str="river")
    assert [n.score for n in inputs] == [0.5, 0.4]  # the input nodes keep their scores
    want = reranker.score([("river", n.node.get_content(metadata_mode=MetadataMode.EMBED)) for n in inputs])
    assert sorted(n.score for n in out) == pytest.approx(sorted(want.tolist()), abs=1e-5)
    assert post.postprocess_nodes([], query_str="river") == []
    with pytest.raises(InputError, match="needs the query"):
        post.postprocess_nodes(inputs)
    empty = NodeWithScore(node=TextNode(id_="z", text=""), score=0.1)
    with pytest.raises(InputError, match=r"node 1 \(id 'z'\) has no text"):
        BGERerankPostprocessor(reranker=reranker, metadata_mode=MetadataMode.NONE).postprocess_nodes(
            [inputs[0], empty], QueryBundle("river"))
    with pytest.raises(InputError, match="top_n must be a positive int"):
        BGERerankPostprocessor(reranker=reranker, top_n=-1)
