"""Tiny random cross-encoders (rerankers) built on the fly, in the two layouts BAAI's rerankers
and their kin use:

* ``"bert"``: ``BertForSequenceClassification`` with a WordPiece tokenizer (pairs as
  ``[CLS] q [SEP] p [SEP]`` with token types 0/1);
* ``"xlm-roberta"``: ``XLMRobertaForSequenceClassification`` (bge-reranker-base, -large and
  -v2-m3 are XLM-RoBERTa) with a SentencePiece-style Unigram tokenizer (pairs as
  ``<s> q </s></s> p </s>``, one token type, positions offset past the padding index).

Both have ``num_labels=1`` and safetensors weights, so they load exactly as a real reranker
does. The weights are random: scores are meaningful only as agreement between code paths.

    from tests.support.cross_encoders import build_cross_encoder
    path = build_cross_encoder(tmp_path / "ce", layout="bert")   # -> the model directory
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Literal

Layout = Literal["bert", "xlm-roberta"]

WORDS = [
    "the", "a", "of", "to", "in", "and", "is", "was", "for", "on", "with", "it", "this", "that",
    "what", "who", "where", "how", "vector", "database", "search", "query", "passage", "model",
    "text", "retrieval", "relevant", "capital", "france", "paris", "berlin", "germany", "river",
    "mountain", "city", "book", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "cat",
    "water", "fire", "panda", "bamboo", "eats", "hello", "world", "long", "short",
]
PIECES = ["s", "ing", "ed", "er", "ly"]
CHINESE = list("北京是中国的首都熊猫吃竹子向量数据库检索相关文章")
PUNCT = list(".,:;!?'\"()-")


def build_cross_encoder(root: Path, *, layout: Layout = "bert", seed: int = 0, hidden: int = 32,
                        layers: int = 2, max_positions: int = 128, num_labels: int = 1,
                        init_range: float = 0.2) -> Path:
    """Save a tiny random sequence-classification model + fast tokenizer in ``root``.

    Args:
        root: the directory to create (parents too).
        layout: ``"bert"`` or ``"xlm-roberta"`` (see the module docstring).
        seed: torch seed for the random weights (different seeds: different models).
        hidden: hidden size (heads: 2).
        layers: encoder layers.
        max_positions: usable token positions (XLM-R stores ``max_positions + 2``, as RoBERTa does).
        num_labels: 1 for a reranker; other values build models the Reranker must refuse.
        init_range: std of the random weights. transformers' default (0.02) gives logits that
            differ in the 5th decimal between pairs, so any ranking of them is rounding noise;
            0.2 spreads them (std ~0.4), which makes ranking comparisons meaningful.

    Returns:
        ``root``.
    """
    import torch

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if layout == "bert":
        vocab_size = _bert_tokenizer(root)
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=2, intermediate_size=2 * hidden,
                            max_position_embeddings=max_positions, num_labels=num_labels,
                            initializer_range=init_range)
        model = BertForSequenceClassification(config)
    elif layout == "xlm-roberta":
        vocab_size = _xlmr_tokenizer(root, max_positions)
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        config = XLMRobertaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=2, intermediate_size=2 * hidden,
                                  max_position_embeddings=max_positions + 2, type_vocab_size=1,
                                  pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=num_labels,
                                  initializer_range=init_range)
        model = XLMRobertaForSequenceClassification(config)
    else:
        raise ValueError(f"layout must be 'bert' or 'xlm-roberta', not {layout!r}")
    model.eval().save_pretrained(str(root), safe_serialization=True)
    return root


def _bert_tokenizer(root: Path) -> int:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = list(dict.fromkeys(specials + PUNCT + WORDS + ["##" + p for p in PIECES] + CHINESE
                               + [str(d) for d in range(10)]))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    save_bert_tokenizer(root)
    return len(vocab)


def save_bert_tokenizer(root: Path) -> None:
    """Save a WordPiece tokenizer over ``root/vocab.txt`` into ``root`` (any transformers)."""
    import transformers

    # transformers 5 made BertTokenizer the fast one; 4.x needs BertTokenizerFast for tokenizer.json.
    tokenizer_cls = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
    # transformers 5 names the vocabulary argument ``vocab`` (``vocab_file`` is silently ignored
    # there: every token would be [UNK]); 4.x names it ``vocab_file``.
    arg = "vocab" if "vocab" in inspect.signature(tokenizer_cls.__init__).parameters else "vocab_file"
    tokenizer = tokenizer_cls(**{arg: str(root / "vocab.txt")}, do_lower_case=True)
    tokenizer.save_pretrained(str(root))


def _xlmr_tokenizer(root: Path, max_positions: int) -> int:
    """A Unigram (SentencePiece-style) tokenizer with XLM-R's special tokens and pair template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces = (["\u2581" + w for w in WORDS] + WORDS + PIECES + CHINESE + ["\u2581" + c for c in CHINESE]
              + PUNCT + ["\u2581" + p for p in PUNCT] + [str(d) for d in range(10)]
              + list("abcdefghijklmnopqrstuvwxyz") + ["\u2581"])
    vocab = [(s, 0.0) for s in specials] + [(p, -1.0 - 0.1 * len(p) ** 0.5) for p in dict.fromkeys(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(root / "tokenizer.json"))
    (root / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "mask_token": "<unk>", "model_max_length": max_positions}), encoding="utf-8")
    (root / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>"}), encoding="utf-8")
    return len(vocab)
