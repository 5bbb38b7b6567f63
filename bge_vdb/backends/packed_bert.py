"""BERT inference on CPU without the waste: packed tokens, one QKV matmul, weights prepared once.

transformers' ``BertModel`` is written for every use (training, decoding, any device); for
embedding on a CPU it leaves work on the table, measured on a bge-small-shaped model
(``benchmarks/embed.py``, profile per passage length in the README):

- **Weights are cast once.** Under ``torch.autocast`` every linear layer casts its fp32 weight
  to bf16 on every forward pass, and the same fp32 input three times for Q, K and V. Here the
  weights are bf16 from the start and, where oneDNN is available, pre-packed into its blocked
  layout (``mkldnn._reorder_linear_weight``), so a matmul reads them as they are.
- **One QKV projection**: Q, K and V are one (hidden -> 3 hidden) matmul; attention reads
  strided views of its output (no copies), and the attention output is already in the
  (tokens, hidden) layout the output projection wants.
- **Fused epilogues**: the first feed-forward matmul applies its bias and exact GELU inside
  oneDNN's kernel, before the result is rounded to bf16.
- **No padding in the linear layers**: when over 8% of a batch is padding, its real tokens
  are packed into one (tokens, hidden) matrix; only attention sees the padded layout.
- **CLS-only last layer** for CLS pooling: queries, output projection and feed-forward of the
  last layer run for the CLS row only (keys and values still cover every token).

Numerics follow ``torch.autocast``'s bf16 rules, which the accuracy guards were set against:
matmuls in bf16 with fp32 accumulation, the residual stream, LayerNorm and embeddings in fp32.
With ``dtype=torch.float32`` it is an exact re-implementation (to float rounding). Whether it
matches transformers' model is checked when it is built (:func:`build_packed_bert`), so a
model it does not understand keeps running through transformers.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def _mkldnn_bf16() -> bool:
    """oneDNN's packed bf16 linear exists in this torch build and runs on this CPU."""
    try:
        op = torch.ops.mkldnn._linear_pointwise  # noqa: F841 - raises when not compiled in
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# Pack a batch's tokens when fewer than this share of its positions are real tokens.
PACK_BELOW = 0.92


