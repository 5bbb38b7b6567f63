"""Tiny random BERT models: loading, pooling choice, batching order, truncation, text variety."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import Embedder
from bge_vdb.backends import pool
from bge_vdb.embedder import _pad, plan_batches
from bge_vdb.errors import ConfigError, InputError, ModelError
from bge_vdb.models import EN_INSTRUCTION, ZH_INSTRUCTION

from .conftest import fake_hf_cache

BACKENDS = ["torch", "onnx"]


def make(path: Path, **kw: object) -> Embedder:
    kw.setdefault("backend", "torch")
    if kw["backend"] == "torch":
        kw.setdefault("precision", "fp32")
    return Embedder(str(path), **kw)  # type: ignore[arg-type]


def test_layouts_decide_pooling_and_normalize(tiny_bge: Path, tiny_mean: Path, tiny_bare: Path) -> None:
    bge, mean, bare = make(tiny_bge), make(tiny_mean), make(tiny_bare)
    assert (bge.layout.pooling, bge.layout.normalize) == ("cls", True)
    assert (mean.layout.pooling, mean.layout.normalize) == ("mean", False)
    assert (bare.layout.pooling, bare.layout.normalize) == ("cls", True)  # BGE default
    assert bge.dim == mean.dim == 32
    assert bge.max_length == 64  # sentence_bert_config.json
    assert bare.max_length == 128  # config.json positions
    assert np.allclose(np.linalg.norm(bge.embed_documents(["hello world"]), axis=1), 1.0, atol=1e-6)
    assert not np.allclose(np.linalg.norm(mean.embed_documents(["hello world"]), axis=1), 1.0)


def test_explicit_arguments_win(tiny_bge: Path) -> None:
    emb = make(tiny_bge, pooling="mean", normalize=False, max_length=20, query_instruction="q: ")
    lay = emb.layout
    assert (lay.pooling, lay.normalize, lay.max_length, emb.query_instruction) == ("mean", False, 20, "q: ")
    # And they change the vectors as they should: unnormalized mean of the hidden states.
    texts = ["hello world", "the dog cat"]
    batch = _pad(emb.load()._tokenizer.encode_batch(texts))
    hidden = emb.backend.hidden_states(batch)
    expected = [hidden[i, : int(batch.attention_mask[i].sum())].mean(axis=0) for i in range(2)]
    np.testing.assert_allclose(emb.embed_documents(texts), expected, atol=1e-5)


def test_pool_shared_code() -> None:
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    np.testing.assert_allclose(pool(hidden, mask, "cls", False), hidden[:, 0])
    np.testing.assert_allclose(pool(hidden, mask, "mean", False), [[1.0, 2.0], [8.0, 9.0]])
    out = pool(hidden, mask, "mean", True)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_batching_order_is_input_order(tiny_bge: Path) -> None:
    texts = [("dog " * n).strip() for n in (3, 40, 1, 17, 8, 25, 2, 60, 5)]
    emb = make(tiny_bge, batch_size=2)
    together = emb.embed_documents(texts)
    one_by_one = np.stack([emb.embed_documents([t])[0] for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert len({tuple(np.round(v, 5)) for v in together}) == len(texts)


def test_plan_batches_token_budget() -> None:
    assert [list(r) for r in plan_batches([10, 9, 8, 7, 6], 2, None)] == [[0, 1], [2, 3], [4]]
    # Budget 100 tokens: long inputs (60) one at a time, short ones (10) up to batch_size.
    assert [len(r) for r in plan_batches([60, 60, 10, 10, 10, 10, 10], 4, 100)] == [1, 1, 4, 1]
    assert [len(r) for r in plan_batches([500], 32, 100)] == [1]  # never an empty batch


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncation_is_counted_and_warned_once(backend: str, tiny_bge: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    emb = make(tiny_bge, backend=backend)
    texts = ["cat " * 100, "short text", "dog " * 63, "dog " * 62]  # 102, 4, 65, 64 tokens
    assert emb.count_tokens(texts) == [102, 4, 65, 64]
    with caplog.at_level(logging.WARNING, logger="bge_vdb.embedder"):
        vecs = emb.embed_documents(texts)
    assert vecs.shape == (4, 32)
    assert emb.last_truncated == 2 and emb.truncated_total == 2
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 4" in warnings[0].getMessage()
    # A truncated text embeds like its first max_length tokens.
    np.testing.assert_allclose(vecs[2], emb.embed_documents(["dog " * 62])[0], atol=1e-5)
    emb.embed_documents(["short text"])
    assert emb.last_truncated == 0 and emb.truncated_total == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_variety(backend: str, tiny_bge: Path) -> None:
    texts = ["北京上海 中文测试", "hello 北京 world 的 vector", "emoji 🙂🚀 and ☃", "数据库" * 300,
             "x" * 10000, "  leading and trailing spaces  "]
    emb = make(tiny_bge, backend=backend)
    vecs = emb.embed_documents(texts)
    assert vecs.shape == (6, 32) and vecs.dtype == np.float32 and np.isfinite(vecs).all()
    counts = emb.count_tokens(texts)
    assert counts[0] == 2 + 8  # Chinese characters are one token each
    assert counts[3] == 902 and emb.last_truncated == 1
    assert emb._tokenizer.encode("emoji 🙂").tokens == ["[CLS]", "[UNK]", "[UNK]", "[SEP]"]


def test_torch_and_onnx_agree_on_tiny(tiny_mean: Path) -> None:
    texts = ["hello world", "中文测试 and the dog", "river " * 80]
    a = make(tiny_mean, backend="torch").embed_documents(texts)
    b = make(tiny_mean, backend="onnx").embed_documents(texts)
    assert float(np.abs(a - b).max()) <= 1e-4


def test_query_instruction_exact_strings(tiny_bge: Path, tiny_384: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    fake_hf_cache(tmp_path, "BAAI/bge-small-en-v1.5", tiny_384)
    emb = Embedder("BAAI/bge-small-en-v1.5", backend="torch", precision="fp32")
    assert emb.query_instruction == "Represent this sentence for searching relevant passages: "
    q = emb.embed_query("dog")
    np.testing.assert_allclose(q, emb.embed_documents([EN_INSTRUCTION + "dog"])[0], atol=1e-6)
    assert not np.allclose(q, emb.embed_documents(["dog"])[0], atol=1e-3)
    np.testing.assert_allclose(emb.embed_queries(["dog", "cat"])[0], q, atol=1e-6)
    assert emb.count_tokens([EN_INSTRUCTION + "dog"])[0] == emb.count_tokens([EN_INSTRUCTION.rstrip() + " dog"])[0]

    zh = make(tiny_bge, query_instruction=ZH_INSTRUCTION)
    assert zh.query_instruction == "为这个句子生成表示以用于检索相关文章："
    np.testing.assert_allclose(zh.embed_query("中文"), zh.embed_documents([ZH_INSTRUCTION + "中文"])[0],
                               atol=1e-6)
    assert make(tiny_bge).query_instruction == ""


def test_hf_cache_resolution_and_fingerprint(tiny_384: Path, tmp_path: Path, _bge_vdb_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    snap = fake_hf_cache(tmp_path, "BAAI/bge-small-en-v1.5", tiny_384, revision="b" * 40)
    emb = Embedder("BAAI/bge-small-en-v1.5", backend="onnx")
    assert emb.dim == 384 and emb.max_length == 512  # known from the preset before resolving
    fp = emb.fingerprint
    sha = hashlib.sha256((tiny_384 / "model.safetensors").read_bytes()).hexdigest()
    assert fp == {"model": "BAAI/bge-small-en-v1.5", "revision": "b" * 40, "weights_sha256": sha,
                  "pooling": "cls", "normalize": True, "query_instruction": EN_INSTRUCTION,
                  "preset": "BAAI/bge-small-en-v1.5", "dim": 384, "max_length": 512}
    assert emb.layout.resolved.path == snap
    # Hashing a plain directory gives the same value as the cache's blob name, and is kept.
    assert make(tiny_384).fingerprint["weights_sha256"] == sha
    assert sha in (_bge_vdb_cache / "sha256.json").read_text()


def test_preset_dimension_disagreeing_with_config_is_an_error(tiny_bge: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    fake_hf_cache(tmp_path, "BAAI/bge-small-zh-v1.5", tiny_bge)
    emb = Embedder("BAAI/bge-small-zh-v1.5", backend="torch")
    assert emb.dim == 512
    with pytest.raises(ModelError, match=r"dimension 512 .* says 32"):
        emb.embed_documents(["中文"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input(backend: str, tiny_bge: Path) -> None:
    emb = make(tiny_bge, backend=backend)
    assert emb.embed_documents([]).shape == (0, 32)
    assert emb.embed_queries([]).shape == (0, 32)
    assert emb.count_tokens(["", "dog"]) == [2, 3]  # counting accepts what embedding refuses
    with pytest.raises(TypeError, match="single string"):
        emb.embed_documents("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="position 1 is NoneType"):
        emb.embed_documents(["ok", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="position 2 is int"):
        emb.embed_queries(["ok", "fine", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="position 1 is empty"):
        emb.embed_documents(["ok", ""])
    with pytest.raises(ValueError, match="position 0 is empty or whitespace"):
        emb.embed_documents([" \n\t"])
    with pytest.raises(InputError):
        emb.embed_query("")
    with pytest.raises(TypeError):
        emb.embed_query(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single string"):
        list(emb.iter_embed("abc"))
    with pytest.raises(InputError, match="position 1025"):
        list(emb.iter_embed(["dog"] * 1025 + [""]))


def test_bad_arguments(tiny_bge: Path) -> None:
    with pytest.raises(ConfigError):
        Embedder(str(tiny_bge), backend="tensorflow")
    with pytest.raises(ConfigError):
        Embedder(str(tiny_bge), pooling="max")
    with pytest.raises(ConfigError):
        Embedder(str(tiny_bge), batch_size=0)
    with pytest.raises(ConfigError):
        Embedder(str(tiny_bge), precision="int3")
    with pytest.raises(ConfigError, match="exceeds"):
        _ = Embedder(str(tiny_bge), max_length=1000).layout


def test_iter_embed_streams_in_order(tiny_bge: Path) -> None:
    # 375 forward passes of a tiny model: one thread (for these passes only) spares OpenMP's
    # barrier, which made this test take minutes on a loaded machine.
    emb = make(tiny_bge, batch_size=4, threads=1)
    texts = [f"dog {'cat ' * (i % 7)}{i}" for i in range(1500)]

    def gen():  # a generator: never a list
        yield from texts

    chunks = list(emb.iter_embed(gen()))
    assert [len(c) for c in chunks] == [1024, 476]
    np.testing.assert_allclose(np.concatenate(chunks)[::97], emb.embed_documents(texts[::97]), atol=1e-5)


def test_split_text_windows(tiny_bge: Path) -> None:
    emb = make(tiny_bge)
    words = " ".join(["river", "mountain", "city", "book"] * 40)  # 160 tokens
    pieces = emb.split_text(words, window=50, overlap=10)
    counts = emb.count_tokens(pieces)
    assert all(c - 2 <= 50 for c in counts)
    assert pieces[0].startswith("river mountain") and words.endswith(pieces[-1])
    assert all(p in words for p in pieces)
    assert len(pieces) == 4  # starts at 0, 40, 80, 120
    default = emb.split_text(words)
    assert max(emb.count_tokens(default)) <= emb.max_length
    assert emb.split_text("short text") == ["short text"]
    with pytest.raises(ConfigError):
        emb.split_text(words, window=50, overlap=50)


def test_lazy_construction_and_explicit_load(tiny_bge: Path) -> None:
    emb = make(tiny_bge)
    assert emb._backend is None and "not loaded" in repr(emb)
    assert emb.dim == 32 and emb._backend is None  # config.json read, no weights
    assert emb.load() is emb and emb._backend is not None


def test_split_text_keeps_words_whole(tiny_bge: Path) -> None:
    emb = make(tiny_bge)
    # "dogs" = dog ##s and "quickly" = quick ##ly; the other two are one [UNK] each
    text = " ".join(["jumping", "dogs", "walked", "quickly"] * 30)
    pieces = emb.split_text(text, window=25, overlap=6)
    vocab_words = {"jumping", "dogs", "walked", "quickly"}
    for piece in pieces:
        assert set(piece.split()) <= vocab_words, piece  # no "ing" / "s" fragments
        assert emb.count_tokens([piece])[0] - 2 <= 25
    assert " ".join(pieces).count("jumping") >= 30  # everything covered (with overlap)
