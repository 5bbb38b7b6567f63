"""BGEVectorStore beyond the standard suite: our filters, scores, MMR, retrievers, index(),
builders and bad input, on every database."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index

from bge_vdb.errors import DimensionMismatch, FilterError, FingerprintMismatch, InputError
from bge_vdb.integrations.langchain import BGEEmbeddings, BGEVectorStore
from bge_vdb.store import VectorStore
from tests.support.fake_embedder import HashEmbedder

TEXTS = [
    "Qdrant is a vector database written in Rust",
    "Milvus is a vector database for scalable similarity search",
    "Paris is the capital of France",
    "Berlin is the capital of Germany",
    "The Rust programming language guarantees memory safety",
]
METAS = [
    {"topic": "db", "year": 2021, "lang": "en"},
    {"topic": "db", "year": 2019, "lang": "en"},
    {"topic": "geo", "year": 2020, "lang": "fr"},
    {"topic": "geo", "year": 2022, "lang": "de"},
    {"topic": "lang", "year": 2015, "lang": "en"},
]
IDS = [f"doc-{i}" for i in range(len(TEXTS))]


@pytest.fixture
def embeddings() -> BGEEmbeddings:
    return BGEEmbeddings(embedder=HashEmbedder(dim=32))


@pytest.fixture
def vs(empty_store: VectorStore, embeddings: BGEEmbeddings) -> BGEVectorStore:
    store = BGEVectorStore(empty_store, collection_name="lc_docs", embedding=embeddings)
    store.add_texts(TEXTS, METAS, ids=IDS)
    return store


def test_scores_are_cosine_similarities_best_first(vs: BGEVectorStore, embeddings: BGEEmbeddings) -> None:
    query = "capital of France"
    pairs = vs.similarity_search_with_score(query, k=5)
    assert pairs[0][0].id == "doc-2"
    scores = [s for _, s in pairs]
    assert scores == sorted(scores, reverse=True)
    # Recompute the cosine of the best hit from the embedding itself.
    q = np.array(embeddings.embed_query(query))
    d = np.array(embeddings.embed_documents([TEXTS[2]])[0])
    assert math.isclose(scores[0], float(q @ d / np.linalg.norm(q) / np.linalg.norm(d)), abs_tol=1e-4)


def test_filters_use_the_bge_vdb_language(vs: BGEVectorStore) -> None:
    docs = vs.similarity_search("database", k=5, filter={"topic": "db", "year": {"$gte": 2020}})
    assert [d.id for d in docs] == ["doc-0"]
    docs = vs.similarity_search("anything", k=5, filter={"$or": [{"lang": "fr"}, {"lang": "de"}]})
    assert sorted(str(d.id) for d in docs) == ["doc-2", "doc-3"]
    docs = vs.similarity_search("anything", k=5, filter={"lang": {"$nin": ["en"]}})
    assert sorted(str(d.id) for d in docs) == ["doc-2", "doc-3"]
    with pytest.raises(FilterError, match="unknown filter operator"):
        vs.similarity_search("x", filter={"year": {"$between": [1, 2]}})


def test_misspelt_keyword_is_an_error_not_an_unfiltered_search(vs: BGEVectorStore) -> None:
    with pytest.raises(TypeError, match="filters"):
        vs.similarity_search("x", filters={"topic": "db"})


def test_delete_by_filter_and_get_by_ids_order(vs: BGEVectorStore) -> None:
    assert vs.delete(filter={"topic": "geo"}) is True
    got = vs.get_by_ids(["doc-4", "doc-3", "doc-0", "doc-2"])
    assert [d.id for d in got] == ["doc-4", "doc-0"]
    assert got[0] == Document(id="doc-4", page_content=TEXTS[4], metadata=METAS[4])
    with pytest.raises(InputError, match="drop the collection"):
        vs.delete()


def test_mmr_prefers_diverse_results(vs: BGEVectorStore) -> None:
    # Two near-duplicates of one text: plain search returns both; MMR swaps one for diversity.
    vs.add_texts(["Paris is the capital of France.", "Paris is the capital of France!"],
                 ids=["dup-1", "dup-2"], metadatas=[{"topic": "geo"}, {"topic": "geo"}])
    plain = [d.id for d in vs.similarity_search("Paris is the capital of France", k=3)]
    assert {"dup-1", "dup-2", "doc-2"} == set(plain)
    mmr = vs.max_marginal_relevance_search("Paris is the capital of France", k=3, fetch_k=7, lambda_mult=0.3)
    assert len(mmr) == 3 and len({d.id for d in mmr} & {"dup-1", "dup-2", "doc-2"}) < 3
    by_filter = vs.max_marginal_relevance_search("capital", k=5, filter={"topic": "db"})
    assert sorted(str(d.id) for d in by_filter) == ["doc-0", "doc-1"]


async def test_async_forms_match_sync(vs: BGEVectorStore) -> None:
    sync = vs.similarity_search_with_score("Rust memory safety", k=3, filter={"lang": "en"})
    asyn = await vs.asimilarity_search_with_score("Rust memory safety", k=3, filter={"lang": "en"})
    assert [(d.id, round(s, 5)) for d, s in sync] == [(d.id, round(s, 5)) for d, s in asyn]
    mmr = await vs.amax_marginal_relevance_search("Rust", k=2, filter={"topic": "lang"})
    assert [d.id for d in mmr] == ["doc-4"]
    await vs.adelete(filter={"lang": "en"})
    assert [d.id for d in await vs.aget_by_ids(IDS)] == ["doc-2", "doc-3"]


def test_retrievers(vs: BGEVectorStore) -> None:
    retriever = vs.as_retriever(search_kwargs={"k": 2, "filter": {"topic": "geo"}})
    docs = retriever.invoke("capital of Germany")
    assert [d.id for d in docs] == ["doc-3", "doc-2"]
    mmr = vs.as_retriever(search_type="mmr", search_kwargs={"k": 1, "fetch_k": 5})
    assert len(mmr.invoke("vector database")) == 1
    # Cosine similarity is the relevance score, so a threshold of 0.999 keeps exact matches only.
    strict = vs.as_retriever(search_type="similarity_score_threshold",
                             search_kwargs={"score_threshold": 0.999, "k": 5})
    assert strict.invoke("zzzz qqqq") == []


def test_from_texts_and_from_documents(empty_store: VectorStore, embeddings: BGEEmbeddings) -> None:
    vs = BGEVectorStore.from_texts(TEXTS[:2], embeddings, METAS[:2], ids=IDS[:2],
                                   store=empty_store, collection_name="built")
    assert [d.id for d in vs.get_by_ids(IDS[:2])] == IDS[:2]
    docs = [Document(page_content=TEXTS[2], metadata=METAS[2], id="given"), Document(page_content=TEXTS[3])]
    vs2 = BGEVectorStore.from_documents(docs, embeddings, store=empty_store, collection_name="built")
    assert vs2.get_by_ids(["given"])[0].page_content == TEXTS[2]
    assert empty_store.collection("built").count() == 4


def test_bge_embeddings_store_fingerprint_and_refuse_another_model(empty_store: VectorStore) -> None:
    first = BGEVectorStore(empty_store, "fp", embedding=BGEEmbeddings(embedder=HashEmbedder(dim=32)))
    first.add_texts(["hello"], ids=["a"])
    assert empty_store.describe_collection("fp").fingerprint["model"] == "test/hash-embedder"  # type: ignore[union-attr,index]
    other = BGEVectorStore(empty_store, "fp",
                           embedding=BGEEmbeddings(embedder=HashEmbedder(dim=32, name="other/model")))
    with pytest.raises(FingerprintMismatch, match="written by"):
        other.similarity_search("hello")


def test_bad_input_is_refused_naming_the_item(vs: BGEVectorStore) -> None:
    with pytest.raises(InputError, match="2 metadatas for 1 texts"):
        vs.add_texts(["a"], [{}, {}])
    with pytest.raises(InputError, match="not JSON-serialisable"):
        vs.add_texts(["a", "b"], [{}, {"when": object()}], ids=["ok", "bad"])
    assert vs.get_by_ids(["ok", "bad"]) == []  # nothing of a refused batch was written
    with pytest.raises(DimensionMismatch):
        vs.similarity_search_by_vector([1.0, 0.0], k=1)


def test_index_api_with_record_manager(empty_store: VectorStore, embeddings: BGEEmbeddings) -> None:
    vs = BGEVectorStore(empty_store, "indexed", embedding=embeddings)
    manager = InMemoryRecordManager(namespace="bge-vdb/indexed")
    manager.create_schema()
    docs = [Document(page_content=t, metadata={"source": f"s{i % 2}"}) for i, t in enumerate(TEXTS)]

    first = index(docs, manager, vs, cleanup="incremental", source_id_key="source", key_encoder="sha256")
    assert first == {"num_added": 5, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    again = index(docs, manager, vs, cleanup="incremental", source_id_key="source", key_encoder="sha256")
    assert again == {"num_added": 0, "num_updated": 0, "num_skipped": 5, "num_deleted": 0}
    assert empty_store.collection("indexed").count() == 5

    changed = [Document(page_content="Paris is in France", metadata={"source": "s0"})]
    third = index(changed, manager, vs, cleanup="incremental", source_id_key="source", key_encoder="sha256")
    assert third["num_added"] == 1 and third["num_deleted"] == 3  # s0 had docs 0, 2, 4
    texts = {d.page_content for d in vs.similarity_search("x", k=10)}
    assert texts == {"Paris is in France", TEXTS[1], TEXTS[3]}

    full = index([], manager, vs, cleanup="full", key_encoder="sha256")
    assert full["num_deleted"] == 3 and vs.similarity_search("x", k=10) == []
