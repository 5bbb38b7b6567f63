"""Shared data for the migrate tests: records with Chinese text and nested metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bge_vdb.store import Collection, VectorStore
from bge_vdb.types import Record
from tests.support.fake_embedder import HashEmbedder

DIM = 8
SRC_EMBEDDER = HashEmbedder(dim=DIM, name="test/source-model")


def make_records(n: int, dim: int = DIM, seed: int = 7) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        vec = rng.normal(size=dim)
        meta: dict[str, Any] = {
            "lang": "zh" if i % 2 else "en",
            "title": f"向量数据库迁移 第{i}号文档",
            "year": 2020 + i % 5,
            "score": i / 4,
            "draft": i % 3 == 0,
            "nested": {"tags": ["数据", "迁移", f"t{i % 4}"], "n": i,
                       "deep": {"ok": i % 2 == 0, "作者": "李雷"}},
        }
        out.append(Record(
            id=f"doc-{i:04d}", vector=vec / np.linalg.norm(vec),
            text=f"文档 {i}: migrating vector number {i} between stores",
            metadata=meta, content_hash=f"h{i}" if i % 2 else None,
        ))
    return out


def fill_source(store: VectorStore, name: str, records: list[Record],
                embedder: HashEmbedder | None = SRC_EMBEDDER, dim: int = DIM) -> Collection:
    col = store.collection(name, embedder=embedder, dim=None if embedder else dim)
    col.upsert(records)
    return col


@pytest.fixture
def records() -> list[Record]:
    return make_records(60)
