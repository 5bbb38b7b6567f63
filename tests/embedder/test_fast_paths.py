"""The opt-in and device-dependent paths of issue 8, checked without timing anything:
torch.compile, the CUDA branch (no GPU here: the choice logic and its errors), and the
precisions that are refused rather than silently ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bge_vdb import Embedder
from bge_vdb.embedder import _pad, plan_batches
from bge_vdb.errors import ConfigError

torch = pytest.importorskip("torch")


def test_cuda_without_a_gpu_is_a_clear_error(tiny_bge: Path) -> None:
    if torch.cuda.is_available():  # pragma: no cover - no GPU on these machines
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Embedder(tiny_bge, backend="torch", device="cuda").load()


def test_cuda_runs_under_fp16_or_bf16_autocast(tiny_bge: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend resolved for CUDA enters a CUDA autocast of the chosen half precision."""
    from bge_vdb.backends.torch import TorchBackend, resolve_precision

    backend = TorchBackend(tiny_bge, device="cpu", precision="fp32")
    for supported, expected in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, s=supported, **k: s)
        backend.device, backend.precision = "cuda:0", resolve_precision("auto", "cuda:0")
        with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
            ctx = backend.autocast()
        assert isinstance(ctx, torch.autocast)
        assert ctx.device == "cuda" and ctx.fast_dtype == expected
    backend.device, backend.precision = "cpu", "fp32"
    assert not isinstance(backend.autocast(), torch.autocast)  # fp32 runs without autocast


def _nothing():  # pragma: no cover - only with a GPU
    import contextlib

    return contextlib.nullcontext()


def test_gpu_batches_follow_the_same_token_budget() -> None:
    """Batching is decided before the device sees anything: long inputs in small batches."""
    lengths = [512, 500, 300, 200, 200, 100, 60, 60, 60, 60]
    batches = [list(b) for b in plan_batches(lengths, 32, 1024)]
    assert batches == [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9]]
    assert all(len(b) * lengths[b[0]] <= 1024 for b in batches)


def test_onnx_refuses_half_precision(tiny_bge: Path) -> None:
    for precision in ("bf16", "fp16"):
        with pytest.raises(ConfigError, match="torch option"):
            Embedder(tiny_bge, backend="onnx", precision=precision)
    with pytest.raises(ConfigError, match="precision must be"):
        Embedder(tiny_bge, backend="onnx", precision="int4")


def test_compile_needs_torch(tiny_bge: Path) -> None:
    with pytest.raises(ConfigError, match="compile=True needs backend='torch'"):
        Embedder(tiny_bge, backend="onnx", compile=True)


def test_compiled_model_gives_the_eager_vectors(tiny_bge: Path) -> None:
    texts = ["the quick brown fox", "a long passage about vector database search " * 3, "hello world"]
    eager = Embedder(tiny_bge, backend="torch", precision="fp32")
    compiled = Embedder(tiny_bge, backend="torch", precision="fp32", compile=True)
    assert compiled.backend.describe() == "torch/cpu/fp32/compiled/cls-only-last-layer"
    np.testing.assert_allclose(compiled.embed_documents(texts), eager.embed_documents(texts), atol=1e-5)


def test_cls_only_last_layer_gives_the_full_models_cls_vectors(tiny_bge: Path) -> None:
    """CLS pooling skips the last layer's other positions; its vectors must not change.

    Inputs of different lengths in one batch, so padding and the attention mask are in play."""
    from bge_vdb.backends.torch import TorchBackend

    texts = ["a dog", "the cat sat on the mat " * 6, "hello world, once more", "x " * 40]
    emb = Embedder(tiny_bge, backend="torch", precision="fp32", batch_size=4)
    assert emb.load().backend.describe().endswith("/cls-only-last-layer")
    fast = emb.embed_documents(texts)
    emb._backend = TorchBackend(tiny_bge, precision="fp32", cls_only=False)
    assert "cls-only" not in emb.backend.describe()
    full = emb.embed_documents(texts)
    np.testing.assert_allclose(fast, full, atol=1e-6)
    batch = emb._tokenizer.encode_batch(texts)
    assert len({len(e.ids) for e in batch}) == len(texts)  # really padded


def test_mean_pooling_keeps_every_position(tiny_bge: Path) -> None:
    emb = Embedder(tiny_bge, backend="torch", precision="fp32", pooling="mean").load()
    assert "cls-only" not in emb.backend.describe()
    batch = _pad(emb._tokenizer.encode_batch(["a b c d"]))
    assert emb.backend.hidden_states(batch).shape[1] == batch.input_ids.shape[1]


def test_cls_only_is_refused_for_models_not_built_like_bert() -> None:
    from transformers import BertConfig, BertModel

    from bge_vdb.backends.torch import install_cls_only_last_layer

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, is_decoder=True))
    assert not install_cls_only_last_layer(model)  # a decoder attends causally
    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64))
    assert install_cls_only_last_layer(model) and install_cls_only_last_layer(model)  # idempotent
    assert sum(getattr(m, "cls_only", False) for m in model.encoder.layer) == 1


