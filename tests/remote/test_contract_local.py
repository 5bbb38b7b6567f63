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
        made: dict[str, Embedder] = {}  # one per options within a test: a Hypothesis example
        # each would load the weights again (seconds each) and prove nothing more

        def make(**options: Any) -> Embedder:
            key = repr(sorted(options.items()))
            if key not in made:
                made[key] = Embedder(str(minilm_dir), precision="fp32", **options)
            return made[key]

        return make

    @pytest.fixture
    def reference(self, minilm_local: Embedder) -> Embedder:
        return minilm_local
