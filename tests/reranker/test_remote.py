"""Remote rerankers against the local Reranker on the same weights: the TEI wire-level fake
(tests/fakes/tei_server.py, scores from sentence-transformers' CrossEncoder); the real
Infinity server is in test_remote_infinity.py.

Parity bound: 1e-5 (the servers run the same fp32 weights). Pairs fit in the model's limit:
the servers cut long pairs longest-first, the local Reranker as FlagEmbedding does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import ConfigError, Hit, InputError, Reranker
from bge_vdb.errors import EmbedderServerError, TextsRefused
from bge_vdb.remote.reranker import RemoteReranker
from bge_vdb.reranker import RerankerProtocol
from bge_vdb.retry import RetryPolicy
from tests.fakes.tei_server import FakeTEI, fake_tei
from tests.reranker.conftest import seeded_pairs

TEI_TOKEN = "tei-rerank-token-Vb4"


def no_sleep(_seconds: float) -> None:
    """A retry policy's sleep that does not sleep."""


FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, max_wait=0.05, max_total=5.0, sleep=no_sleep)


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Passages under three queries, so one score call makes several /rerank requests."""
    queries = ["what is the capital of france", "who eats bamboo", "北京"]
    return [(queries[i % 3], passage) for i, (_, passage) in enumerate(seeded_pairs(n, seed=seed))]


_LOCAL: dict[tuple[str, bool], Reranker] = {}


def _local(path: Path, normalize: bool = False) -> Reranker:
    key = (str(path), normalize)
    if key not in _LOCAL:
        _LOCAL[key] = Reranker(path, backend="torch", precision="fp32", normalize=normalize)
    return _LOCAL[key]


@pytest.fixture(scope="module")
def tei_bert(bert_ce: Path) -> Iterator[FakeTEI]:
    with fake_tei(bert_ce, model_id="tiny/bert-reranker", max_client_batch_size=8,
                  api_key=TEI_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def tei_xlmr(xlmr_ce: Path) -> Iterator[FakeTEI]:
    with fake_tei(xlmr_ce, model_id="tiny/xlmr-reranker", max_client_batch_size=8) as server:
        yield server


# ------------------------------------------------------------------------------------- TEI


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "sigmoid"])
def test_tei_scores_equal_the_local_model(tei_bert: FakeTEI, tei_xlmr: FakeTEI, bert_ce: Path, xlmr_ce: Path,
                                          normalize: bool) -> None:
    pairs = _pairs(40, seed=4)
    for server, path in ((tei_bert, bert_ce), (tei_xlmr, xlmr_ce)):
        token = TEI_TOKEN if server is tei_bert else None
        before = len(server.reranked)
        remote = Reranker(server.url, token=token, normalize=normalize, retry=FAST_RETRY)
        assert isinstance(remote, RemoteReranker) and isinstance(remote, RerankerProtocol)
        assert isinstance(_local(path), RerankerProtocol)
        got = remote.score(pairs)
        assert got.dtype == np.float32 and got.shape == (40,)
        np.testing.assert_allclose(got, _local(path, normalize).score(pairs), atol=1e-5, rtol=0)
        sent = server.reranked[before:]
        assert all(len(texts) <= 8 for _, texts in sent)  # TEI's max_client_batch_size
        assert {q for q, _ in sent} == {q for q, _ in pairs}  # grouped by query
        assert sum(len(texts) for _, texts in sent) == 40
        assert remote.model_id == server.model_id and remote.max_length == server.max_input_length
        assert remote.normalize is normalize


def test_rerankers_pickle_and_score_the_same(tei_xlmr: FakeTEI, xlmr_ce: Path) -> None:
    """A copy (another process, a Ray worker) opens its own connections / loads its own model."""
    import pickle

    pairs = _pairs(6, seed=2)
    for reranker in (Reranker(tei_xlmr.url), _local(xlmr_ce)):
        before = reranker.score(pairs)
        copy = pickle.loads(pickle.dumps(reranker))
        np.testing.assert_array_equal(copy.score(pairs), before)


def test_tei_rerank_orders_like_the_local_reranker(tei_xlmr: FakeTEI, xlmr_ce: Path) -> None:
    texts = [p for _, p in seeded_pairs(15, seed=9)]
    hits = [Hit(id=f"h{i}", score=0.0, text=t, metadata={}) for i, t in enumerate(texts)]
    remote = Reranker(tei_xlmr.url).rerank("who eats bamboo", hits, k=6)
    local = _local(xlmr_ce).rerank("who eats bamboo", hits, k=6)
    assert [h.id for h in remote] == [h.id for h in local]
    np.testing.assert_allclose([h.score for h in remote], [h.score for h in local], atol=1e-5)
    assert Reranker(tei_xlmr.url).rerank("q", []) == []
    with pytest.raises(InputError, match=r"hit 'x' at position 0 has no text"):
        Reranker(tei_xlmr.url).rerank("q", [Hit(id="x", score=0.0, text=None, metadata={})])


def test_tei_refusals_retries_and_secrets(tei_bert: FakeTEI, tiny_embedder_dir: Path) -> None:
    pairs = _pairs(12, seed=6)
    remote = Reranker(tei_bert.url, token=TEI_TOKEN, retry=FAST_RETRY)
    tei_bert.inject(503, times=2, path="/rerank")
    tei_bert.inject(None, path="/rerank")  # a dropped connection
    np.testing.assert_allclose(remote.score(pairs), Reranker(tei_bert.url, token=TEI_TOKEN).score(pairs), atol=0)
    # One passage the server's tokenizer refuses: named by its pair index, the others scored.
    poisoned = [*pairs[:5], (pairs[5][0], pairs[5][1] + " POISON"), *pairs[6:]]
    tei_bert.poison = "POISON"
    try:
        with pytest.raises(TextsRefused, match=r"1 of 12 text\(s\): text at position 5: HTTP 422") as info:
            remote.score(poisoned)
        assert list(info.value.refused) == [5]
    finally:
        tei_bert.poison = None
    wrong = Reranker(tei_bert.url, token="not-the-token-Jq2", retry=FAST_RETRY)
    with pytest.raises(ConfigError, match="HTTP 401") as refused:
        wrong.score(pairs)
    assert "not-the-token-Jq2" not in str(refused.value) and "not-the-token" not in repr(wrong)
    with fake_tei(tiny_embedder_dir, model_id="tiny/embedder") as embedding_server:
        with pytest.raises(ConfigError, match=r"serves a embedding model .*not a reranker"):
            Reranker(embedding_server.url).score(pairs)
        with pytest.raises(EmbedderServerError, match=r"HTTP 424: model is not a re-ranker model"):
            Reranker(embedding_server.url)._request("q", ["p"], __import__("threading").Event())


def test_tei_fake_refuses_what_it_does_not_model(tei_xlmr: FakeTEI) -> None:
    import httpx

    base = tei_xlmr.url.removeprefix("tei+")
    body = {"query": "q", "texts": ["p"], "truncation_direction": "Left"}
    assert httpx.post(f"{base}/rerank", json=body).status_code == 501
    assert httpx.post(f"{base}/rerank", json={"query": "q", "texts": []}).json()["error_type"] == "Empty"
    assert httpx.post(f"{base}/embed", json={"inputs": ["p"]}).status_code == 424
    ranks = httpx.post(f"{base}/rerank", json={"query": "q", "texts": ["a", "b b", "c"], "return_text": True}).json()
    assert sorted(r["index"] for r in ranks) == [0, 1, 2] and all("text" in r for r in ranks)
    assert [r["score"] for r in ranks] == sorted((r["score"] for r in ranks), reverse=True)
    assert all(0 < r["score"] < 1 for r in ranks)  # raw_scores defaults to false: sigmoid


def test_remote_options_are_checked_before_any_request() -> None:
    with pytest.raises(ConfigError, match="needs the served model"):
        Reranker("openai+http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match=r"backend='onnx' is an option of the local Reranker"):
        Reranker("tei+http://127.0.0.1:9", backend="onnx")
    with pytest.raises(ConfigError, match=r"takes its secret as token="):
        Reranker("tei+http://127.0.0.1:9", api_key="x")
    with pytest.raises(ConfigError, match=r"does not take \['query_instruction'\]"):
        Reranker("tei+http://127.0.0.1:9?query_instruction=x")
    with pytest.raises(ConfigError, match="credentials in a tei\\+ URL are refused"):
        Reranker("tei+http://user:secret-pw@127.0.0.1:9")
    r = Reranker("openai+http://127.0.0.1:9/v1?model=BAAI/bge-reranker-v2-m3&normalize=true")
    assert (r.model_id, r.max_length, r.normalize) == ("BAAI/bge-reranker-v2-m3", 1024, True)
