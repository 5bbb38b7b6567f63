"""TEI over the wire (against the TEI fake): batching by the server's limits, bounded
concurrency, retries on 429/5xx/dropped connections only with Retry-After honoured, refused
texts found by position, and credentials that never show."""

from __future__ import annotations

import logging
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_vdb.embedder import Embedder
from bge_vdb.errors import (
    ConfigError,
    EmbedderServerError,
    EmbedderUnavailable,
    InputError,
    ModelError,
    TextsRefused,
)
from bge_vdb.remote.http import RequestAbandoned
from bge_vdb.remote.requests import RequestRunner
from bge_vdb.remote.tei import TEIEmbedder
from bge_vdb.retry import RetryPolicy
from tests.fakes.tei_server import FakeTEI, fake_tei
from tests.remote.conftest import FAST_RETRY, MINILM_ID
from tests.remote.suite import WORDS, want_documents

SECRET = "hf_SeCrEt-token-value-42"
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(" ".join)


class Sleeps:
    """A retry policy's sleep that records what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_url_dispatch_and_no_network_at_construction(tei: FakeTEI) -> None:
    emb = Embedder(tei.url + "?concurrency=3&batch_size=5")
    assert isinstance(emb, TEIEmbedder)
    assert (emb.concurrency, emb._batch_size_arg) == (3, 5)
    assert sum(tei.requests.values()) == 0  # nothing asked yet
    assert emb.dim == 384 and sum(tei.requests.values()) == 1  # /info told the preset: no embed
    assert repr(emb) == f"TEIEmbedder('{tei.url}', concurrency=3)"


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(words, min_size=1, max_size=40), batch=st.integers(1, 9),
       concurrency=st.integers(1, 4))
def test_requests_stay_within_the_servers_limits(minilm_dir: Path, minilm_local: Embedder,
                                                 texts: list[str], batch: int, concurrency: int) -> None:
    """Whatever the texts, no request exceeds max_client_batch_size or the token budget, no
    more than ``concurrency`` are in flight, and the vectors come back in input order."""
    with fake_tei(minilm_dir, model_id=MINILM_ID, max_client_batch_size=batch,
                  max_batch_tokens=400) as server, \
            Embedder(server.url, concurrency=concurrency, retry=FAST_RETRY) as emb:
        got = emb.embed_documents(texts)
        assert server.requests["POST /embed"] == len(server.batch_sizes)  # no refused request
        assert max(server.batch_sizes) <= batch
        assert all(len(n) == 1 or max(n) * len(n) <= 400 for n in server.batch_lengths)
        assert server.most_in_flight <= concurrency
        assert sum(server.batch_sizes) == len(texts)
    np.testing.assert_allclose(got, want_documents(minilm_local, texts), atol=1e-5)


def test_several_requests_are_in_flight(minilm_dir: Path) -> None:
    with fake_tei(minilm_dir, model_id=MINILM_ID, max_client_batch_size=2, delay=0.2) as server, \
            Embedder(server.url, concurrency=3, tokenizer=str(minilm_dir)) as emb:
        emb.embed_documents([f"text number {i}" for i in range(12)])
    assert server.most_in_flight == 3
    assert emb.runner.most_in_flight == 3


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, None])
def test_transient_failures_are_retried(tei: FakeTEI, status: int | None) -> None:
    tei.inject(status, times=2, path="/embed", error_type="Overloaded")
    sleeps = Sleeps()
    with Embedder(tei.url, retry=RetryPolicy(attempts=4, sleep=sleeps)) as emb:
        vec = emb.embed_documents(["retried until it works"])
    assert vec.shape == (1, 384)
    assert len(sleeps.waits) == 2


def test_retry_after_is_honoured(tei: FakeTEI) -> None:
    tei.inject(429, path="/embed", error_type="Overloaded", retry_after="7")
    sleeps = Sleeps()
    with Embedder(tei.url, retry=RetryPolicy(attempts=3, initial=0.01, sleep=sleeps)) as emb:
        emb.embed_documents(["wait as the server says"])
    assert sleeps.waits and sleeps.waits[0] >= 7


@pytest.mark.parametrize("status,kind", [(424, "Backend"), (404, "Validation")])
def test_permanent_failures_are_not_retried(tei: FakeTEI, status: int, kind: str) -> None:
    tei.inject(status, path="/embed", error_type=kind)
    sleeps = Sleeps()
    with Embedder(tei.url, retry=RetryPolicy(attempts=4, sleep=sleeps)) as emb, \
            pytest.raises(EmbedderServerError, match=f"HTTP {status}"):
        emb.embed_documents(["no retry for this"])
    assert sleeps.waits == []
    assert tei.requests["POST /embed"] == 1


@contextmanager
def refusing(port: int) -> Iterator[None]:
    """Hold ``port`` bound but not listening: connections are refused, and no other server of
    this busy machine can take the port while the test runs."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        yield


