"""Reranker scores against sentence-transformers' CrossEncoder (an independent implementation
over the same weights), and the torch and ONNX backends against each other.

CrossEncoder applies a sigmoid to one-label models by default: raw logits are compared with
``activation_fn=Identity`` and ``normalize=True`` with its default sigmoid. Pairs here fit in
``max_length`` (truncation differs by design: tests/reranker/test_inputs.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bge_vdb import Reranker
from tests.reranker.conftest import seeded_pairs
from tests.support.cross_encoders import CHINESE, WORDS

pytest.importorskip("sentence_transformers")


def _cross_encoder(path: Path, *, max_length: int = 128) -> object:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), max_length=max_length, device="cpu")


def _predict(ce: object, pairs: list[tuple[str, str]], *, sigmoid: bool) -> np.ndarray:
    import torch

    kwargs = {} if sigmoid else {"activation_fn": torch.nn.Identity()}
    return np.asarray(ce.predict(pairs, batch_size=16, **kwargs), dtype=np.float32)  # type: ignore[attr-defined]


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "sigmoid"])
def test_fp32_scores_equal_cross_encoder(cross_encoder: Path, normalize: bool) -> None:
    pairs = seeded_pairs(60, seed=1)
    ours = Reranker(cross_encoder, backend="torch", precision="fp32", normalize=normalize).score(pairs)
    theirs = _predict(_cross_encoder(cross_encoder), pairs, sigmoid=normalize)
    assert ours.dtype == np.float32 and ours.shape == (60,)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert np.std(theirs) > 1e-3  # the scores differ between pairs: the comparison means something


_word = st.sampled_from(WORDS + CHINESE)
_text = st.lists(_word, min_size=1, max_size=30).map(" ".join)


@settings(max_examples=15)
@given(pairs=st.lists(st.tuples(_text, _text), min_size=1, max_size=12))
def test_fp32_parity_over_generated_pair_sets(bert_ce: Path, xlmr_ce: Path,
                                              pairs: list[tuple[str, str]]) -> None:
    """Any batch composition (sizes, lengths, order) gives CrossEncoder's logits, per pair."""
    for path in (bert_ce, xlmr_ce):
        ours = _reranker(path).score(pairs)
        np.testing.assert_allclose(ours, _predict(_ce(path), pairs, sigmoid=False), atol=1e-5, rtol=0)


_CACHE: dict[str, object] = {}


def _reranker(path: Path) -> Reranker:
    key = f"r:{path}"
    if key not in _CACHE:
        _CACHE[key] = Reranker(path, backend="torch", precision="fp32", batch_tokens=256)
    return _CACHE[key]  # type: ignore[return-value]


def _ce(path: Path) -> object:
    key = f"ce:{path}"
    if key not in _CACHE:
        _CACHE[key] = _cross_encoder(path)
    return _CACHE[key]


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "sigmoid"])
def test_torch_and_onnx_agree(cross_encoder: Path, normalize: bool) -> None:
    pytest.importorskip("onnxruntime")
    pairs = seeded_pairs(40, seed=2)
    torch_scores = Reranker(cross_encoder, backend="torch", precision="fp32", normalize=normalize).score(pairs)
    onnx = Reranker(cross_encoder, backend="onnx", normalize=normalize)
    np.testing.assert_allclose(onnx.score(pairs), torch_scores, atol=1e-4, rtol=0)
    assert onnx.backend.describe() == "onnx/fp32"
