"""LlamaIndex reranking: a node postprocessor backed by :class:`bge_vdb.Reranker`.

``BGERerankPostprocessor`` goes in ``node_postprocessors=[...]`` of a query engine (or is called
on retrieved nodes directly): the nodes come back reordered by the cross-encoder, the best
``top_n`` only, each ``NodeWithScore.score`` set to its reranker score.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, MissingExtra
from ..rerank_search import check_top_n, rerank_texts, resolve_reranker

try:
    from llama_index.core.bridge.pydantic import Field
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("llama-index-core", "llamaindex", "bge_vdb.integrations.llamaindex_rerank") from None

__all__ = ["BGERerankPostprocessor"]


class BGERerankPostprocessor(BaseNodePostprocessor):
    """A LlamaIndex node postprocessor that reranks with a cross-encoder (a BAAI bge-reranker).

    ``BGERerankPostprocessor(model="BAAI/bge-reranker-base", top_n=2, backend=..., ...)``
    builds a :class:`bge_vdb.Reranker` (keyword options go to it);
    ``BGERerankPostprocessor(reranker=r)`` wraps one you already have.

    Args:
        model: reranker preset id, local directory or server URL (when ``reranker`` is not given).
        reranker: an existing :class:`bge_vdb.Reranker`.
        top_n: how many nodes to keep (2, as LlamaIndex's own rerankers).
        metadata_mode: what of a node is read with the query: ``MetadataMode.EMBED`` (the
            default, as LlamaIndex's rerankers: the text with the metadata the node shows its
            embedding model) or ``MetadataMode.NONE`` (the text alone).
        **reranker_options: options of the new Reranker (``backend``, ``precision``, ...).

    The nodes returned are new ``NodeWithScore`` objects around the same nodes (the input
    scores are not modified), best first; a node with no text is an
    :class:`~bge_vdb.errors.InputError` naming it, and so is a call without a query.
    """

    reranker: Any = Field(description="The bge_vdb.Reranker that scores (query, node text) pairs.")
    top_n: int = Field(default=2, description="Number of nodes to return, best first.")
    metadata_mode: MetadataMode = Field(default=MetadataMode.EMBED,
                                        description="What of a node the reranker reads.")

    def __init__(self, model: str | None = None, *, reranker: Any = None, top_n: int = 2,
                 metadata_mode: MetadataMode = MetadataMode.EMBED, **reranker_options: Any) -> None:
        check_top_n(top_n)
        resolved = resolve_reranker(model, reranker, reranker_options)
        super().__init__(reranker=resolved, top_n=top_n, metadata_mode=metadata_mode)  # type: ignore[call-arg]

    @classmethod
    def class_name(cls) -> str:
        return "BGERerankPostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise InputError("reranking needs the query: pass query_bundle= or query_str=")
        if not nodes:
            return []
        texts = [n.node.get_content(metadata_mode=self.metadata_mode) for n in nodes]
        labels = [f"node {i} (id {n.node.node_id!r})" for i, n in enumerate(nodes)]
        name = getattr(self.reranker, "model_id", type(self.reranker).__name__)
        with self.callback_manager.event(CBEventType.RERANKING, payload={
            EventPayload.NODES: nodes, EventPayload.MODEL_NAME: name,
            EventPayload.QUERY_STR: query_bundle.query_str, EventPayload.TOP_K: self.top_n,
        }) as event:
            ranked = rerank_texts(self.reranker, query_bundle.query_str, texts, labels, self.top_n)
            out = [NodeWithScore(node=nodes[i].node, score=score) for i, score in ranked]
            event.on_end(payload={EventPayload.NODES: out})
        return out