def test_a_dead_server_gives_a_clear_error_after_bounded_retries(tei: FakeTEI) -> None:
    """Seven requests in flight (50 texts, 8 a request, 4 threads) all refused: the error is
    the request that used up its retries, never a sibling it stopped."""
    emb = Embedder(tei.url, concurrency=4, retry=RetryPolicy(attempts=3, initial=0.01, sleep=Sleeps()))
    emb.load()
    port = tei.port
    tei.stop()
    with refusing(port), pytest.raises(EmbedderUnavailable, match=r"did not answer .* after the retries") as info:
        emb.embed_documents(["nobody is listening"] * 50)
    assert not isinstance(info.value, RequestAbandoned)
    assert "up to 3 tries" in str(info.value) and "ConnectError" in str(info.value)


def test_a_call_raises_its_root_cause_whichever_request_finishes_first() -> None:
    """Regression (CI, under load): a sibling stopped by a failing request finished first and
    the caller saw 'not sent: another request ... gave up'. Here the sibling's abandonment is
    forced to finish before the root failure; the call must still raise the root failure."""
    sibling_done = threading.Event()

    def send(texts: list[str], *_: object) -> np.ndarray:
        if texts == ["root"]:
            sibling_done.wait(5)
            time.sleep(0.3)  # the caller's wait has returned with the sibling's failure by now
            raise EmbedderUnavailable("the embedding server did not answer POST /embed after the retries")
        try:
            raise RequestAbandoned("POST /embed not sent: another request of the same call failed")
        finally:
            sibling_done.set()

    runner = RequestRunner(concurrency=2)
    try:
        with pytest.raises(EmbedderUnavailable, match="did not answer") as info:
            runner.embed(["root", "sibling"], send, batch_size=1, batch_tokens=None, lengths=[2, 1])
    finally:
        runner.close()
    assert not isinstance(info.value, RequestAbandoned)


def test_refused_texts_are_reported_by_position(tei: FakeTEI) -> None:
    tei.poison = "POISON"
    texts = [f"good text {i}" for i in range(20)]
    texts[3] = "this one is POISON"
    texts[17] = "POISON again"
    with Embedder(tei.url, retry=FAST_RETRY, tokenizer=None) as emb, pytest.raises(TextsRefused) as info:
        emb.embed_documents(texts)
    assert sorted(info.value.refused) == [3, 17]
    assert "Tokenizer" in info.value.refused[3] or "tokenizer" in info.value.refused[3]
    assert "text at position 3" in str(info.value) and isinstance(info.value, InputError)
    # the others were embedded (bisection), not all sent one by one
    assert len(tei.embedded_texts) == 18 and tei.requests["POST /embed"] < 20


def test_a_body_over_the_payload_limit_is_split(minilm_dir: Path, minilm_local: Embedder) -> None:
    texts = [("payload " * 300 + str(i)) for i in range(6)]
    with fake_tei(minilm_dir, model_id=MINILM_ID, payload_limit=6000) as server, \
            Embedder(server.url, retry=FAST_RETRY) as emb:
        got = emb.embed_documents(texts)
    assert max(server.batch_sizes) < 6
    np.testing.assert_allclose(got, minilm_local.embed_documents(texts), atol=1e-5)


