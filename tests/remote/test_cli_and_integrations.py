"""The URL goes wherever a model id goes: ``bge-vdb sync/search/embed --model tei+http://...``
(against the TEI fake), and ``BGEEmbeddings`` / ``BGEEmbedding`` / ``BGEVectorStore`` with
``model="openai+http://..."`` (against the real Infinity server; LangChain's standard embeddings
suite runs on it as it is)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from bge_vdb import cli
from bge_vdb.embedder import Embedder
from bge_vdb.integrations.langchain import BGEEmbeddings, BGEVectorStore
from bge_vdb.remote.openai import OpenAIEmbedder
from tests.fakes.tei_server import FakeTEI, fake_tei
from tests.remote.conftest import INFINITY_KEY, MINILM_ID
from tests.remote.infinity import InfinityServer

pytestmark = pytest.mark.timeout(1800)  # the Infinity tests may create its virtualenv first
SECRET = "hf_cli-secret-0123456789"
TEXTS = [f"document {i} about {topic}" for i, topic in enumerate(
    ["vector databases", "coffee in Zürich", "river fishing", "北京的天气", "embedding servers", "the lazy dog"])]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_sync_search_and_embed_through_tei(tmp_path: Path, minilm_dir: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    src, url = tmp_path / "docs.jsonl", f"qdrant://{tmp_path / 'q'}"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with fake_tei(minilm_dir, model_id=MINILM_ID, api_key=SECRET, max_client_batch_size=4) as tei:
        code, out, err = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", tei.url, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert (report["added"], report["embedded"]) == (len(TEXTS), len(TEXTS))
        assert report["tokens"] > 0  # counted with the model's tokenizer

        code, out, err = run(capsys, "sync", str(src), "--to", url, "--collection", "c", "--model", tei.url, "--json")
        assert code == 0 and json.loads(out)["embedded"] == 0  # a re-run embeds nothing

        code, out, err = run(capsys, "search", url, "c", "where is coffee served?", "--model", tei.url, "-k", "1")
        assert code == 0 and " d1 " in out, out + err

        code, out, err = run(capsys, "embed", tei.url, "hello", "world")
        assert code == 0 and "shape (2, 384) float32" in out and "served by" in out
        assert SECRET not in out + err
        assert f"Bearer {SECRET}" in tei.seen_auth


def test_cli_refuses_a_bad_remote_option_before_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    code, _, err = run(capsys, "sync", str(src), "--to", f"qdrant://{tmp_path / 'q'}", "--collection", "c",
                       "--model", "tei+http://127.0.0.1:9?concurency=2")
    assert code == 2 and "unknown option 'concurency'" in err
    assert not (tmp_path / "q").exists()  # nothing created


def test_cli_precision_is_refused_for_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "embed", "tei+http://127.0.0.1:9", "x", "--precision", "bf16")
    assert code == 2 and "precision='bf16' is an option of the local Embedder" in err


# --- LangChain / LlamaIndex against Infinity ------------------------------------------------------

class TestRemoteBGEEmbeddingsStandard(EmbeddingsIntegrationTests):
    """LangChain's own integration suite, on BGEEmbeddings(model="openai+http://...")."""

    url: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _server(self, infinity_server: InfinityServer) -> None:
        type(self).url = infinity_server.url()

    @property
    def embeddings_class(self) -> type[BGEEmbeddings]:
        return BGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self.url, "api_key": INFINITY_KEY}


def test_langchain_embeddings_and_store_with_a_server(infinity_server: InfinityServer, tmp_path: Path,
                                                      minilm_local: Embedder) -> None:
    emb = BGEEmbeddings(model=infinity_server.url(), api_key=INFINITY_KEY)
    assert isinstance(emb.embedder, OpenAIEmbedder) and emb.dim == 384
    np.testing.assert_allclose(emb.embed_documents(TEXTS), minilm_local.embed_documents(TEXTS), atol=1e-5)
    store = BGEVectorStore(f"qdrant://{tmp_path / 'q'}", collection_name="lc", embedding=emb)
    store.add_texts(TEXTS, ids=[f"t{i}" for i in range(len(TEXTS))])
    assert store.similarity_search("weather in Beijing", k=1)[0].id == "t3"
    assert INFINITY_KEY not in repr(emb)


def test_llamaindex_embedding_with_a_server(infinity_server: InfinityServer, minilm_local: Embedder) -> None:
    from bge_vdb.integrations.llamaindex import BGEEmbedding

    emb = BGEEmbedding(model=infinity_server.url(), api_key=INFINITY_KEY)
    got = np.asarray(emb.get_text_embedding_batch(TEXTS))
    np.testing.assert_allclose(got, minilm_local.embed_documents(TEXTS), atol=1e-5)
    query = np.asarray(emb.get_query_embedding("coffee"))
    np.testing.assert_allclose(query, minilm_local.embed_query("coffee"), atol=1e-5)


def test_tei_fake_through_langchain(minilm_dir: Path, minilm_local: Embedder) -> None:
    with fake_tei(minilm_dir, model_id=MINILM_ID) as tei:
        emb = BGEEmbeddings(model=tei.url)
        np.testing.assert_allclose(emb.embed_query("a query"), minilm_local.embed_query("a query"), atol=1e-5)
        assert isinstance(tei, FakeTEI) and tei.requests["POST /embed"] == 1
