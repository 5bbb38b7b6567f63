"""The packed CPU forward (bge_vdb/backends/packed_bert.py) against transformers' own BertModel.

In fp32 it must give transformers' hidden states for any batch: any mix of lengths and
padding, token types, CLS-only or every position (a Hypothesis property over many generated
batches). In bf16 it must stay as close to fp32 as transformers under autocast does. Models it
does not run exactly must fall back to transformers. Accuracy on real weights is guarded in
test_precision.py; speed lives in benchmarks/embed.py (nothing here is timed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bge_vdb import Embedder  # noqa: E402
from bge_vdb.backends.packed_bert import PackedBert, build_packed_bert  # noqa: E402


def _bert(hidden: int = 32, layers: int = 2, heads: int = 4, **config: Any) -> Any:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=99, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=64, type_vocab_size=2,
                     attn_implementation="sdpa", **config)
    return BertModel(cfg).eval()


MODEL = None


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """These models are tiny: one thread, restored afterwards. With two, OpenMP's barrier made
    each example ~20x slower on a loaded machine (0.44 s against 0.02 s), for no coverage."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model() -> Any:
    global MODEL
    if MODEL is None:
        MODEL = _bert()
    return MODEL


def _batch(lengths: list[int], width: int, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 99, (len(lengths), width), generator=g)
    types = torch.randint(0, 2, (len(lengths), width), generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    ids, types = ids * mask, types * mask  # padding is id 0, type 0, as the tokenizer pads
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@st.composite
def batches(draw: Any) -> dict[str, Any]:
    lengths = draw(st.lists(st.integers(1, 24), min_size=1, max_size=6))
    width = max(lengths) + draw(st.integers(0, 3))  # sometimes every row is padded
    return _batch(lengths, width, draw(st.integers(0, 2**16)))


# The forward's three forms, each forced at least once whatever Hypothesis draws: no padding
# at all; padding under 8% of the positions (masked in attention, linear layers run on it);
# more padding (real tokens packed into one matrix).
NO_PADDING = _batch([7, 7, 7], 7)
LITTLE_PADDING = _batch([24, 24, 24, 23], 24)
PACKED = _batch([3, 24, 1, 9], 26)


def test_the_examples_take_the_three_forms() -> None:
    from bge_vdb.backends.packed_bert import PACK_BELOW

    real = [float(b["attention_mask"].float().mean()) for b in (NO_PADDING, LITTLE_PADDING, PACKED)]
    assert real[0] == 1.0 and PACK_BELOW <= real[1] < 1.0 and real[2] < PACK_BELOW


@settings(max_examples=60, deadline=None)
@given(batch=batches(), cls_only=st.booleans())
@example(batch=NO_PADDING, cls_only=False)
@example(batch=NO_PADDING, cls_only=True)
@example(batch=LITTLE_PADDING, cls_only=False)
@example(batch=LITTLE_PADDING, cls_only=True)
@example(batch=PACKED, cls_only=False)
@example(batch=PACKED, cls_only=True)
def test_fp32_packed_forward_is_transformers_forward(batch: dict[str, Any], cls_only: bool) -> None:
    model = _model()
    packed = PackedBert(model, dtype=torch.float32, cls_only=cls_only)
    with torch.inference_mode():
        expected = model(**batch).last_hidden_state
        got = packed(**batch)
    mask = batch["attention_mask"][..., None]
    if cls_only:
        torch.testing.assert_close(got, expected[:, :1], atol=2e-5, rtol=1e-4)
    else:
        torch.testing.assert_close(got * mask, expected * mask, atol=2e-5, rtol=1e-4)
        assert not got[mask.expand_as(got) == 0].any()  # padded positions are zeros


@settings(max_examples=25, deadline=None)
@given(batch=batches(), onednn=st.booleans())
@example(batch=NO_PADDING, onednn=True)
@example(batch=LITTLE_PADDING, onednn=True)
@example(batch=PACKED, onednn=True)
@example(batch=PACKED, onednn=False)
def test_bf16_packed_forward_is_as_close_to_fp32_as_autocast(batch: dict[str, Any], onednn: bool) -> None:
    """bf16 rounding is allowed, nothing more: the packed bf16 vectors are about as far from the
    fp32 ones as transformers' under bf16 autocast are (a wiring mistake would be far worse).
    With oneDNN's pre-packed weights (where this CPU has them) and with plain bf16 matmuls."""
    from bge_vdb.backends import packed_bert

    model = _model()
    with pytest.MonkeyPatch.context() as mp:
        if not onednn:
            mp.setattr(packed_bert, "_mkldnn_bf16", lambda: False)
        packed = PackedBert(model, dtype=torch.bfloat16, cls_only=True)
    assert packed.onednn == (onednn and packed_bert._mkldnn_bf16())
    with torch.inference_mode():
        exact = model(**batch).last_hidden_state[:, 0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(**batch).last_hidden_state[:, 0].float()
        got = packed(**batch)[:, 0]
    ours = (got - exact).abs().max().item()
    theirs = (autocast - exact).abs().max().item()
    assert ours <= 3 * theirs + 0.02


def test_embedder_runs_the_packed_forward_and_gives_transformers_vectors(tiny_bge: Path, tiny_mean: Path) -> None:
    from bge_vdb.backends.torch import TorchBackend

    texts = ["a dog", "the cat sat on the mat " * 6, "hello world, once more", "北京的冬天", "x " * 40]
    for path, suffix in ((tiny_bge, "/packed/cls-only-last-layer"), (tiny_mean, "/packed")):
        emb = Embedder(path, backend="torch", precision="fp32", batch_size=5).load()
        assert emb.backend.describe() == f"torch/cpu/fp32{suffix}"
        packed = emb.embed_documents(texts)
        emb._backend = TorchBackend(path, precision="fp32", cls_only=emb.layout.pooling == "cls", packed=False)
        assert "packed" not in emb.backend.describe()
        np.testing.assert_allclose(packed, emb.embed_documents(texts), atol=1e-6)


def test_transformers_weights_are_released(tiny_bge: Path) -> None:
    """The packed forward holds its own (bf16 or fp32) weights; transformers' model is not kept."""
    import gc
    import weakref

    from bge_vdb.backends import packed_bert
    from bge_vdb.backends.torch import TorchBackend

    seen: list[Any] = []
    real = packed_bert.build_packed_bert

    def spy(model: Any, **kwargs: Any) -> Any:
        seen.append(weakref.ref(model))
        return real(model, **kwargs)

    monkey = pytest.MonkeyPatch()
    monkey.setattr(packed_bert, "build_packed_bert", spy)
    try:
        backend = TorchBackend(tiny_bge, precision="bf16", cls_only=True)
    finally:
        monkey.undo()
    gc.collect()
    assert backend.packed and seen and seen[0]() is None


@pytest.mark.parametrize("change", ["relu", "relative-positions", "decoder", "different-forward"])
def test_models_it_does_not_run_exactly_stay_with_transformers(change: str, caplog: pytest.LogCaptureFixture) -> None:
    if change == "relu":
        model = _bert(hidden_act="relu")
    elif change == "relative-positions":
        model = _bert(position_embedding_type="relative_key")
    elif change == "decoder":
        model = _bert(is_decoder=True)
    else:  # a BERT whose layer computes something the packed forward does not
        model = _bert()
        ffn = model.encoder.layer[0].intermediate
        plain = ffn.forward
        ffn.forward = lambda hidden_states: plain(hidden_states) * 1.5
    with caplog.at_level(logging.INFO, logger="bge_vdb"):
        assert build_packed_bert(model, dtype=torch.bfloat16, cls_only=True) is None
    if change == "different-forward":
        assert "differ from transformers" in caplog.text


def test_a_model_that_breaks_the_packed_forward_falls_back(tiny_bge: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """An exception inside the packed forward (say, a layer laid out differently by another
    transformers version) means transformers runs the model, not an error."""
    from bge_vdb.backends import packed_bert

    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AttributeError("'BertLayer' object has no attribute 'intermediate'")

    monkeypatch.setattr(packed_bert._Layer, "__init__", broken)
    with caplog.at_level(logging.INFO, logger="bge_vdb"):
        emb = Embedder(tiny_bge, backend="torch", precision="fp32").load()
    assert emb.backend.describe() == "torch/cpu/fp32/cls-only-last-layer"
    assert "AttributeError" in caplog.text
    assert emb.embed_documents(["hello world"]).shape == (1, 32)