def test_a_text_alone_over_the_payload_limit_is_refused_by_position(minilm_dir: Path) -> None:
    with fake_tei(minilm_dir, model_id=MINILM_ID, payload_limit=3000) as server, \
            Embedder(server.url, retry=FAST_RETRY) as emb, pytest.raises(TextsRefused) as info:
        emb.embed_documents(["short", "long " * 1000])
    assert list(info.value.refused) == [1] and "size limit" in info.value.refused[1]


def test_a_model_that_is_not_an_embedding_model_is_refused(minilm_dir: Path) -> None:
    with fake_tei(minilm_dir, model_type={"reranker": {"id2label": {}, "label2id": {}}}) as server, \
            pytest.raises(ConfigError, match="reranker model"):
        Embedder(server.url).load()


def test_a_model_param_must_match_what_is_served(tei: FakeTEI) -> None:
    with pytest.raises(ConfigError, match="serves 'sentence-transformers/all-MiniLM-L6-v2'"):
        Embedder(tei.url + "?model=BAAI/bge-small-en-v1.5").load()
    assert Embedder(tei.url + f"?model={MINILM_ID}").load().dim == 384


def test_a_preset_of_another_dimension_is_refused(tei: FakeTEI) -> None:
    with pytest.raises(ModelError, match=r"384-d vectors, but preset BAAI/bge-base-en-v1\.5 is 768-d"):
        Embedder(tei.url, preset="BAAI/bge-base-en-v1.5").embed_documents(["x"])


# --- credentials --------------------------------------------------------------------------------

def test_token_from_the_environment_is_sent_and_never_shown(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with fake_tei(minilm_dir, model_id=MINILM_ID, api_key=SECRET) as server:
        server.inject(503, path="/embed", retry_after="0")  # a retry is logged
        emb = Embedder(server.url, retry=FAST_RETRY)
        emb.embed_documents(["authorised"])
        assert f"Bearer {SECRET}" in server.seen_auth
        shown = [repr(emb), str(emb.fingerprint), caplog.text, pickle.dumps(emb.fingerprint).hex()]
        assert not any(SECRET in s for s in shown)


def test_a_refused_token_is_a_config_error_without_the_token(minilm_dir: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with fake_tei(minilm_dir, model_id=MINILM_ID, api_key="the-right-one") as server:
        with pytest.raises(ConfigError, match="HTTP 401") as info:
            Embedder(server.url, token=SECRET).load()
        assert SECRET not in str(info.value) and SECRET not in caplog.text
        assert "credentials given were refused" in str(info.value) and "HF_TOKEN" in str(info.value)
        with pytest.raises(ConfigError, match="no credentials were given"):
            TEIEmbedder(server.url).load()


@pytest.mark.parametrize("url", [
    "tei+http://user:{s}@127.0.0.1:1", "tei+http://127.0.0.1:1?token={s}",
    "openai+http://127.0.0.1:1/v1?model=m&api_key={s}",
])
def test_secrets_in_urls_are_refused_without_echo(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Embedder(url.format(s=SECRET))
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("options,match", [
    ({"device": "cpu"}, "does not take 'device'"), ({"backend": "onnx"}, "backend='onnx'"),
    ({"concurrency": 0}, "concurrency must be a positive integer"), ({"preset": "nope"}, "unknown preset"),
])
def test_bad_options_are_refused_before_any_request(tei: FakeTEI, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Embedder(tei.url, **options)
    assert sum(tei.requests.values()) == 0


@pytest.mark.parametrize("query,match", [
    ("?concurency=2", "unknown option 'concurency'"), ("?batch_size=abc", "not a valid int"),
    ("?batch_size=2&batch_size=3", "given twice"),
])
def test_bad_url_options_are_refused_by_name(query: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Embedder("tei+http://127.0.0.1:9" + query)
