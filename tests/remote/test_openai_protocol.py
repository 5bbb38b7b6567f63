"""The OpenAI embeddings API against a real Infinity server: the served model checked, base64
vectors, the API key sent and never shown, refused keys, and the wire format's decoding."""

from __future__ import annotations

import base64
import logging
from typing import Any

import numpy as np
import pytest

from bge_vdb.embedder import Embedder
from bge_vdb.errors import ConfigError, EmbedderServerError
from bge_vdb.remote.openai import _decode
from tests.remote.conftest import FAST_RETRY, INFINITY_KEY, MINILM_ID
from tests.remote.infinity import InfinityServer

pytestmark = pytest.mark.timeout(1800)  # the first test may create Infinity's virtualenv


def test_a_model_the_server_does_not_serve_is_refused(infinity_server: InfinityServer) -> None:
    emb = Embedder(infinity_server.url("bge-nonexistent"), api_key=INFINITY_KEY)
    with pytest.raises(ConfigError, match="does not serve model 'bge-nonexistent'") as info:
        emb.embed_documents(["x"])
    assert MINILM_ID in str(info.value)  # says what it does serve


def test_the_key_comes_from_the_environment_and_never_shows(infinity_server: InfinityServer,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", INFINITY_KEY)
    with Embedder(infinity_server.url(), retry=FAST_RETRY) as emb:
        assert emb.embed_documents(["the key is in the environment"]).shape == (1, 384)
        shown = repr(emb) + str(emb.fingerprint) + caplog.text
    assert INFINITY_KEY not in shown


@pytest.mark.parametrize("key", [None, "a-wrong-key"])
def test_a_missing_or_wrong_key_is_a_config_error(infinity_server: InfinityServer, key: str | None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="HTTP 401") as info:
        Embedder(infinity_server.url(), api_key=key).load()
    assert "OPENAI_API_KEY" in str(info.value)
    if key:
        assert key not in str(info.value)


def test_vectors_travel_as_base64(infinity_server: InfinityServer, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = Embedder(infinity_server.url(), api_key=INFINITY_KEY)
    bodies: list[Any] = []
    answers: list[Any] = []
    post = emb.client.post

    def spy(path: str, body: Any, **options: Any) -> Any:  # records, then calls the real client
        bodies.append(body)
        answers.append(post(path, body, **options))
        return answers[-1]

    monkeypatch.setattr(emb.client, "post", spy)
    vec = emb.embed_documents(["base64 please"])
    assert bodies[-1]["encoding_format"] == "base64" and bodies[-1]["model"] == MINILM_ID
    assert isinstance(answers[-1]["data"][0]["embedding"], str)
    assert vec.shape == (1, 384) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5


def test_decoding_base64_and_floats() -> None:
    values = np.array([0.5, -1.25, 3.0], dtype="<f4")
    np.testing.assert_array_equal(_decode(base64.b64encode(values.tobytes()).decode(), "x"), values)
    np.testing.assert_array_equal(_decode([0.5, -1.25, 3.0], "x"), values)
    with pytest.raises(EmbedderServerError, match="not base64"):
        _decode("not base64!!", "x")
    with pytest.raises(EmbedderServerError, match="not float32s"):
        _decode(base64.b64encode(b"12345").decode(), "x")


def test_an_openai_url_needs_a_model() -> None:
    with pytest.raises(ConfigError, match=r"\?model=NAME"):
        Embedder("openai+http://127.0.0.1:9/v1")