def test_loading_draws_no_progress_bar_and_restores_the_setting(tiny_bge: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    from bge_vdb.backends.torch import TorchBackend

    assert hf_logging.is_progress_bar_enabled()
    TorchBackend(tiny_bge, precision="fp32")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is back
    hf_logging.disable_progress_bar()
    try:
        TorchBackend(tiny_bge, precision="fp32")
        assert not hf_logging.is_progress_bar_enabled()  # not switched on behind the caller's back
    finally:
        hf_logging.enable_progress_bar()


def test_cls_only_layer_reads_every_mask_form_like_the_full_layer() -> None:
    """The layer on its own: a (batch, length) mask, a (batch, 1, 1, length) one and the
    (batch, 1, length, length) one transformers builds all give the full layer's CLS row."""
    from transformers import BertConfig, BertModel

    from bge_vdb.backends.torch import install_cls_only_last_layer

    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64)).eval()
    full = model.encoder.layer[0]
    assert install_cls_only_last_layer(model)
    cls_only = model.encoder.layer[0]
    hidden = torch.randn(2, 5, 32)
    mask2d = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    square = mask2d[:, None, None, :].bool().expand(2, 1, 5, 5)
    with torch.inference_mode():
        expected = _tensor(full(hidden, square))[:, :1]
        for mask in (mask2d, mask2d[:, None, None, :].bool(), square):
            torch.testing.assert_close(_tensor(cls_only(hidden, mask)), expected, atol=1e-6, rtol=1e-5)
        # The mask matters: without it the first input's padding would be attended to.
        assert not torch.allclose(_tensor(cls_only(hidden, None))[0], expected[0], atol=1e-4)


def _tensor(layer_output: object) -> torch.Tensor:
    """A BERT layer's hidden states: transformers 4.x returns a tuple, 5.x the tensor."""
    return layer_output[0] if isinstance(layer_output, tuple) else layer_output  # type: ignore[return-value]


def test_cls_only_falls_back_to_the_whole_layer_when_it_would_differ(
        tiny_bge: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 14, item 1: the fast path re-implements a BERT layer from transformers' submodules,
    which broke on transformers 4.x. It is now checked against the whole layer when installed;
    here the last layer's attention is made to compute something the fast path does not know
    (as another transformers version might), so the whole layer must stay, with the same vectors."""
    import logging

    from bge_vdb.backends.torch import TorchBackend, install_cls_only_last_layer, load_model

    texts = ["a dog", "the cat sat on the mat " * 6, "hello world"]
    reference = Embedder(tiny_bge, backend="torch", precision="fp32").load()
    reference._backend = TorchBackend(tiny_bge, precision="fp32", cls_only=False)
    model = load_model(tiny_bge, attn_implementation="sdpa").eval()
    last = model.encoder.layer[-1]
    attention = last.attention.self
    plain_forward = attention.forward

    def doubled(*args: object, **kwargs: object) -> object:  # not what the fast path computes
        out = plain_forward(*args, **kwargs)
        return (out[0] * 2, *out[1:]) if isinstance(out, tuple) else out * 2

    attention.forward = doubled
    with caplog.at_level(logging.INFO, logger="bge_vdb"):
        assert not install_cls_only_last_layer(model)
    assert model.encoder.layer[-1] is last  # untouched
    assert "running the whole layer" in caplog.text and "differ" in caplog.text
    # The same weights with the unchanged attention do take the fast path (the check is fair).
    attention.forward = plain_forward
    assert install_cls_only_last_layer(model)
    fast = Embedder(tiny_bge, backend="torch", precision="fp32").load()
    np.testing.assert_allclose(fast.embed_documents(texts), reference.embed_documents(texts), atol=1e-6)


def test_cls_only_falls_back_when_the_layer_cannot_be_rebuilt(caplog: pytest.LogCaptureFixture) -> None:
    """A layer whose submodules do not take the fast path's calls is left whole, not crashed."""
    import logging

    from transformers import BertConfig, BertModel

    from bge_vdb.backends.torch import install_cls_only_last_layer

    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64))
    last = model.encoder.layer[-1]

    class WholeSequenceOnly(torch.nn.Module):  # a projection the fast path calls differently
        def __init__(self, linear: torch.nn.Module) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] == 1:
                raise RuntimeError("this projection takes whole sequences only")
            return self.linear(x)

    last.attention.self.query = WholeSequenceOnly(last.attention.self.query)
    with caplog.at_level(logging.INFO, logger="bge_vdb"):
        assert not install_cls_only_last_layer(model)
    assert model.encoder.layer[-1] is last and "whole sequences only" in caplog.text
    assert model.training  # the check ran in eval mode and put the caller's mode back
