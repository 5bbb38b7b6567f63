"""LlamaIndex integration: a BGE embedding model and one vector store for every database.

``BGEEmbedding`` wraps :class:`bge_vdb.Embedder` (the BGE instruction on queries only).
``BGELlamaVectorStore`` keeps LlamaIndex nodes in a bge-vdb collection on any database, so
``VectorStoreIndex`` and ``IngestionPipeline`` work the same on Qdrant, Milvus, Weaviate,
Pinecone and the memory store. ``MetadataFilters`` are translated to bge-vdb's filter language.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import filters as flt
from ..errors import InputError, MissingExtra, UnsupportedFilter
from ..store import VectorStore as BgeStore
from ..store import check_vector
from ..types import EmbedderProtocol, Record
from . import LazyCollection, resolve_embedder

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("llama-index-core", "llamaindex", "bge_vdb.integrations.llamaindex") from None

__all__ = ["BGEEmbedding", "BGELlamaVectorStore", "to_bge_filter"]


class BGEEmbedding(BaseEmbedding):
    """LlamaIndex embedding model backed by :class:`bge_vdb.Embedder`.

    ``BGEEmbedding(model="BAAI/bge-small-en-v1.5", device="cpu")`` or
    ``BGEEmbedding(embedder=existing)``. Queries get the model's instruction, texts never do;
    batches go to the Embedder whole (it sorts by length); async calls run in a worker thread.
    """

    _embedder: EmbedderProtocol = PrivateAttr()

    def __init__(self, model: str | None = None, *, embedder: EmbedderProtocol | None = None,
                 embed_batch_size: int = 64, **embedder_options: Any) -> None:
        resolved = resolve_embedder(model, embedder, embedder_options)
        name = model or getattr(resolved, "model", None) or getattr(resolved, "name", None)
        super().__init__(model_name=str(name or type(resolved).__name__), embed_batch_size=embed_batch_size)
        self._embedder = resolved

    @classmethod
    def class_name(cls) -> str:
        return "BGEEmbedding"

    @property
    def embedder(self) -> EmbedderProtocol:
        """The wrapped ``bge_vdb`` embedder."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        return np.asarray(self._embedder.embed_query(query), dtype=np.float32).tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        return np.asarray(self._embedder.embed_documents(list(texts)), dtype=np.float32).tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


# ------------------------------------------------------------------------------------ filters

_OPS = {
    FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
}


def to_bge_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """Translate LlamaIndex ``MetadataFilters`` (nested too) into bge-vdb's filter language.

    AND/OR map to ``$and``/``$or``; NOT means "none of these match", as in LlamaIndex's own
    store. Operators without an exact equivalent (text match, contains, any/all, is_empty)
    raise :class:`UnsupportedFilter` rather than being approximated.
    """
    if filters is None or not filters.filters:
        return None
    parts = [_one(f) if isinstance(f, MetadataFilter) else to_bge_filter(f) for f in filters.filters]
    clauses = [p for p in parts if p]
    if not clauses:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": clauses}}
    if len(clauses) == 1:
        return clauses[0]
    return {"$and" if condition == FilterCondition.AND else "$or": clauses}


def _one(f: MetadataFilter) -> dict[str, Any]:
    op = _OPS.get(f.operator)
    if op is None:
        raise UnsupportedFilter(
            f"the LlamaIndex filter operator {f.operator.name} ({f.operator.value!r}) on {f.key!r} has "
            f"no exact equivalent in bge-vdb's filter language; supported: "
            f"{', '.join(o.name for o in _OPS)} with AND/OR/NOT"
        )
    if f.value is None:
        raise UnsupportedFilter(f"filter on {f.key!r}: comparing with None is not supported")
    if op in ("$in", "$nin") and not isinstance(f.value, list):
        return {f.key: {op: [f.value]}}
    return {f.key: {op: f.value}}


# ------------------------------------------------------------------------------- vector store

