"""LangChain integration: BGE embeddings done right, and one vector store for every database.

``BGEEmbeddings`` wraps :class:`bge_vdb.Embedder` (the BGE query instruction on queries only).
``BGEVectorStore`` is a LangChain ``VectorStore`` over any bge-vdb store (memory, Qdrant, Milvus,
Weaviate, Pinecone), written once on the ``Collection`` API, so it behaves the same everywhere:
scores are cosine similarity, filters are bge-vdb's filter language, ids are honoured.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import InputError, MissingExtra
from ..store import VectorStore as BgeStore
from ..types import EmbedderProtocol, Hit, Record
from . import LazyCollection, resolve_embedder

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("langchain-core", "langchain", "bge_vdb.integrations.langchain") from None

__all__ = ["BGEEmbeddings", "BGEVectorStore"]


class BGEEmbeddings(Embeddings):
    """LangChain ``Embeddings`` backed by :class:`bge_vdb.Embedder`.

    ``BGEEmbeddings(model="BAAI/bge-small-en-v1.5", device="cpu", ...)`` builds an Embedder
    (keyword options go to it); ``BGEEmbeddings(embedder=existing)`` wraps one you already have.
    Queries get the model's instruction, documents never do. The async methods run the model in
    a worker thread so the event loop keeps serving other tasks.
    """

    def __init__(self, model: str | None = None, *, embedder: EmbedderProtocol | None = None,
                 **embedder_options: Any) -> None:
        self.embedder = resolve_embedder(model, embedder, embedder_options)

    def __repr__(self) -> str:
        return f"BGEEmbeddings({self.embedder!r})"

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        return int(self.embedder.dim)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise InputError("embed_documents takes a list of strings, not one string")
        texts = list(texts)
        if not texts:
            return []
        return np.asarray(self.embedder.embed_documents(texts), dtype=np.float32).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return np.asarray(self.embedder.embed_query(text), dtype=np.float32).tolist()  # type: ignore[no-any-return]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await run_in_executor(None, self.embed_query, text)


def _to_document(hit: Hit | Record) -> Document:
    return Document(id=hit.id, page_content=hit.text or "", metadata=dict(hit.metadata))


class BGEVectorStore(VectorStore):
    """A LangChain vector store over a bge-vdb collection, on any database.

    Args:
        store: what ``bge_vdb.connect(url)`` returns, or the URL itself.
        collection_name: the collection; it is created on the first write, with the dimension
            of the first vectors (or of the bge-vdb embedder, whose fingerprint is then stored
            and checked).
        embedding: any LangChain ``Embeddings``; ``BGEEmbeddings`` is the natural choice.
        check_fingerprint: refuse a collection written by another bge-vdb model (default True).

    Scores are cosine similarity (higher is better) on every database. ``filter=`` takes the
    bge-vdb filter language, e.g. ``{"year": {"$gte": 2020}, "lang": "en"}``.
    """

    def __init__(self, store: BgeStore | str, collection_name: str = "docs", *,
                 embedding: Embeddings, check_fingerprint: bool = True) -> None:
        if not isinstance(embedding, Embeddings):
            raise InputError(f"embedding must be a LangChain Embeddings, got {type(embedding).__name__}")
        self.embedding = embedding
        embedder = embedding.embedder if isinstance(embedding, BGEEmbeddings) else None
        self._lazy = LazyCollection(store, collection_name, embedder, check_fingerprint=check_fingerprint)

    def __repr__(self) -> str:
        return f"BGEVectorStore({self._lazy.store!r}, collection_name={self._lazy.name!r})"

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    @property
    def store(self) -> BgeStore:
        """The ``bge_vdb`` store holding the collection."""
        return self._lazy.store

    @property
    def collection_name(self) -> str:
        """Name of the collection in that store."""
        return self._lazy.name

    # ---------------------------------------------------------------------------------- writes
    @staticmethod
    def _prepare(texts: Iterable[str], metadatas: list[dict[str, Any]] | None,
                 ids: Sequence[str | None] | None) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        text_list = list(texts)
        if any(not isinstance(t, str) for t in text_list):
            bad = next(i for i, t in enumerate(text_list) if not isinstance(t, str))
            raise InputError(f"text {bad} must be a string, got {type(text_list[bad]).__name__}")
        if metadatas is not None and len(metadatas) != len(text_list):
            raise InputError(f"got {len(metadatas)} metadatas for {len(text_list)} texts")
        if ids is not None and len(ids) != len(text_list):
            raise InputError(f"got {len(ids)} ids for {len(text_list)} texts")
        # Documents without an id get a random one, as every LangChain store does.
        id_list = [i if i else str(uuid.uuid4()) for i in (ids or [None] * len(text_list))]
        metas = [dict(m or {}) for m in (metadatas or [{}] * len(text_list))]
        return text_list, metas, id_list

    def _write(self, texts: list[str], metas: list[dict[str, Any]], ids: list[str],
               vectors: Sequence[Sequence[float]]) -> list[str]:
        if len(vectors) != len(texts):
            raise InputError(f"the embedding returned {len(vectors)} vectors for {len(texts)} texts")
        coll = self._lazy.get(dim=len(vectors[0]))
        assert coll is not None
        coll.upsert([Record(id=i, vector=v, text=t, metadata=m)
                     for i, v, t, m in zip(ids, vectors, texts, metas, strict=True)])
        return ids

    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                  ids: list[str] | None = None, batch_size: int | None = None, **kwargs: Any) -> list[str]:
        """Embed and upsert; existing ids are overwritten. Returns the ids (generated where missing).

        ``batch_size`` is accepted for ``langchain_core.indexing.index``; the collection batches
        writes by the database's own count and byte limits.
        """
        _no_extra(kwargs, "add_texts")
        text_list, metas, id_list = self._prepare(texts, metadatas, ids)
        if not text_list:
            return []
        return self._write(text_list, metas, id_list, self.embedding.embed_documents(text_list))

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
                         *, ids: list[str] | None = None, batch_size: int | None = None,
                         **kwargs: Any) -> list[str]:
        _no_extra(kwargs, "aadd_texts")
        text_list, metas, id_list = self._prepare(texts, metadatas, ids)
        if not text_list:
            return []
        vectors = await self.embedding.aembed_documents(text_list)
        return await run_in_executor(None, self._write, text_list, metas, id_list, vectors)

    def delete(self, ids: list[str] | None = None, *, filter: dict[str, Any] | None = None,
               **kwargs: Any) -> bool:
        """Delete by ids and/or by filter. Missing ids are ignored. Deleting everything is not
        done by accident: call ``store.drop(collection_name)`` for that."""
        _no_extra(kwargs, "delete")
        if ids is None and not filter:
            raise InputError("delete needs ids or filter=...; to remove everything drop the collection")
        coll = self._lazy.get()
        if coll is not None:
            coll.delete(ids, where=filter or None)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        return await run_in_executor(None, self.delete, ids, **kwargs)

    # ----------------------------------------------------------------------------------- reads
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents for the ids that exist, in the order asked."""
        coll = self._lazy.get()
        if coll is None:
            return []
        return [_to_document(r) for r in coll.fetch(list(ids))]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await run_in_executor(None, self.get_by_ids, ids)

    def _hits(self, vector: Sequence[float], k: int, filter: dict[str, Any] | None,
              with_vectors: bool = False) -> list[Hit]:
        coll = self._lazy.get()
        if coll is None:
            return []
        return coll.search(np.asarray(vector, dtype=np.float32), k, where=filter, with_vectors=with_vectors)

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Top ``k`` documents for a vector, with their cosine similarity."""
        _no_extra(kwargs, "similarity_search")
        return [(_to_document(h), h.score) for h in self._hits(embedding, k, filter)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to the query, best first."""
        vector = self.embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter, **kwargs)

    def similarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                          **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: dict[str, Any] | None = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            filter: dict[str, Any] | None = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        vector = await self.embedding.aembed_query(query)
        return await run_in_executor(None, self.similarity_search_with_score_by_vector,
                                     vector, k, filter, **kwargs)

    async def asimilarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                                 **kwargs: Any) -> list[Document]:
        pairs = await self.asimilarity_search_with_score(query, k, filter, **kwargs)
        return [doc for doc, _ in pairs]

    def _select_relevance_score_fn(self) -> Any:
        # Scores already are cosine similarities; LangChain wants [0, 1], so opposite
        # directions (negative cosine) count as no relevance at all.
        return lambda score: max(0.0, min(1.0, score))

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """Fetch ``fetch_k`` nearest documents, then pick ``k`` balancing relevance and diversity."""
        _no_extra(kwargs, "max_marginal_relevance_search")
        hits = self._hits(embedding, max(k, fetch_k), filter, with_vectors=True)
        if not hits:
            return []
        query = np.asarray(embedding, dtype=np.float32)
        chosen = maximal_marginal_relevance(
            query / np.linalg.norm(query), [np.asarray(h.vector, dtype=np.float32).tolist() for h in hits],
            lambda_mult=lambda_mult, k=k,
        )
        return [_to_document(hits[i]) for i in chosen]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: dict[str, Any] | None = None,
                                      **kwargs: Any) -> list[Document]:
        vector = self.embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, filter, **kwargs)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5,
                                             filter: dict[str, Any] | None = None,
                                             **kwargs: Any) -> list[Document]:
        vector = await self.embedding.aembed_query(query)
        return await run_in_executor(None, self.max_marginal_relevance_search_by_vector,
                                     vector, k, fetch_k, lambda_mult, filter, **kwargs)

    # ------------------------------------------------------------------------------ builders
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None,
                   store: BgeStore | str = "memory://", collection_name: str = "docs",
                   **kwargs: Any) -> BGEVectorStore:
        """Build a store over ``store`` (a bge-vdb store or URL) and add ``texts`` to it."""
        vs = cls(store, collection_name, embedding=embedding, **kwargs)
        vs.add_texts(texts, metadatas, ids=ids)
        return vs

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings,
                          metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None,
                          store: BgeStore | str = "memory://", collection_name: str = "docs",
                          **kwargs: Any) -> BGEVectorStore:
        vs = cls(store, collection_name, embedding=embedding, **kwargs)
        await vs.aadd_texts(texts, metadatas, ids=ids)
        return vs


def _no_extra(kwargs: dict[str, Any], method: str) -> None:
    """Unknown keyword arguments are an error, not silently ignored (a misspelt ``filter`` would
    otherwise return unfiltered results)."""
    if kwargs:
        raise TypeError(f"BGEVectorStore.{method} got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
