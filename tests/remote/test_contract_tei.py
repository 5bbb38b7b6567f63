"""TEIEmbedder passes the embedder contract against the TEI fake (which runs the real MiniLM
weights): once counting tokens with the model's tokenizer found on this machine, once with the
server's /tokenize only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bge_vdb.embedder import Embedder
from tests.fakes.tei_server import FakeTEI, fake_tei
from tests.remote.conftest import FAST_RETRY
from tests.remote.suite import EmbedderContract, Factory


class TestTEIWithLocalTokenizer(EmbedderContract):
    @pytest.fixture
    def make_embedder(self, tei: FakeTEI) -> Iterator[Factory]:
        made: list[Any] = []

        def make(**options: Any) -> Any:
            made.append(Embedder(tei.url, retry=FAST_RETRY, **options))
            return made[-1]

        yield make
        for emb in made:
            emb.close()

    @pytest.fixture
    def reference(self, minilm_local: Embedder) -> Embedder:
        return minilm_local

    def test_counts_with_the_packaged_tokenizer(self, embedder: Any, tei: FakeTEI) -> None:
        assert "package" in embedder.tokens_from
        embedder.count_tokens(["no request for this"])
        assert tei.requests["POST /tokenize"] == 0


class TestTEIWithServerTokenizer(EmbedderContract):
    """A model id no tokenizer on this machine belongs to: counts come from /tokenize."""

    @pytest.fixture
    def served(self, minilm_dir: Path) -> Iterator[FakeTEI]:
        with fake_tei(minilm_dir, model_id="acme/served-minilm", max_client_batch_size=8) as server:
            yield server

    @pytest.fixture
    def make_embedder(self, served: FakeTEI) -> Iterator[Factory]:
        made: list[Any] = []

        def make(**options: Any) -> Any:
            made.append(Embedder(served.url, retry=FAST_RETRY, max_length=256, **options))
            return made[-1]

        yield make
        for emb in made:
            emb.close()

    @pytest.fixture
    def reference(self, minilm_local: Embedder) -> Embedder:
        return minilm_local

    def test_counts_with_the_tokenize_endpoint(self, embedder: Any, served: FakeTEI) -> None:
        assert "tokenize endpoint" in embedder.tokens_from
        assert embedder.count_tokens(["one", "two words"]) == [3, 4]
        assert served.requests["POST /tokenize"] >= 1
