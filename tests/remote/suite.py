"""The one embedder test suite: the contract of :class:`bge_vdb.types.EmbedderProtocol`.

Every embedder implementation inherits :class:`EmbedderContract` (the local Embedder, the TEI
embedder against the TEI fake, the OpenAI embedder against a real Infinity server) and supplies:

* ``make_embedder``: a fixture returning ``factory(**options) -> embedder`` for the model under
  test (options: ``query_instruction``);
* ``reference``: the local :class:`~bge_vdb.Embedder` in fp32 on the same weights;
* ``tolerance``: the largest difference of a vector component allowed against the reference.

The properties run over texts Hypothesis generates (English, accents, CJK, emoji, punctuation,
long ones that must be truncated), so order, batching, truncation and splitting are checked over
many cases, not one example.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_vdb.errors import InputError, TokenCountUnavailable
from bge_vdb.types import EmbedderProtocol, fingerprint_digest

WORDS = ["the", "vector", "database", "search", "café", "naïve", "Zürich", "北京", "数据库", "🙂",
         "retrieval", "embedding", "don't", "co-operate", "3.14", "(note)", "x", "résumé", "a", "of"]
text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(" ".join)
long_text = st.lists(st.sampled_from(WORDS), min_size=80, max_size=160).map(" ".join)
INSTRUCTION = "Represent this sentence for searching relevant passages: "
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.differing_executors])  # one suite, many classes

Factory = Callable[..., Any]


_REFERENCE: dict[tuple[int, str], np.ndarray] = {}


def want_documents(reference: Any, texts: list[str]) -> np.ndarray:
    """The reference's vectors, remembered per text: every class of the suite draws the same
    examples (derandomized), so the reference computes each text once per run."""
    missing = list(dict.fromkeys(t for t in texts if (id(reference), t) not in _REFERENCE))
    if missing:
        for t, vec in zip(missing, reference.embed_documents(missing), strict=True):
            _REFERENCE[(id(reference), t)] = vec
    return np.stack([_REFERENCE[(id(reference), t)] for t in texts])


def _close(got: np.ndarray, want: np.ndarray, tolerance: float) -> None:
    assert got.shape == want.shape
    assert got.dtype == np.float32
    diff = float(np.abs(got - want).max()) if got.size else 0.0
    assert diff <= tolerance, f"max |diff| {diff:.3g} > {tolerance:.3g}"


class EmbedderContract:
    tolerance: ClassVar[float] = 1e-5

    @pytest.fixture
    def embedder(self, make_embedder: Factory) -> Any:
        return make_embedder()

    # --- what it is ---------------------------------------------------------------------------

    def test_is_the_protocol(self, embedder: Any) -> None:
        assert isinstance(embedder, EmbedderProtocol)

    def test_dim_fingerprint_and_limit(self, embedder: Any, reference: Any) -> None:
        assert embedder.dim == reference.dim
        assert embedder.max_length == reference.max_length
        fp = embedder.fingerprint
        assert fp["dim"] == embedder.dim and fp["normalize"] is True and fp["model"]
        assert fingerprint_digest(fp) == fingerprint_digest(embedder.fingerprint)  # stable

    # --- documents and queries ----------------------------------------------------------------

    @SETTINGS
    @given(texts=st.lists(text, min_size=1, max_size=10))
    def test_documents_equal_the_reference_in_input_order(self, embedder: Any, reference: Any,
                                                          texts: list[str]) -> None:
        _close(embedder.embed_documents(texts), want_documents(reference, texts), self.tolerance)

    @SETTINGS
    @given(texts=st.lists(text, min_size=1, max_size=5))
    def test_instruction_goes_on_queries_only_client_side(self, make_embedder: Factory, reference: Any,
                                                          texts: list[str]) -> None:
        emb = make_embedder(query_instruction=INSTRUCTION)
        want = want_documents(reference, [INSTRUCTION + t for t in texts])
        _close(emb.embed_queries(texts), want, self.tolerance)
        _close(emb.embed_query(texts[0]), want[0], self.tolerance)
        _close(emb.embed_documents(texts), want_documents(reference, texts), self.tolerance)

    def test_bad_input_is_refused_by_position(self, embedder: Any) -> None:
        with pytest.raises(InputError, match="position 2"):
            embedder.embed_documents(["fine", "also fine", "   "])
        with pytest.raises(InputError, match="position 0"):
            embedder.embed_query("")
        with pytest.raises(TypeError, match="position 1"):
            embedder.embed_queries(["ok", 3])
        with pytest.raises(TypeError, match="single string"):
            embedder.embed_documents("one string")
        assert embedder.embed_documents([]).shape == (0, embedder.dim)

    @SETTINGS
    @given(long=long_text, short=text)
    def test_truncation_is_counted_never_silent(self, embedder: Any, reference: Any, long: str,
                                                short: str) -> None:
        got = embedder.embed_documents([short, long])
        _close(got, want_documents(reference, [short, long]), self.tolerance)
        if embedder.counts_tokens:  # else the server truncates uncounted (sync's report says so)
            limit = reference.max_length
            assert embedder.last_truncated == sum(c > limit for c in reference.count_tokens([short, long]))

    # --- tokens -------------------------------------------------------------------------------

    @SETTINGS
    @given(texts=st.lists(st.one_of(text, long_text), min_size=1, max_size=6))
    def test_token_counts_equal_the_reference(self, embedder: Any, reference: Any, texts: list[str]) -> None:
        if not embedder.counts_tokens:
            with pytest.raises(TokenCountUnavailable):
                embedder.count_tokens(texts)
            return
        assert embedder.count_tokens(texts) == reference.count_tokens(texts)
        assert embedder.count_tokens([]) == []

    @SETTINGS
    @given(doc=long_text, window=st.integers(8, 60), overlap=st.integers(0, 7))
    def test_split_text_cuts_as_the_reference(self, embedder: Any, reference: Any, doc: str,
                                              window: int, overlap: int) -> None:
        if not embedder.counts_tokens:
            with pytest.raises(TokenCountUnavailable):
                embedder.split_text(doc, window=window, overlap=overlap)
            return
        pieces = embedder.split_text(doc, window=window, overlap=overlap)
        assert pieces == reference.split_text(doc, window=window, overlap=overlap)
        assert all(p in doc for p in pieces)

    # --- plumbing -----------------------------------------------------------------------------

    def test_pickles_for_workers(self, make_embedder: Factory) -> None:
        """What a worker process receives: an embedder not used yet (then used there)."""
        texts = ["a worker process gets a copy", "café 北京"]
        fresh = make_embedder()
        copy = pickle.loads(pickle.dumps(fresh))
        _close(copy.embed_documents(texts), fresh.embed_documents(texts), 1e-6)
        assert copy.fingerprint == fresh.fingerprint

    def test_threads_share_one_embedder(self, embedder: Any, reference: Any) -> None:
        texts = [f"thread {i} asks about the vector database" for i in range(6)]
        want = want_documents(reference, texts)
        got: dict[int, np.ndarray] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(texts))

        def work(i: int) -> None:
            try:
                barrier.wait()
                got[i] = embedder.embed_documents([texts[i]])[0]
            except BaseException as exc:  # reported below, on the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        _close(np.stack([got[i] for i in range(len(texts))]), want, self.tolerance)
