"""Remote embedders: the model runs on a server, bge-vdb calls it.

``Embedder("tei+http://host:8080")`` or ``Embedder("openai+http://host:7997/v1?model=NAME")``
returns one of these (see :meth:`bge_vdb.Embedder.__new__`), and so does :func:`remote_embedder`;
the URL also goes wherever a model id goes (``--model``, ``BGEEmbeddings(model=...)``, Ray).

* :class:`~bge_vdb.remote.tei.TEIEmbedder`: Hugging Face Text Embeddings Inference and the
  Inference Endpoints that run it (``tei+http(s)://``);
* :class:`~bge_vdb.remote.openai.OpenAIEmbedder`: the OpenAI embeddings API as Infinity, vLLM,
  Ollama, LiteLLM and OpenAI serve it (``openai+http(s)://``).

Both implement :class:`~bge_vdb.types.EmbedderProtocol`. They are not subclasses of the local
``Embedder``: they have no weights, backend or model directory. Needs the ``remote`` extra (httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .options import URL_OPTIONS, is_remote_url, parse_remote_url

if TYPE_CHECKING:
    from .base import RemoteEmbedder
    from .openai import OpenAIEmbedder
    from .tei import TEIEmbedder

__all__ = ["URL_OPTIONS", "OpenAIEmbedder", "RemoteEmbedder", "TEIEmbedder", "is_remote_url",
           "remote_embedder"]


def remote_embedder(url: str, **options: Any) -> RemoteEmbedder:
    """The remote embedder a ``tei+...`` or ``openai+...`` URL names, with ``options``."""
    kind = parse_remote_url(url).kind
    if kind == "tei":
        from .tei import TEIEmbedder

        return TEIEmbedder(url, **options)
    from .openai import OpenAIEmbedder

    return OpenAIEmbedder(url, **options)


def __getattr__(name: str) -> Any:
    if name == "TEIEmbedder":
        from .tei import TEIEmbedder

        return TEIEmbedder
    if name == "OpenAIEmbedder":
        from .openai import OpenAIEmbedder

        return OpenAIEmbedder
    if name == "RemoteEmbedder":
        from .base import RemoteEmbedder

        return RemoteEmbedder
    raise AttributeError(f"module 'bge_vdb.remote' has no attribute {name!r}")
