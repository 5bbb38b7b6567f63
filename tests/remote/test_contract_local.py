"""The local Embedder passes the embedder contract (the reference every other one is held to)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bge_vdb.embedder import Embedder
from tests.remote.suite import EmbedderContract, Factory


class TestLocalEmbedder(EmbedderContract):
    @pytest.fixture
    def make_embedder(self, minilm_dir: Path) -> Factory:
        def make(**options: Any) -> Embedder:
            return Embedder(str(minilm_dir), precision="fp32", **options)

        return make

    @pytest.fixture
    def reference(self, minilm_local: Embedder) -> Embedder:
        return minilm_local
