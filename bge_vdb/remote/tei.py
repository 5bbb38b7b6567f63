"""Hugging Face Text Embeddings Inference (TEI), and Inference Endpoints that run it.

``tei+http(s)://host:port[/prefix]``. TEI's native API (docs/openapi.json of
huggingface/text-embeddings-inference):

* ``GET /info``: ``model_id``, ``model_sha``, ``model_type.embedding.pooling``,
  ``max_input_length``, ``max_client_batch_size``, ``max_batch_tokens``, ``version``;
* ``POST /embed`` ``{"inputs": [...], "normalize": bool, "truncate": true}`` -> ``[[float]]``;
  the batch must hold at most ``max_client_batch_size`` inputs (else 422 ``Validation``);
* ``POST /tokenize`` ``{"inputs": [...], "add_special_tokens": bool}`` -> per input, tokens with
  UTF-8 byte ``start``/``stop`` (None for special tokens);
* errors ``{"error": "...", "error_type": "Validation|Tokenizer|Backend|Overloaded|Empty|Unhealthy"}``
  with 400/413/422/424/429/503; 401 without the right bearer token (Inference Endpoints:
  ``HF_TOKEN`` or ``token=``).

``truncate`` is always sent true: a text over the limit is embedded from its first
``max_input_length`` tokens, as the local Embedder does, and counted by this client.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, EmbedderServerError
from .base import RemoteEmbedder, ServerInfo
from .http import RequestRefused
from .options import check_options


class TEIEmbedder(RemoteEmbedder):
    """A Text Embeddings Inference server. Options: see :class:`RemoteEmbedder`; ``token``
    (default: the ``HF_TOKEN`` variable) is sent as a bearer token, never shown or logged."""

    kind: ClassVar[str] = "tei"
    secret_env: ClassVar[str] = "HF_TOKEN"
    _secret_arg: ClassVar[str] = "token"

    def __init__(self, url: str, *, token: str | None = None, **options: Any) -> None:
        check_options(options, "token")
        super().__init__(url, secret=token, **options)

    def _describe(self) -> ServerInfo:
        try:
            info = self.client.get("/info")
        except RequestRefused as exc:
            raise EmbedderServerError(f"{self.base_url} does not answer as TEI does (GET /info: HTTP "
                                      f"{exc.status}); is it a TEI server? {exc.reason}") from None
        if not isinstance(info, Mapping) or not isinstance(info.get("model_id"), str):
            raise EmbedderServerError(f"{self.base_url}/info has no model_id: not a TEI server?")
        model_type = info.get("model_type")
        embedding = model_type.get("embedding") if isinstance(model_type, Mapping) else None
        if not isinstance(embedding, Mapping):
            kind = next(iter(model_type), "unknown") if isinstance(model_type, Mapping) else model_type
            raise ConfigError(f"{self.base_url} serves a {kind} model ({info['model_id']}), not an "
                              f"embedding model")
        if self.model is not None and self.model not in (info["model_id"], info.get("served_model_name")):
            raise ConfigError(f"model={self.model!r}, but {self.base_url} serves {info['model_id']!r}")
        return ServerInfo(
            model=info["model_id"], revision=_opt_str(info.get("model_sha")),
            pooling=_opt_str(embedding.get("pooling")), max_length=_opt_int(info.get("max_input_length")),
            max_batch=_opt_int(info.get("max_client_batch_size")),
            max_batch_tokens=_opt_int(info.get("max_batch_tokens")), tokenize=True,
            version=_opt_str(info.get("version")))

    def _request(self, texts: list[str], stop: threading.Event) -> np.ndarray:
        body = {"inputs": texts, "normalize": self.normalize, "truncate": True}
        data = self.client.post("/embed", body, stop=stop)
        if not isinstance(data, list):
            raise EmbedderServerError(f"{self.base_url}/embed answered {type(data).__name__}, not a list")
        return np.asarray(data, dtype=np.float32)

    def _tokenize(self, texts: list[str], special: bool) -> list[list[tuple[int, int] | None]]:
        size = self.server.max_batch or 32
        out: list[list[tuple[int, int] | None]] = []
        for start in range(0, len(texts), size):
            part = texts[start : start + size]
            data = self.client.post("/tokenize", {"inputs": part, "add_special_tokens": special})
            if not isinstance(data, list) or len(data) != len(part):
                raise EmbedderServerError(f"{self.base_url}/tokenize answered {len(data) if isinstance(data, list) else data!r} "
                                          f"token lists for {len(part)} texts")
            for tokens in data:
                out.append([None if t.get("special") or t.get("start") is None else (int(t["start"]), int(t["stop"]))
                            for t in tokens])
        return out


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
