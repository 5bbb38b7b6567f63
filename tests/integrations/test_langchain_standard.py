"""LangChain's own standard suites, run as they are (subclassed, not copied or trimmed).

``VectorStoreIntegrationTests`` runs once per database; its ``vectorstore`` fixture hands each
test an empty ``BGEVectorStore`` over a fresh empty store, with the suite's own 6-d fake
embedding (so nothing here depends on our embedder).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from bge_vdb.integrations.langchain import BGEVectorStore
from tests.integrations.conftest import STORE_NAMES, open_store


class TestBGEVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture(params=STORE_NAMES)
    def vectorstore(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BGEVectorStore]:  # type: ignore[override]
        for store in open_store(request.param, tmp_path):
            yield BGEVectorStore(store, collection_name="lc_standard", embedding=self.get_embeddings())
