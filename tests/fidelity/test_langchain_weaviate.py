"""langchain-weaviate's WeaviateVectorStore (the LangChain partner package, installed as a package)
through its documented flows against the Weaviate fake: add texts with metadata, similarity search
with filters and scores, MMR, multi-tenancy, delete, hybrid weighting, a retriever.

Every search of WeaviateVectorStore is a Weaviate *hybrid* query (its query text for BM25, its
embedding for the vector part, ``alpha`` 0.7 unless given), so the expected answers below follow
from Weaviate's relativeScoreFusion: each part's scores are min-max normalised and weighted.
The embedding is a lookup table, so every similarity is known.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_weaviate import WeaviateVectorStore
from weaviate.classes.query import Filter

VECTORS = {
    "cats purr": [1.0, 0.0, 0.0],
    "kittens purr softly": [0.9, 0.1, 0.0],
    "dogs bark": [0.0, 1.0, 0.0],
    "stock prices fell": [0.0, 0.0, 1.0],
    "cat sounds": [1.0, 0.05, 0.0],  # a query: no word in common with any text ("cat" is not "cats")
    "dogs bark loudly": [0.0, 0.0, 1.0],  # a query whose words only "dogs bark" shares
}
TEXTS = ["cats purr", "kittens purr softly", "dogs bark", "stock prices fell"]
METAS = [{"topic": "animals", "n": 1}, {"topic": "animals", "n": 2}, {"topic": "animals", "n": 3},
         {"topic": "finance", "n": 4}]


class Lookup(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [VECTORS[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return VECTORS[text]


@pytest.fixture
def store(wv: Any) -> WeaviateVectorStore:
    return WeaviateVectorStore.from_texts(TEXTS, Lookup(), metadatas=METAS, client=wv, index_name="Pets")


def _texts(docs: list[Document]) -> list[str]:
    return [d.page_content for d in docs]


def test_add_texts_with_metadata_and_search(store: WeaviateVectorStore) -> None:
    docs = store.similarity_search("cat sounds", k=2)
    assert _texts(docs) == ["cats purr", "kittens purr softly"]
    # Metadata comes back from the object's properties; numbers as auto-schema made them (number).
    assert docs[0].metadata == {"topic": "animals", "n": 1.0}


def test_similarity_search_with_a_filter(store: WeaviateVectorStore) -> None:
    finance = store.similarity_search("cat sounds", k=4, filters=Filter.by_property("topic").equal("finance"))
    assert _texts(finance) == ["stock prices fell"]
    small = store.similarity_search("cat sounds", k=4, filters=Filter.by_property("n").greater_or_equal(2))
    assert _texts(small) == ["kittens purr softly", "dogs bark", "stock prices fell"]


def test_scores_are_the_fused_hybrid_scores(store: WeaviateVectorStore) -> None:
    # alpha=1: vector part only. 1 - distance = cosine: cats .99875, kittens .99816, dogs .04994,
    # stock 0; min-max normalised: 1, .9994, .05, 0.
    scored = store.similarity_search_with_score("cat sounds", k=4, alpha=1)
    assert [(d.page_content, round(s, 3)) for d, s in scored] == [
        ("cats purr", 1.0), ("kittens purr softly", 0.999), ("dogs bark", 0.05), ("stock prices fell", 0.0)]


def test_hybrid_alpha_moves_between_keyword_and_vector(store: WeaviateVectorStore) -> None:
    # The query's vector points at "stock prices fell", its words only match "dogs bark".
    assert _texts(store.similarity_search("dogs bark loudly", k=1, alpha=1)) == ["stock prices fell"]
    assert _texts(store.similarity_search("dogs bark loudly", k=4, alpha=0)) == ["dogs bark"]  # BM25 only
    # alpha 0.3: dogs gets 0.7 (keyword) + 0.3 · 0 (vector), stock 0.3 · 1.
    assert _texts(store.similarity_search("dogs bark loudly", k=2, alpha=0.3)) == ["dogs bark", "stock prices fell"]


def test_max_marginal_relevance(store: WeaviateVectorStore) -> None:
    # MMR first takes the best match, then trades similarity to the query against similarity to
    # what is already taken: kittens (cos .994 with cats) loses to dogs at lambda 0.5.
    assert _texts(store.max_marginal_relevance_search("cat sounds", k=2, fetch_k=4, lambda_mult=0.5)) == [
        "cats purr", "dogs bark"]
    assert _texts(store.max_marginal_relevance_search("cat sounds", k=2, fetch_k=4, lambda_mult=1.0)) == [
        "cats purr", "kittens purr softly"]


def test_delete_by_ids(wv: Any) -> None:
    store = WeaviateVectorStore(wv, "Notes", "text", Lookup())
    ids = store.add_texts(TEXTS, metadatas=METAS)
    store.delete(ids[:2])
    assert wv.collections.use("Notes").aggregate.over_all(total_count=True).total_count == 2
    assert _texts(store.similarity_search("cat sounds", k=4, alpha=1)) == ["dogs bark", "stock prices fell"]


def test_same_ids_replace_objects(wv: Any) -> None:
    store = WeaviateVectorStore(wv, "Notes", "text", Lookup())
    ids = store.add_texts(TEXTS[:2], metadatas=METAS[:2])
    store.add_texts(["dogs bark"], metadatas=[{"topic": "pets", "n": 9}], ids=[ids[0]])
    docs = store.similarity_search("cat sounds", k=4, alpha=1)
    assert [(d.page_content, d.metadata["topic"]) for d in docs] == [("kittens purr softly", "animals"),
                                                                   ("dogs bark", "pets")]


def test_multi_tenancy(wv: Any, caplog: Any) -> None:
    store = WeaviateVectorStore(wv, "Notes", "text", Lookup(), use_multi_tenancy=True)
    with caplog.at_level(logging.INFO):
        store.add_texts(TEXTS[:2], tenant="acme")  # a missing tenant is created on first use
    assert "Tenant acme does not exist" in caplog.text
    store.add_texts(TEXTS[2:], tenant="globex")
    assert _texts(store.similarity_search("cat sounds", k=4, tenant="acme")) == TEXTS[:2]
    assert _texts(store.similarity_search("cat sounds", k=4, tenant="globex", alpha=1)) == TEXTS[2:]
    with pytest.raises(ValueError, match="Must use tenant context"):
        store.similarity_search("cat sounds", k=1)


def test_retriever(store: WeaviateVectorStore) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 1, "alpha": 1})
    assert _texts(retriever.invoke("cat sounds")) == ["cats purr"]


def test_documents_with_many_properties_round_trip(wv: Any) -> None:
    store = WeaviateVectorStore(wv, "Shop", "text", Lookup())
    meta = {"tags": ["a", "b"], "price": 9.5, "in_stock": True, "sku": "X-1"}
    store.add_texts(["cats purr"], metadatas=[meta])
    doc = store.similarity_search("cat sounds", k=1)[0]
    assert doc.metadata == meta
    only = store.similarity_search("cat sounds", k=1, return_properties=["sku"])[0]
    assert only.metadata == {"sku": "X-1"}
    with_uuid = store.similarity_search("cat sounds", k=1, return_uuids=True)[0]
    assert len(with_uuid.metadata["uuid"]) == 36


def test_vectors_come_back_for_mmr(store: WeaviateVectorStore) -> None:
    docs = store.similarity_search_by_vector(VECTORS["dogs bark"], k=1, include_vector=True, alpha=1)
    assert np.allclose(docs[0].metadata["vector"], VECTORS["dogs bark"])
