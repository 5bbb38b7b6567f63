"""Remote rerankers against a REAL Infinity server (PyPI infinity-emb 0.0.78 in its own
virtualenv, tests/remote/infinity.py) serving the tiny cross-encoders: scores equal the local
Reranker on the same weights within 1e-5; wrong keys, unknown models and an embedding model are
refused. (Its own file so that xdist runs it beside the TEI tests: the servers take seconds to
start.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import ConfigError, Hit, Reranker
from tests.remote import infinity
from tests.reranker.test_remote import FAST_RETRY, _local, _pairs

INFINITY_KEY = "infinity-rerank-key-7Qx"


def _require_infinity() -> None:
    """Skipped only when the platform cannot install Infinity and BGE_VDB_REQUIRE_INFINITY is
    not set (CI sets it: there it must run)."""
    try:
        infinity.ensure_venv()
    except infinity.InfinityUnavailable as exc:
        if os.environ.get("BGE_VDB_REQUIRE_INFINITY"):
            raise
        pytest.skip(f"Infinity cannot be installed on this platform: {exc}")


@pytest.fixture(scope="module")
def infinity_xlmr(xlmr_ce: Path) -> Iterator[infinity.InfinityServer]:
    """Infinity serving the tiny XLM-RoBERTa cross-encoder, with an API key."""
    _require_infinity()
    with infinity.running(xlmr_ce, served_names=["tiny-xlmr-reranker"], api_key=INFINITY_KEY) as server:
        yield server


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "sigmoid"])
def test_real_infinity_scores_equal_the_local_model(infinity_xlmr: infinity.InfinityServer, xlmr_ce: Path,
                                                    normalize: bool) -> None:
    pairs = _pairs(30, seed=8)
    remote = Reranker(infinity_xlmr.url(), api_key=INFINITY_KEY, normalize=normalize, batch_size=7)
    np.testing.assert_allclose(remote.score(pairs), _local(xlmr_ce, normalize).score(pairs), atol=1e-5, rtol=0)
    assert remote.model_id == "tiny-xlmr-reranker"
    hits = [Hit(id=f"h{i}", score=0.0, text=p, metadata={}) for i, (_, p) in enumerate(pairs[:10])]
    assert ([h.id for h in remote.rerank("who eats bamboo", hits)]
            == [h.id for h in _local(xlmr_ce, normalize).rerank("who eats bamboo", hits)])


def test_real_infinity_refuses_a_wrong_key_and_an_unknown_model(infinity_xlmr: infinity.InfinityServer) -> None:
    with pytest.raises(ConfigError, match="HTTP 401") as info:
        Reranker(infinity_xlmr.url(), api_key="wrong-key-Lm3", retry=FAST_RETRY).score([("q", "p")])
    assert "wrong-key-Lm3" not in str(info.value)
    # Infinity serving one model answers /rerank for any name: the client checks /models first.
    with pytest.raises(ConfigError, match=r"does not serve model 'no-such-model'; it serves 'tiny-xlmr-reranker'"):
        Reranker(infinity_xlmr.url("no-such-model"), api_key=INFINITY_KEY, retry=FAST_RETRY).score([("q", "p")])


def test_real_infinity_serving_an_embedder_is_not_a_reranker(tiny_embedder_dir: Path) -> None:
    _require_infinity()
    with (infinity.running(tiny_embedder_dir, served_names=["tiny-embedder"]) as server,
          pytest.raises(ConfigError, match=r"serves 'tiny-embedder' for \['embed'\], not for rerank")):
        Reranker(server.url()).score([("q", "p")])
