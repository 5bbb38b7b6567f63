"""LangChain reranking: a document compressor backed by :class:`bge_vdb.Reranker`.

``BGERerankCompressor`` is a ``BaseDocumentCompressor``: put it in a
``ContextualCompressionRetriever`` over any retriever (a ``BGEVectorStore.as_retriever(k=50)``
for instance) and the retrieved documents come back reordered by the cross-encoder, the best
``top_n`` only, each with its reranker score in ``metadata["relevance_score"]`` (the key
LangChain's own rerankers use; ``score_key=`` changes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import MissingExtra
from ..rerank_search import check_top_n, rerank_texts, resolve_reranker

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("langchain-core", "langchain", "bge_vdb.integrations.langchain_rerank") from None

__all__ = ["BGERerankCompressor"]


class BGERerankCompressor(BaseDocumentCompressor):
    """A LangChain document compressor that reranks with a cross-encoder (a BAAI bge-reranker).

    ``BGERerankCompressor(model="BAAI/bge-reranker-base", top_n=3, backend=..., ...)`` builds a
    :class:`bge_vdb.Reranker` (keyword options go to it); ``BGERerankCompressor(reranker=r)``
    wraps one you already have.

    Args:
        model: reranker preset id, local directory or server URL (when ``reranker`` is not given).
        reranker: an existing :class:`bge_vdb.Reranker`.
        top_n: how many documents to keep (3, as LangChain's own rerankers).
        score_key: the metadata key that receives the reranker score (``"relevance_score"``).
        **reranker_options: options of the new Reranker (``backend``, ``precision``, ...).

    ``compress_documents`` returns new documents (the input is not modified), best first; a
    document with empty ``page_content`` is an :class:`~bge_vdb.errors.InputError` naming it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reranker: Any
    top_n: int = 3
    score_key: str = "relevance_score"

    def __init__(self, model: str | None = None, *, reranker: Any = None, top_n: int = 3,
                 score_key: str = "relevance_score", **reranker_options: Any) -> None:
        check_top_n(top_n)
        if not isinstance(score_key, str) or not score_key:
            raise TypeError(f"score_key must be a non-empty string, got {score_key!r}")
        resolved = resolve_reranker(model, reranker, reranker_options)
        super().__init__(reranker=resolved, top_n=top_n, score_key=score_key)  # type: ignore[call-arg]

    def __repr__(self) -> str:
        return f"BGERerankCompressor({self.reranker!r}, top_n={self.top_n})"

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """The best ``top_n`` of ``documents`` for ``query`` by the reranker, best first, each
        a copy with the score in ``metadata[score_key]``."""
        docs = list(documents)
        if not docs:
            return []
        labels = [f"document {i}" + (f" (id {d.id!r})" if d.id else "") for i, d in enumerate(docs)]
        ranked = rerank_texts(self.reranker, query, [d.page_content for d in docs], labels, self.top_n)
        return [Document(id=docs[i].id, page_content=docs[i].page_content,
                         metadata={**docs[i].metadata, self.score_key: score})
                for i, score in ranked]
