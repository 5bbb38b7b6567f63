"""Our conformance tests for the LlamaIndex classes (LlamaIndex has no public standard suite):
retrieval through VectorStoreIndex, ingestion with dedupe, filters, delete by ref_doc_id,
on every database."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from bge_vdb.errors import InputError, UnsupportedFilter
from bge_vdb.integrations.llamaindex import BGEEmbedding, BGELlamaVectorStore, to_bge_filter
from bge_vdb.store import VectorStore
from tests.support.fake_embedder import HashEmbedder

DOCS = [
    ("paris", "Paris is the capital of France. It lies on the Seine.", {"country": "fr", "pop": 2.1, "year": 2020}),
    ("berlin", "Berlin is the capital of Germany. It lies on the Spree.", {"country": "de", "pop": 3.6, "year": 2021}),
    ("rome", "Rome is the capital of Italy. It lies on the Tiber.", {"country": "it", "pop": 2.8, "year": 2019}),
    ("qdrant", "Qdrant is a vector database written in Rust.", {"country": "de", "pop": 0.0, "year": 2023}),
]


@pytest.fixture
def embed_model() -> BGEEmbedding:
    return BGEEmbedding(embedder=HashEmbedder(dim=256))


def documents() -> list[Document]:
    return [Document(text=t, metadata=m, doc_id=i) for i, t, m in DOCS]


@pytest.fixture
def index(empty_store: VectorStore, embed_model: BGEEmbedding) -> VectorStoreIndex:
    vector_store = BGELlamaVectorStore(empty_store, "li_nodes", embed_model=embed_model)
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex.from_documents(documents(), storage_context=storage, embed_model=embed_model)


# ---------------------------------------------------------------------------------- embedding

def test_embedding_puts_the_instruction_on_queries_only() -> None:
    hash_embedder = HashEmbedder(dim=256)
    model = BGEEmbedding(embedder=hash_embedder)
    text = "capital of France"
    assert model.get_query_embedding(text) == pytest.approx(hash_embedder.embed_query(text).tolist())
    assert model.get_text_embedding(text) == pytest.approx(hash_embedder.embed_documents([text])[0].tolist())
    assert model.get_query_embedding(text) != pytest.approx(model.get_text_embedding(text))
    batch = model.get_text_embedding_batch(["a b c", "d e f", "g h i"])
    assert [len(v) for v in batch] == [256, 256, 256]


async def test_async_embedding_runs_off_the_event_loop() -> None:
    started, release = threading.Event(), threading.Event()

    class Blocking(HashEmbedder):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            started.set()
            self.released = release.wait(timeout=10)  # only the event loop can set it
            return super().embed_documents(texts)

    blocking = Blocking(dim=8)
    model = BGEEmbedding(embedder=blocking)
    task = asyncio.ensure_future(model.aget_text_embedding_batch(["hello"]))
    while not started.is_set():
        await asyncio.sleep(0)
    release.set()  # runs because the loop is free while the model works in a thread
    assert len((await task)[0]) == 8 and blocking.released


# --------------------------------------------------------------------------- index and queries

def test_retrieval_through_vector_store_index(index: VectorStoreIndex) -> None:
    nodes = index.as_retriever(similarity_top_k=2).retrieve("Paris is the capital of France.")
    assert nodes[0].node.ref_doc_id == "paris"
    assert nodes[0].node.get_content() == DOCS[0][1]
    assert nodes[0].node.metadata == DOCS[0][2]
    assert nodes[0].score >= nodes[1].score  # type: ignore[operator]


def test_metadata_filters(index: VectorStoreIndex) -> None:
    def ids(filters: MetadataFilters) -> list[str]:
        got = index.as_retriever(similarity_top_k=10, filters=filters).retrieve("capital")
        return sorted(n.node.ref_doc_id or "" for n in got)

    eq = MetadataFilters(filters=[MetadataFilter(key="country", value="de")])
    assert ids(eq) == ["berlin", "qdrant"]
    both = MetadataFilters(filters=[MetadataFilter(key="country", value="de"),
                                    MetadataFilter(key="year", value=2022, operator=FilterOperator.LT)])
    assert ids(both) == ["berlin"]
    either = MetadataFilters(condition=FilterCondition.OR, filters=[
        MetadataFilter(key="country", value=["fr", "it"], operator=FilterOperator.IN),
        MetadataFilter(key="pop", value=3.0, operator=FilterOperator.GT)])
    assert ids(either) == ["berlin", "paris", "rome"]
    nested = MetadataFilters(filters=[
        MetadataFilter(key="country", value=["fr"], operator=FilterOperator.NIN),
        MetadataFilters(condition=FilterCondition.OR, filters=[
            MetadataFilter(key="year", value=2019, operator=FilterOperator.LTE),
            MetadataFilter(key="year", value=2023, operator=FilterOperator.GTE)])])
    assert ids(nested) == ["qdrant", "rome"]
    ne = MetadataFilters(filters=[MetadataFilter(key="country", value="de", operator=FilterOperator.NE)])
    assert ids(ne) == ["paris", "rome"]
    none_of = MetadataFilters(condition=FilterCondition.NOT, filters=[
        MetadataFilter(key="country", value="de"), MetadataFilter(key="country", value="fr")])
    assert ids(none_of) == ["rome"]
    with pytest.raises(UnsupportedFilter, match="TEXT_MATCH"):
        ids(MetadataFilters(filters=[MetadataFilter(key="country", value="d",
                                                    operator=FilterOperator.TEXT_MATCH)]))


def test_filter_translation_is_exact() -> None:
    f = MetadataFilters(filters=[MetadataFilter(key="a", value=1, operator=FilterOperator.GTE),
                                 MetadataFilter(key="b", value="x", operator=FilterOperator.IN)])
    assert to_bge_filter(f) == {"$and": [{"a": {"$gte": 1}}, {"b": {"$in": ["x"]}}]}
    assert to_bge_filter(MetadataFilters(filters=[])) is None
    with pytest.raises(UnsupportedFilter, match="IS_EMPTY"):
        to_bge_filter(MetadataFilters(filters=[MetadataFilter(key="a", value=None,
                                                              operator=FilterOperator.IS_EMPTY)]))


def test_query_with_doc_ids_and_node_ids(index: VectorStoreIndex, embed_model: BGEEmbedding) -> None:
    store = index.vector_store
    qv = embed_model.get_query_embedding("capital")
    res = store.query(VectorStoreQuery(query_embedding=qv, similarity_top_k=10, doc_ids=["rome", "qdrant"]))
    assert sorted(n.ref_doc_id or "" for n in res.nodes or []) == ["qdrant", "rome"]
    some = [res.ids[0]] if res.ids else []
    only = store.query(VectorStoreQuery(query_embedding=qv, similarity_top_k=10, node_ids=some))
    assert only.ids == some
    assert only.similarities == pytest.approx([res.similarities[0]], abs=1e-5)  # type: ignore[index]
    with pytest.raises(InputError, match="no embedding"):
        store.query(VectorStoreQuery(query_str="x"))
    with pytest.raises(InputError, match="'mmr' is not supported"):
        store.query(VectorStoreQuery(query_embedding=qv, mode=VectorStoreQueryMode.MMR))


def test_delete_by_ref_doc_id(index: VectorStoreIndex, empty_store: VectorStore) -> None:
    coll = empty_store.collection("li_nodes")
    before = coll.count()
    index.delete_ref_doc("berlin")
    assert coll.count() == before - 1
    got = index.as_retriever(similarity_top_k=10).retrieve("Berlin is the capital of Germany.")
    assert "berlin" not in {n.node.ref_doc_id for n in got}
    index.vector_store.delete("no-such-doc")  # missing: no error
    assert coll.count() == before - 1


async def test_async_index_query_and_delete(index: VectorStoreIndex) -> None:
    nodes = await index.as_retriever(similarity_top_k=1).aretrieve("Rome is the capital of Italy.")
    assert nodes[0].node.ref_doc_id == "rome"
    await index.adelete_ref_doc("rome")
    nodes = await index.as_retriever(similarity_top_k=10).aretrieve("Rome is the capital of Italy.")
    assert "rome" not in {n.node.ref_doc_id for n in nodes}


def test_get_and_delete_nodes(empty_store: VectorStore) -> None:
    store = BGELlamaVectorStore(empty_store, "raw_nodes")
    nodes = [TextNode(id_=f"n{i}", text=f"text {i}", metadata={"i": i}, embedding=list(np.eye(4)[i]))
             for i in range(4)]
    assert store.add(nodes) == ["n0", "n1", "n2", "n3"]
    assert sorted(n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[
        MetadataFilter(key="i", value=2, operator=FilterOperator.GTE)]))) == ["n2", "n3"]
    store.delete_nodes(node_ids=["n0", "n3"], filters=MetadataFilters(filters=[
        MetadataFilter(key="i", value=0)]))  # only n0 matches both
    assert sorted(n.node_id for n in store.get_nodes(node_ids=["n0", "n1", "n2", "n3"])) == ["n1", "n2", "n3"]
    with pytest.raises(InputError, match="node 0"):
        store.add([TextNode(id_="x", text="no vector")])
    store.clear()
    assert store.get_nodes() == [] and "raw_nodes" not in empty_store.list_collections()


# ---------------------------------------------------------------------------------- ingestion

def test_ingestion_pipeline_dedupes_reruns(empty_store: VectorStore, embed_model: BGEEmbedding) -> None:
    vector_store = BGELlamaVectorStore(empty_store, "ingested", embed_model=embed_model)
    docstore = SimpleDocumentStore()

    def pipeline() -> IngestionPipeline:
        return IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=26, chunk_overlap=0), embed_model],
            vector_store=vector_store, docstore=docstore,
        )

    first = pipeline().run(documents=documents())
    coll = empty_store.collection("ingested")
    assert len(first) == coll.count() > len(DOCS)  # split into several chunks each
    assert pipeline().run(documents=documents()) == []  # unchanged: nothing re-embedded
    assert coll.count() == len(first)

    changed = documents()
    changed[0] = Document(text="Paris is the capital of France.", metadata=DOCS[0][2], doc_id="paris")
    rerun = pipeline().run(documents=changed)
    assert [n.ref_doc_id for n in rerun] == ["paris"]
    old_paris = [n for n in first if n.ref_doc_id == "paris"]
    assert coll.count() == len(first) - len(old_paris) + 1  # old chunks replaced, not kept

    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    best = index.as_retriever(similarity_top_k=1).retrieve("Paris is the capital of France.")
    assert best[0].node.get_content() == "Paris is the capital of France."
