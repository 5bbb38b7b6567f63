"""LangChain and LlamaIndex integrations.

The classes live in :mod:`bge_vdb.integrations.langchain` (extra ``langchain``) and
:mod:`bge_vdb.integrations.llamaindex` (extra ``llamaindex``); their rerankers beside them, in
``langchain_rerank`` and ``llamaindex_rerank``. Importing this package imports
neither framework; the first access to a class imports its module, and a missing framework
raises :class:`~bge_vdb.errors.MissingExtra` naming the ``pip install`` to run.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..retry import call_with_retry
from ..store import Collection, VectorStore, connect
from ..types import EmbedderProtocol

_LAZY = {
    "BGEEmbeddings": "bge_vdb.integrations.langchain",
    "BGEVectorStore": "bge_vdb.integrations.langchain",
    "BGEEmbedding": "bge_vdb.integrations.llamaindex",
    "BGELlamaVectorStore": "bge_vdb.integrations.llamaindex",
    "BGERerankCompressor": "bge_vdb.integrations.langchain_rerank",
    "BGERerankPostprocessor": "bge_vdb.integrations.llamaindex_rerank",
}

__all__ = ["BGEEmbedding", "BGEEmbeddings", "BGELlamaVectorStore", "BGERerankCompressor",
           "BGERerankPostprocessor", "BGEVectorStore"]

if TYPE_CHECKING:
    from .langchain import BGEEmbeddings, BGEVectorStore
    from .langchain_rerank import BGERerankCompressor
    from .llamaindex import BGEEmbedding, BGELlamaVectorStore
    from .llamaindex_rerank import BGERerankPostprocessor


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bge_vdb.integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def resolve_embedder(model: str | None, embedder: EmbedderProtocol | None,
                     options: Mapping[str, Any]) -> EmbedderProtocol:
    """The embedder to wrap: the one given, or a new one for ``model`` (a preset id, a directory,
    or a ``tei+``/``openai+`` URL, which gives a remote embedder)."""
    if embedder is not None:
        if model is not None or options:
            raise ConfigError("pass either embedder=... or model=... (with Embedder options), not both")
        return embedder
    from ..embedder import Embedder  # imported on use: it pulls in tokenizers and a backend
    from ..models import DEFAULT_MODEL

    made: EmbedderProtocol = Embedder(model or DEFAULT_MODEL, **options)
    return made


class LazyCollection:
    """A collection opened when first needed and created on the first write.

    Framework stores receive vectors from any embedding object, so the dimension is known for
    sure only when the first vectors arrive; reads before that see an empty store rather than
    forcing a probe embedding. With a bge-vdb embedder the collection is opened with it, so its
    fingerprint is stored and a collection written by another model is refused.
    """

    def __init__(self, store: VectorStore | str, name: str, embedder: EmbedderProtocol | None = None,
                 *, check_fingerprint: bool = True) -> None:
        self.store = connect(store) if isinstance(store, str) else store
        if not isinstance(self.store, VectorStore):
            raise ConfigError(f"store must be a bge_vdb VectorStore or a URL, got {type(store).__name__}")
        self.name = name
        self.embedder = embedder
        self.check_fingerprint = check_fingerprint
        self._collection: Collection | None = None
        self._lock = threading.Lock()

    def get(self, dim: int | None = None) -> Collection | None:
        """The open collection; None when it does not exist and ``dim`` is None (nothing to create)."""
        if self._collection is not None:
            return self._collection
        with self._lock:
            if self._collection is None:
                exists = call_with_retry(self.store.describe_collection, self.name,
                                         policy=self.store.retry_policy) is not None
                if dim is None and not exists:
                    return None  # reads before the first write see an empty store
                self._collection = self.store.collection(
                    self.name, embedder=self.embedder, dim=dim if self.embedder is None else None,
                    check_fingerprint=self.check_fingerprint,
                )
            return self._collection
