"""A deterministic, dependency-free embedder for testing stores and jobs without torch.

It is a test double for the *embedder* only (databases are always real engines or wire-level
fakes). Texts sharing character trigrams get similar vectors, so search results are meaningful.
It honours the same contract as ``bge_vdb.Embedder``: dim, fingerprint, embed_documents,
embed_query (with an instruction prefix), count_tokens, max_length, and it counts calls so tests
can assert what was (not) re-embedded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


class HashEmbedder:
    def __init__(self, dim: int = 16, *, name: str = "test/hash-embedder", max_length: int = 512,
                 query_instruction: str = "query: ") -> None:
        self._dim = dim
        self.name = name
        self.max_length = max_length
        self.query_instruction = query_instruction
        self.embedded_texts: list[str] = []
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.name, "weights_sha256": None, "pooling": "mean", "normalize": True,
                "query_instruction": self.query_instruction, "dim": self._dim,
                "max_length": self.max_length}

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float64)
        padded = f"  {text}  "
        for i in range(len(padded) - 2):
            h = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=8).digest()
            idx = int.from_bytes(h[:4], "little") % self._dim
            sign = 1.0 if h[4] & 1 else -1.0
            v[idx] += sign
        if not v.any():
            v[0] = 1.0
        return (v / np.linalg.norm(v)).astype(np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a list of strings")
        self.calls += 1
        self.embedded_texts.extend(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._vec(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vec(self.query_instruction + text)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.embed_query(t) for t in texts]) if texts else np.zeros((0, self._dim), np.float32)

    def split_text(self, text: str, *, window: int | None = None, overlap: int = 32) -> list[str]:
        """Token windows with ``overlap`` (words are this embedder's tokens), like Embedder.split_text.

        ``window`` counts content tokens; by default it is ``max_length`` minus the 2 special tokens.
        """
        words = text.split()
        size = window if window is not None else self.max_length - 2
        if size < 1 or not 0 <= overlap < size:
            raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {size} and {overlap}")
        if len(words) <= size:
            return [text]
        step = size - overlap
        starts = range(0, max(len(words) - overlap, 1), step)
        return [" ".join(words[s : s + size]) for s in starts]
