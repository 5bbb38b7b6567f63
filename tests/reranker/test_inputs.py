"""What the Reranker accepts and refuses, and its documented semantics: normalize, max_length
and which side of a long pair is cut, ties, empty input, lazy loading, presets."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bge_vdb import ConfigError, Hit, InputError, ModelError, Reranker
from bge_vdb.reranker import order_hits
from bge_vdb.reranker_models import RERANKER_PRESETS
from tests.reranker.conftest import seeded_pairs
from tests.support.cross_encoders import WORDS, build_cross_encoder

ROOT = Path(__file__).resolve().parents[2]
_MODELS: dict[tuple[str, int | None], Reranker] = {}


def _fp32(path: Path, max_length: int | None = None) -> Reranker:
    """One loaded fp32 reranker per (model, max_length) for the whole module."""
    key = (str(path), max_length)
    if key not in _MODELS:
        _MODELS[key] = Reranker(path, backend="torch", precision="fp32", max_length=max_length).load()
    return _MODELS[key]


def _hits(texts: list[str | None]) -> list[Hit]:
    return [Hit(id=f"id-{i}", score=0.5, text=t, metadata={"n": i}) for i, t in enumerate(texts)]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("pairs", "error", "message"), [
    ([("q", "p"), ("", "p")], InputError, r"pair 1: the query is empty"),
    ([("q", "p"), ("q", "p"), ("q", "   \n")], InputError, r"pair 2: the passage is empty"),
    ([("q", 3)], TypeError, r"pair 0: the passage is int, not str"),
    ([(None, "p")], TypeError, r"pair 0: the query is NoneType"),
    ([("q", "p"), ("only one",)], TypeError, r"pair 1 is not a \(query, passage\) pair"),
    ([("q", "p"), "qp"], TypeError, r"pair 1 is not a \(query, passage\) pair"),
    (("q", "p"), TypeError, r"wrap one pair as \[\(query, passage\)\]"),
    ("text", TypeError, r"list of \(query, passage\) pairs"),
    (42, TypeError, r"not int"),
])
def test_bad_pairs_name_the_position_and_load_nothing(bert_ce: Path, pairs: object, error: type,
                                                      message: str) -> None:
    r = Reranker(bert_ce, backend="torch", precision="fp32")
    with pytest.raises(error, match=message):
        r.score(pairs)  # type: ignore[arg-type]
    assert r._backend is None and r._layout is None  # validated before the model was touched


def test_rerank_refuses_hits_without_text_naming_id_and_position(bert_ce: Path) -> None:
    r = Reranker(bert_ce, backend="torch", precision="fp32")
    with pytest.raises(InputError, match=r"hit 'id-2' at position 2 has no text"):
        r.rerank("query", _hits(["a", "b", None]))
    with pytest.raises(InputError, match=r"hit 'id-1' at position 1 has no text"):
        r.rerank("query", _hits(["a", " ", "c"]))
    with pytest.raises(TypeError, match=r"hit at position 0 is dict"):
        r.rerank("query", [{"id": "x", "text": "y"}])  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"the query is empty"):
        r.rerank(" ", _hits(["a"]))
    with pytest.raises(ConfigError, match=r"k must be a non-negative integer"):
        r.rerank("q", _hits(["a"]), k=-1)
    assert r._backend is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "tensorflow"}, "backend must be"),
    ({"precision": "int4"}, "precision must be"),
    ({"backend": "onnx", "precision": "bf16"}, "torch option"),
    ({"normalize": "yes"}, "normalize must be"),
    ({"max_length": 2}, "max_length must be"),
    ({"batch_tokens": 0}, "batch_tokens must be"),
    ({"threads": 0}, "threads must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"pooling": "cls"}, r"unknown Reranker option\(s\) \['pooling'\]"),
])
def test_bad_arguments_fail_at_construction(bert_ce: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Reranker(bert_ce, **kwargs)  # type: ignore[arg-type]


def test_models_that_are_not_rerankers_are_refused_before_loading(tmp_path: Path, bert_ce: Path) -> None:
    two = build_cross_encoder(tmp_path / "two", layout="bert", num_labels=2)
    with pytest.raises(ModelError, match=r"not a cross-encoder reranker: it has 2 labels"):
        Reranker(two).score([("q", "p")])
    custom = tmp_path / "custom"
    shutil.copytree(bert_ce, custom)
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling.Custom"}
    (custom / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"custom code \(auto_map\)"):
        Reranker(custom).score([("q", "p")])
    pickled = tmp_path / "pickled"
    shutil.copytree(bert_ce, pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    (pickled / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ModelError, match=r"no model.safetensors .*pytorch_model.bin.*safetensors only"):
        Reranker(pickled, backend="torch").score([("q", "p")])
    with pytest.raises(ModelError, match="does not exist"):
        Reranker(str(tmp_path / "no" / "such"))
    with pytest.raises(ConfigError, match=r"exceeds the model's 128 positions"):
        Reranker(bert_ce, max_length=4096).score([("q", "p")])


def test_a_model_that_cannot_be_had_says_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    r = Reranker("BAAI/bge-reranker-large")
    assert r.max_length == 512  # the preset answers without any file
    with pytest.raises(ModelError) as info:
        r.score([("q", "p")])
    assert "BAAI/bge-reranker-large" in str(info.value) and "Reranker('DIR')" in str(info.value)


# ------------------------------------------------------------------------ empty, ties, k


def test_empty_input(bert_ce: Path) -> None:
    r = Reranker(bert_ce, backend="torch", precision="fp32")
    out = r.score([])
    assert out.dtype == np.float32 and out.shape == (0,)
    assert r.rerank("query", []) == []
    assert r._backend is None  # nothing to score: nothing loaded


def test_rerank_returns_new_hits_best_first(cross_encoder: Path) -> None:
    r = _fp32(cross_encoder)
    texts = [p for _, p in seeded_pairs(12, seed=5)]
    hits = _hits(list(texts))
    expected = r.score([("what is the capital of france", t) for t in texts])
    out = r.rerank("what is the capital of france", hits, k=5)
    assert len(out) == 5
    assert [h.score for h in out] == sorted(expected.tolist(), reverse=True)[:5]
    for h in out:
        i = int(h.metadata["n"])
        assert h.id == hits[i].id and h.text == hits[i].text and h.score == pytest.approx(float(expected[i]))
    assert all(h.score == 0.5 for h in hits)  # the input hits are unchanged
    assert len(r.rerank("what is the capital of france", hits)) == 12
    assert r.rerank("what is the capital of france", hits, k=0) == []


def test_equal_texts_keep_their_input_order(cross_encoder: Path) -> None:
    r = _fp32(cross_encoder)
    hits = _hits(["the panda eats bamboo"] * 3 + ["dog"] + ["the panda eats bamboo"] * 2)
    out = r.rerank("panda", hits)
    same = [h.metadata["n"] for h in out if h.text == "the panda eats bamboo"]
    assert same == [0, 1, 2, 4, 5]


_scores = st.lists(st.sampled_from([0.0, 1.0, -2.5, 3.25, math.nan]), min_size=0, max_size=30)


@settings(max_examples=200)
@given(scores=_scores, k=st.none() | st.integers(0, 35))
def test_order_is_best_first_stable_with_nan_last(scores: list[float], k: int | None) -> None:
    """The ordering rule itself, over many score lists with ties and NaNs (a model or server
    can produce NaN: it must neither crash the sort nor outrank a real score)."""
    hits = _hits([f"t{i}" for i in range(len(scores))])
    out = order_hits(hits, np.asarray(scores, dtype=np.float32), k)
    positions = [int(h.metadata["n"]) for h in out]
    expected = sorted(range(len(scores)), key=lambda i: (math.isnan(scores[i]),
                                                         -scores[i] if not math.isnan(scores[i]) else 0, i))
    assert positions == expected[: len(scores) if k is None else k]


# ------------------------------------------------------------------- normalize, max_length


def test_normalize_is_the_sigmoid_of_the_raw_logit(bert_ce: Path) -> None:
    pairs = seeded_pairs(20, seed=3)
    raw = Reranker(bert_ce, backend="torch", precision="fp32", normalize=False)
    sig = Reranker(bert_ce, backend="torch", precision="fp32", normalize=True)
    assert (raw.normalize, sig.normalize) == (False, True)
    logits, probs = raw.score(pairs), sig.score(pairs)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits.astype(np.float64))), rtol=1e-6)
    assert ((probs > 0) & (probs < 1)).all()
    assert Reranker(bert_ce).normalize is False  # a directory without a preset: raw, as FlagEmbedding


def test_defaults_come_from_the_preset_or_the_directory(bert_ce: Path, xlmr_ce: Path) -> None:
    base = Reranker("BAAI/bge-reranker-base")
    assert (base.model_id, base.max_length, base.normalize) == ("BAAI/bge-reranker-base", 512, False)
    assert Reranker("baai/BGE-reranker-v2-m3").max_length == 1024
    assert Reranker("BAAI/bge-reranker-large", normalize=True, max_length=256).max_length == 256
    assert set(RERANKER_PRESETS) == {"BAAI/bge-reranker-base", "BAAI/bge-reranker-large",
                                     "BAAI/bge-reranker-v2-m3"}
    # tokenizer_config.json's model_max_length (128); XLM-R's 130 positions hold 128 tokens
    assert Reranker(bert_ce).max_length == 128 and Reranker(xlmr_ce).max_length == 128
    assert Reranker(bert_ce).model_id == str(bert_ce.resolve())


_word = st.sampled_from([w for w in WORDS if w not in ("a",)])


@settings(max_examples=20)
@given(query=st.lists(_word, min_size=1, max_size=30), passage=st.lists(_word, min_size=1, max_size=30))
def test_long_pairs_cut_the_query_to_three_quarters_and_the_passage_to_the_rest(
        bert_ce: Path, xlmr_ce: Path, query: list[str], passage: list[str]) -> None:
    """Every word here is one token in both tiny tokenizers, so the cut can be stated in words.
    As FlagEmbedding: with max_length=16 a query keeps at most 12 words (3/4 of 16; 11 for
    XLM-R, whose 4 special tokens would leave no passage token), even when the pair would fit;
    the passage keeps the first words that fit in what is left."""
    for path, specials in ((bert_ce, 3), (xlmr_ce, 4)):
        r = _fp32(path, max_length=16)
        room = 16 - specials
        q_most = min(12, room - 1)
        q_kept = min(len(query), q_most)
        p_kept = min(len(passage), room - q_kept)
        cut = (" ".join(query[:q_kept]), " ".join(passage[:p_kept]))  # fits: never cut again
        long_score, cut_score = r.score([(" ".join(query), " ".join(passage)), cut])
        assert r.last_truncated == int(len(query) > q_most or len(query) + len(passage) > room)
        assert long_score == pytest.approx(cut_score, abs=1e-5)


def test_truncation_is_counted_and_logged(bert_ce: Path, caplog: pytest.LogCaptureFixture) -> None:
    r = _fp32(bert_ce, max_length=16)
    long_text = " ".join(WORDS[:30])
    with caplog.at_level("WARNING", logger="bge_vdb.reranker"):
        r.score([("dog", "cat"), ("dog", long_text), (long_text, "cat")])
    assert r.last_truncated == 2
    assert "2 of 3 pair(s) were truncated to 16 tokens (a query keeps at most 12" in caplog.text


def test_batching_never_changes_a_score(cross_encoder: Path) -> None:
    """Length-sorted token-budget batches (many small ones, or one) give the same scores in input order."""
    pairs = seeded_pairs(20, seed=7)
    one = Reranker(cross_encoder, backend="torch", precision="fp32", batch_tokens=100_000, batch_size=64)
    many = Reranker(cross_encoder, backend="torch", precision="fp32", batch_tokens=64, batch_size=3)
    singles = np.concatenate([_fp32(cross_encoder).score([p]) for p in pairs])
    np.testing.assert_allclose(one.score(pairs), singles, atol=1e-5)
    np.testing.assert_allclose(many.score(pairs), singles, atol=1e-5)


# ------------------------------------------------------------------------- lazy, imports


def test_construction_is_lazy_and_loads_once(bert_ce: Path) -> None:
    r = Reranker(bert_ce, backend="torch", precision="fp32")
    assert r._backend is None and "not loaded" in repr(r)
    _ = (r.model_id, r.max_length, r.normalize)
    assert r._backend is None  # reading the settings loads no weights
    r.score([("q", "p")])
    backend = r._backend
    r.score([("q", "p")])
    assert r._backend is backend and "torch/cpu/fp32" in repr(r)


def test_import_bge_vdb_does_not_import_torch() -> None:
    code = ("import sys, bge_vdb; r = bge_vdb.Reranker; "
            "from bge_vdb.reranker import Reranker; "
            "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("backend", "module", "extra"), [("torch", "torch", "torch"),
                                                           ("onnx", "onnxruntime", "onnx")])
def test_a_missing_backend_names_the_extra(bert_ce: Path, monkeypatch: pytest.MonkeyPatch, backend: str,
                                           module: str, extra: str) -> None:
    from bge_vdb import MissingExtra

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingExtra, match=rf"pip install 'bge-vdb\[{extra}\]'"):
        Reranker(bert_ce, backend=backend).score([("q", "p")])
