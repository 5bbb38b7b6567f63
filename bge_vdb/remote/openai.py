"""OpenAI-compatible embedding servers: Infinity, vLLM, Ollama, LiteLLM, OpenAI itself.

``openai+http(s)://host:port/v1?model=NAME``: the part before ``?`` is the API's base URL (the
one OpenAI's own client takes), ``model`` the served model's name. The API:

* ``GET /models`` -> ``{"data": [{"id": NAME, ...}]}``: checked once to hold ``model`` (a server
  without this route is trusted);
* ``POST /embeddings`` ``{"model": NAME, "input": [...], "encoding_format": "base64"}`` ->
  ``{"data": [{"index": i, "embedding": "<base64 of little-endian float32>"}], ...}``; base64 is
  about 4x smaller than JSON floats and decodes without parsing; a server that answers with
  float lists anyway is read too;
* errors ``{"error": {"message": ..., "type": ..., "code": ...}}``; the API key (``api_key=`` or
  the ``OPENAI_API_KEY`` variable) is sent as a bearer token, never shown or logged.

These servers say nothing of pooling, token limits or tokenizers: those come from the preset
(``model`` or ``preset=``) or the local tokenizer (``tokenizer=``), and vectors are normalized
here when the server does not.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, EmbedderServerError
from .base import RemoteEmbedder, ServerInfo
from .http import RequestRefused
from .options import check_options

MAX_INPUTS = 2048  # OpenAI's limit of inputs per request


class OpenAIEmbedder(RemoteEmbedder):
    """An OpenAI-compatible ``/embeddings`` server. Options: see :class:`RemoteEmbedder`;
    ``model`` is required (in the URL or as an argument)."""

    kind: ClassVar[str] = "openai"
    secret_env: ClassVar[str] = "OPENAI_API_KEY"
    _secret_arg: ClassVar[str] = "api_key"

    def __init__(self, url: str, *, api_key: str | None = None, **options: Any) -> None:
        check_options(options, "api_key")
        super().__init__(url, secret=api_key, **options)
        if not self.model:
            raise ConfigError(f"an openai+ URL needs the served model's name: {self.url}?model=NAME")

    def _describe(self) -> ServerInfo:
        assert self.model is not None
        try:
            listing = self.client.get("/models")
        except RequestRefused as exc:
            if exc.status not in (404, 405):
                raise
            listing = None  # a server without the route: trusted to serve the model asked for
        if listing is not None:
            entries = listing.get("data") if isinstance(listing, Mapping) else None
            if not isinstance(entries, list):
                raise EmbedderServerError(f"{self.base_url}/models answered without a 'data' list: "
                                          f"not an OpenAI-compatible server?")
            names = [e.get("id") for e in entries if isinstance(e, Mapping)]
            if self.model not in names:
                raise ConfigError(f"{self.base_url} does not serve model {self.model!r}; it serves "
                                  f"{', '.join(repr(n) for n in names) or 'nothing'}")
        return ServerInfo(model=self.model, max_batch=MAX_INPUTS)

    def _request(self, texts: list[str], stop: threading.Event) -> np.ndarray:
        body = {"model": self.model, "input": texts, "encoding_format": "base64"}
        data = self.client.post("/embeddings", body, stop=stop)
        items = data.get("data") if isinstance(data, Mapping) else None
        if not isinstance(items, list) or len(items) != len(texts):
            got = len(items) if isinstance(items, list) else "no"
            raise EmbedderServerError(f"{self.base_url}/embeddings answered {got} embeddings for {len(texts)} texts")
        rows: list[np.ndarray | None] = [None] * len(texts)
        for pos, item in enumerate(items):
            index = item.get("index", pos) if isinstance(item, Mapping) else None
            if not isinstance(index, int) or not 0 <= index < len(texts) or rows[index] is not None:
                raise EmbedderServerError(f"{self.base_url}/embeddings answered a bad or repeated index {index!r}")
            rows[index] = _decode(item.get("embedding"), self.base_url)
        return np.stack([r for r in rows if r is not None])


def _decode(value: Any, where: str) -> np.ndarray:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise EmbedderServerError(f"{where}/embeddings answered an embedding that is not base64") from None
        if len(raw) % 4:
            raise EmbedderServerError(f"{where}/embeddings answered {len(raw)} bytes, not float32s")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float32)
    raise EmbedderServerError(f"{where}/embeddings answered an embedding of type {type(value).__name__}")