class BGELlamaVectorStore(BasePydanticVectorStore):
    """LlamaIndex nodes in a bge-vdb collection, on any database.

    Each node is one record: the node id as the id, its text, and its metadata plus what
    LlamaIndex needs to rebuild the node (``_node_content``) and ``ref_doc_id``/``doc_id``, so
    ``delete(ref_doc_id)`` is a filtered delete. The collection is created on the first add with
    the dimension of the node embeddings (or of ``embed_model`` when it is a ``BGEEmbedding``,
    whose fingerprint is then stored and checked).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str

    _lazy: LazyCollection = PrivateAttr()

    def __init__(self, store: BgeStore | str, collection_name: str = "llama_nodes", *,
                 embed_model: Any = None, check_fingerprint: bool = True) -> None:
        super().__init__(collection_name=collection_name)  # type: ignore[call-arg]
        embedder = embed_model.embedder if isinstance(embed_model, BGEEmbedding) else None
        self._lazy = LazyCollection(store, collection_name, embedder, check_fingerprint=check_fingerprint)

    @classmethod
    def class_name(cls) -> str:
        return "BGELlamaVectorStore"

    @property
    def client(self) -> BgeStore:
        return self._lazy.store

    # --------------------------------------------------------------------------------- writes
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        if not nodes:
            return []
        records = []
        for i, node in enumerate(nodes):
            if node.embedding is None:
                raise InputError(f"node {i} (id {node.node_id!r}) has no embedding; embed nodes before adding")
            records.append(Record(
                id=node.node_id,
                vector=node.embedding,
                text=node.get_content(metadata_mode=MetadataMode.NONE),
                metadata=node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata),
            ))
        coll = self._lazy.get(dim=len(records[0].vector))
        assert coll is not None
        coll.upsert(records)
        return [r.id for r in records]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        coll = self._lazy.get()
        if coll is not None:
            coll.delete(where={"ref_doc_id": ref_doc_id})

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        coll = self._lazy.get()
        if coll is None:
            return
        where = to_bge_filter(filters)
        if node_ids is not None and where is not None:
            node_ids = [r.id for r in coll.fetch(node_ids) if flt.matches(flt.parse(where), r.metadata)]
            where = None
        if node_ids is None and where is None:
            raise InputError("delete_nodes needs node_ids or filters; use clear() to remove everything")
        coll.delete(node_ids, where=where)

    def clear(self) -> None:
        """Drop the collection; the next add creates it again."""
        self._lazy.store.drop(self.collection_name)
        self._lazy = LazyCollection(self._lazy.store, self.collection_name, self._lazy.embedder,
                                    check_fingerprint=self._lazy.check_fingerprint)

    # ---------------------------------------------------------------------------------- reads
    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        coll = self._lazy.get()
        if coll is None:
            return []
        where = to_bge_filter(filters)
        if node_ids is not None:
            node = flt.parse(where)
            records = [r for r in coll.fetch(node_ids) if flt.matches(node, r.metadata)]
        else:
            records = [r for page in coll.scroll(where=where) for r in page]
        return [metadata_dict_to_node(dict(r.metadata), r.text) for r in records]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top ``similarity_top_k`` nodes by cosine similarity, with the query's filters,
        ``doc_ids`` (source documents) and ``node_ids`` (candidate nodes) applied."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise InputError(f"query mode {query.mode.value!r} is not supported; use the default mode")
        if query.query_embedding is None:
            raise InputError("the query has no embedding (this store searches by vector)")
        coll = self._lazy.get()
        if coll is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        where = to_bge_filter(query.filters)
        if query.doc_ids:
            doc_clause = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            where = {"$and": [where, doc_clause]} if where else doc_clause
        k = query.similarity_top_k
        if query.node_ids:
            # Candidates named by id: score exactly those (no id filter exists on every database).
            # An empty list means no restriction: VectorStoreIndex passes [] for stores with text.
            node = flt.parse(where)
            qv = check_vector(query.query_embedding, coll.dim, "query embedding")
            cands = [r for r in coll.fetch(query.node_ids, with_vectors=True) if flt.matches(node, r.metadata)]
            scored = sorted(((float(np.dot(qv, r.vector)), r) for r in cands), key=lambda p: -p[0])[:k]
            pairs: list[tuple[float, Any]] = scored
        else:
            pairs = [(h.score, h) for h in coll.search(query.query_embedding, k, where=where)]
        nodes = [metadata_dict_to_node(dict(h.metadata), h.text) for _, h in pairs]
        return VectorStoreQueryResult(nodes=nodes, similarities=[s for s, _ in pairs],
                                      ids=[h.id for _, h in pairs])

    # ---------------------------------------------------------------------------------- async
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(self, node_ids: list[str] | None = None,
                            filters: MetadataFilters | None = None, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(self, node_ids: list[str] | None = None,
                         filters: MetadataFilters | None = None) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)