class _Linear:
    """``x @ W.T + b`` (optionally GELU) with W prepared once for the compute dtype."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype,
                 *, gelu: bool = False, onednn: bool = False, rows_hint: int = 4096) -> None:
        self.weight: torch.Tensor | None = weight.detach().to(dtype).contiguous()
        self.bias = None if bias is None else bias.detach().to(dtype).contiguous()
        self.gelu = gelu
        self.packed: torch.Tensor | None = None
        if onednn:  # the blocked copy replaces the plain one
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, rows_hint)
            self.weight = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            if self.gelu:
                return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "none")
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        assert self.weight is not None
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.gelu else y


class _Layer:
    def __init__(self, layer: Any, dtype: torch.dtype, onednn: bool, *, cls_only: bool = False) -> None:
        sa, so = layer.attention.self, layer.attention.output
        qkv_w = torch.cat([sa.query.weight, sa.key.weight, sa.value.weight])
        qkv_b = torch.cat([sa.query.bias, sa.key.bias, sa.value.bias])
        hidden = sa.query.weight.shape[0]
        # A layer computing every position projects Q, K and V at once; the CLS-only last layer
        # projects one query per input: Q alone, K and V together. Only one form is kept.
        self.qkv: _Linear | None = None
        self.q: _Linear | None = None
        self.kv: _Linear | None = None
        if cls_only:
            self.q = _Linear(sa.query.weight, sa.query.bias, dtype, onednn=onednn, rows_hint=64)
            self.kv = _Linear(qkv_w[hidden:], qkv_b[hidden:], dtype, onednn=onednn)
        else:
            self.qkv = _Linear(qkv_w, qkv_b, dtype, onednn=onednn)
        self.out = _Linear(so.dense.weight, so.dense.bias, dtype, onednn=onednn)
        self.ln1 = (so.LayerNorm.weight.detach(), so.LayerNorm.bias.detach(), so.LayerNorm.eps)
        self.ffn1 = _Linear(layer.intermediate.dense.weight, layer.intermediate.dense.bias, dtype,
                            gelu=True, onednn=onednn)
        self.ffn2 = _Linear(layer.output.dense.weight, layer.output.dense.bias, dtype, onednn=onednn)
        self.ln2 = (layer.output.LayerNorm.weight.detach(), layer.output.LayerNorm.bias.detach(),
                    layer.output.LayerNorm.eps)


class PackedBert(torch.nn.Module):
    """``forward(input_ids, attention_mask, token_type_ids) -> last hidden states`` (fp32).

    Returns (batch, length, hidden), zeros at padded positions, or (batch, 1, hidden) when
    built with ``cls_only=True``.
    """

    def __init__(self, model: Any, *, dtype: torch.dtype = torch.bfloat16, cls_only: bool = False) -> None:
        super().__init__()
        config = model.config
        self.heads = config.num_attention_heads
        self.hidden = config.hidden_size
        self.head_size = self.hidden // self.heads
        self.dtype = dtype
        self.cls_only = cls_only
        self.onednn = dtype == torch.bfloat16 and _mkldnn_bf16()
        emb = model.embeddings
        self.word = emb.word_embeddings.weight.detach()
        self.position = emb.position_embeddings.weight.detach()
        self.token_type = emb.token_type_embeddings.weight.detach()
        self.ln0 = (emb.LayerNorm.weight.detach(), emb.LayerNorm.bias.detach(), emb.LayerNorm.eps)
        last = len(model.encoder.layer) - 1
        self.layers = [_Layer(layer, dtype, self.onednn, cls_only=cls_only and i == last)
                       for i, layer in enumerate(model.encoder.layer)]

    def describe(self) -> str:
        return "packed" + ("/onednn" if self.onednn else "")

    def _norm(self, x: torch.Tensor, ln: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden,), ln[0], ln[1], ln[2])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        heads, size, hidden, dt = self.heads, self.head_size, self.hidden, self.dtype
        mask = attention_mask.bool()
        real = int(mask.sum())
        padded = real < batch * length
        key_mask = mask[:, None, None, :] if padded else None
        # Pack the real tokens into (tokens, hidden) when padding is worth removing: moving rows
        # in and out around attention costs about as much as computing on 8% of padding.
        pack = real < PACK_BELOW * batch * length
        flat_ids, flat_types = input_ids.reshape(-1), token_type_ids.reshape(-1)
        positions = torch.arange(length).repeat(batch)
        index = gaps = None
        if pack:
            index = mask.reshape(-1).nonzero().squeeze(1)
            gaps = (~mask).reshape(-1).nonzero().squeeze(1)
            flat_ids, flat_types, positions = flat_ids[index], flat_types[index], positions[index]
        h = self._norm(self.word[flat_ids] + self.position[positions] + self.token_type[flat_types], self.ln0)
        # Row of each input's CLS token in h (for the CLS-only last layer).
        starts = None
        if self.cls_only:
            lengths = mask.sum(1)
            starts = torch.cumsum(lengths, 0) - lengths if pack else torch.arange(batch) * length
        for layer in self.layers:
            x = h.to(dt)
            if layer.qkv is None:  # the CLS-only last layer
                assert layer.q is not None and layer.kv is not None and starts is not None
                kv = self._unpack(layer.kv(x), index, gaps, batch * length)
                k, v = kv.view(batch, length, 2, heads, size).permute(2, 0, 3, 1, 4)
                h = h[starts]
                q = layer.q(x[starts]).view(batch, 1, heads, size).transpose(1, 2)
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
                ctx = ctx.transpose(1, 2).reshape(batch, hidden)
            else:
                qkv = self._unpack(layer.qkv(x), index, gaps, batch * length)
                q, k, v = qkv.view(batch, length, 3, heads, size).permute(2, 0, 3, 1, 4)
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
                ctx = ctx.transpose(1, 2).reshape(batch * length, hidden)
                if index is not None:
                    ctx = ctx[index]
            h = self._norm(layer.out(ctx) + h, layer.ln1)  # bf16 + fp32 -> fp32, as autocast does
            h = self._norm(layer.ffn2(layer.ffn1(h.to(dt))) + h, layer.ln2)
        if starts is not None:
            return h.view(batch, 1, hidden)
        if index is not None:
            h = self._unpack(h, index, gaps, batch * length)
        elif padded:
            h = h * mask.reshape(-1, 1)
        return h.view(batch, length, hidden)

    @staticmethod
    def _unpack(rows: torch.Tensor, index: torch.Tensor | None, gaps: torch.Tensor | None,
                size: int) -> torch.Tensor:
        """Packed rows back in the (batch * length, width) layout, zeros at padding (which
        attention masks, but must not be NaN or inf: 0 * NaN is NaN)."""
        if index is None or gaps is None:
            return rows
        out = rows.new_empty(size, rows.shape[1])
        out[index] = rows
        out[gaps] = 0
        return out


def probe_batch(config: Any, device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Two rows of 6 tokens, the second padded after 4: the mask path is exercised."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (2, 6), generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "token_type_ids": torch.zeros_like(ids).to(device)}


def build_packed_bert(model: Any, *, dtype: torch.dtype, cls_only: bool) -> PackedBert | None:
    """A :class:`PackedBert` for a transformers BERT model on the CPU, or None.

    None when the model is not a plain BERT encoder (absolute positions, exact GELU, not a
    decoder) or when the packed forward, run in fp32 on a tiny padded batch, does not give
    transformers' own hidden states: a model this file does not understand keeps running
    through transformers rather than giving wrong vectors.
    """
    config = model.config
    if (config.model_type != "bert" or config.is_decoder or config.hidden_act != "gelu"
            or getattr(config, "position_embedding_type", "absolute") != "absolute"
            or config.hidden_size % config.num_attention_heads):
        return None
    try:
        exact = PackedBert(model, dtype=torch.float32, cls_only=cls_only)
        probe = probe_batch(config)
        with torch.inference_mode():
            expected = model(**probe).last_hidden_state
            got = exact(**probe)
        # transformers leaves values at padded positions; the packed forward has zeros there.
        expected = expected[:, :1] if cls_only else expected * probe["attention_mask"][..., None]
        same = got.shape == expected.shape and bool(torch.allclose(got, expected, atol=1e-4, rtol=1e-4))
        why = "its hidden states differ from transformers'"
    except Exception as exc:  # a BERT variant built differently: transformers runs it
        same, why = False, f"{type(exc).__name__}: {exc}"
    if not same:
        log.info("packed BERT forward not used (%s): running the model through transformers", why)
        return None
    return exact if dtype == torch.float32 else PackedBert(model, dtype=dtype, cls_only=cls_only)
