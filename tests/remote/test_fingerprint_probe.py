"""A collection written by a local Embedder is accepted by a remote embedder of the same model
when a probe of its stored records agrees (then nothing is re-embedded), and refused otherwise:
another pooling of the very same weights, a tolerance the stored vectors miss, nothing to probe."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bge_vdb.embedder import Embedder
from bge_vdb.errors import FingerprintMismatch
from bge_vdb.store import VectorStore, connect
from bge_vdb.sync import sync_corpus
from bge_vdb.types import Document, fingerprint_digest
from tests.fakes.tei_server import FakeTEI
from tests.remote.conftest import FAST_RETRY

DOCS = [Document(f"d{i}", text) for i, text in enumerate([
    "Qdrant stores vectors with payloads.", "Milvus Lite keeps a collection in one file.",
    "Text Embeddings Inference serves BERT models over HTTP.", "A café in Zürich serves coffee.",
    "北京是中国的首都。", "The quick brown fox jumps over the lazy dog.",
])]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    with connect(f"qdrant://{tmp_path / 'qdrant'}") as s:
        yield s


@pytest.fixture(scope="module")
def minilm_cls(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """The same MiniLM weights pooled by CLS instead of mean: same dimension, other vectors."""
    root = tmp_path_factory.mktemp("minilm-cls") / "model"
    shutil.copytree(minilm_dir, root)
    pool = json.loads((root / "1_Pooling" / "config.json").read_text())
    pool.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    return root


def _write_locally(store: VectorStore, model: Path, precision: str = "fp32") -> str | None:
    local = Embedder(str(model), precision=precision)
    col = store.collection("docs", embedder=local)
    assert sync_corpus(col, DOCS).embedded == len(DOCS)
    return fingerprint_digest(col.fingerprint)


@pytest.mark.parametrize("precision", ["fp32", "auto"])  # auto: bf16 on CPUs with AVX-512 BF16
def test_same_model_is_accepted_and_nothing_is_re_embedded(store: VectorStore, minilm_dir: Path,
                                                           tei: FakeTEI, precision: str) -> None:
    recorded = _write_locally(store, minilm_dir, precision)
    remote = Embedder(tei.url, retry=FAST_RETRY)
    assert fingerprint_digest(remote.fingerprint) != recorded  # names no weights hash
    col = store.collection("docs", embedder=remote)  # check_fingerprint=True: accepted by probe
    assert fingerprint_digest(remote.fingerprint) == recorded
    probe = remote.fingerprint["probe"]
    assert probe["records"] == 3 and probe["max_abs_diff"] <= remote.probe_tolerance
    before = len(tei.embedded_texts)
    report = sync_corpus(col, DOCS)
    assert (report.embedded, report.unchanged, report.fingerprint_note) == (0, len(DOCS), None)
    assert len(tei.embedded_texts) == before
    hits = col.search("which database keeps a collection in one file?", k=1)
    assert hits[0].id == "d1"


def test_other_pooling_of_the_same_weights_is_refused(store: VectorStore, minilm_cls: Path, tei: FakeTEI) -> None:
    _write_locally(store, minilm_cls)
    remote = Embedder(tei.url, retry=FAST_RETRY)
    with pytest.raises(FingerprintMismatch):
        store.collection("docs", embedder=remote)
    assert "probe" not in remote.fingerprint


def test_a_tolerance_the_stored_vectors_miss_is_refused(store: VectorStore, minilm_dir: Path, tei: FakeTEI) -> None:
    _write_locally(store, minilm_dir, "bf16")
    strict = Embedder(tei.url, retry=FAST_RETRY, probe_tolerance=1e-7)
    with pytest.raises(FingerprintMismatch):
        store.collection("docs", embedder=strict)


def test_nothing_to_probe_is_refused(store: VectorStore, minilm_dir: Path, tei: FakeTEI) -> None:
    store.collection("empty", embedder=Embedder(str(minilm_dir), precision="fp32"))
    with pytest.raises(FingerprintMismatch):
        store.collection("empty", embedder=Embedder(tei.url, retry=FAST_RETRY))


def test_a_refused_probe_re_embeds_everything_when_allowed(store: VectorStore, minilm_cls: Path,
                                                           tei: FakeTEI) -> None:
    """check_fingerprint=False (the CLI's sync): the other model's records are re-embedded."""
    _write_locally(store, minilm_cls)
    col = store.collection("docs", embedder=Embedder(tei.url, retry=FAST_RETRY), check_fingerprint=False)
    report = sync_corpus(col, DOCS)
    assert report.embedded == len(DOCS) and report.fingerprint_note
    assert fingerprint_digest(col.fingerprint) != fingerprint_digest(
        Embedder(str(minilm_cls), precision="fp32").fingerprint)


def test_the_probe_measures(minilm_dir: Path, minilm_cls: Path, minilm_local: Embedder) -> None:
    """The figures behind the default tolerance (5e-3), printed for the README."""
    texts = [d.text for d in DOCS]
    fp32 = minilm_local.embed_documents(texts)
    bf16 = Embedder(str(minilm_dir), precision="bf16").embed_documents(texts)
    cls = Embedder(str(minilm_cls), precision="fp32").embed_documents(texts)
    bf16_diff, cls_diff = float(np.abs(bf16 - fp32).max()), float(np.abs(cls - fp32).max())
    print(f"max |diff| bf16 vs fp32: {bf16_diff:.2g}; CLS vs mean pooling, same weights: {cls_diff:.2g}")
    assert bf16_diff < 5e-3 < cls_diff
