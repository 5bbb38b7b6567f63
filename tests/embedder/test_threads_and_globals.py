"""Issue 14, items 8 and 10: the first load under concurrent first calls, and no global side
effects (torch's process-wide thread count, the root logger) from loading or building models."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_vdb import Embedder

TEXTS = ["the quick brown fox", "a long passage about vector database search " * 3, "北京的冬天"]


def _count_loads(monkeypatch: pytest.MonkeyPatch, backend: str) -> list[int]:
    """Wrap the backend class the Embedder constructs so each construction is recorded; the
    real backend is still built (nothing about the load is faked)."""
    if backend == "torch":
        from bge_vdb.backends import torch as module
        cls: Any = module.TorchBackend
    else:
        from bge_vdb.backends import onnx as module  # type: ignore[no-redef]
        cls = module.OnnxBackend
    loads: list[int] = []

    class Counting(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            loads.append(threading.get_ident())
            time.sleep(0.2)  # a slow load: leaves every other thread time to start its own
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(module, cls.__name__, Counting)
    return loads


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_first_calls_from_many_threads_load_the_model_once(
        tiny_bge: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = Embedder(tiny_bge, backend=backend, precision="fp32").embed_documents(TEXTS)
    loads = _count_loads(monkeypatch, backend)
    emb = Embedder(tiny_bge, backend=backend, precision="fp32")
    threads = 6
    start = threading.Barrier(threads)

    def first_call(i: int) -> np.ndarray:
        start.wait()  # every thread makes its first call at the same moment
        return emb.embed_documents(TEXTS) if i % 2 else emb.embed_queries(TEXTS[:1])

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(first_call, range(threads)))
    assert len(loads) == 1
    for i, got in enumerate(results):
        if i % 2:
            np.testing.assert_allclose(got, expected, atol=1e-6)
    emb.embed_documents(TEXTS)
    assert len(loads) == 1  # later calls reuse it


def test_langchain_async_first_calls_load_once(tiny_bge: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LangChain's async methods run the sync ones in an executor: concurrent first calls."""
    pytest.importorskip("langchain_core")
    from bge_vdb.integrations.langchain import BGEEmbeddings

    loads = _count_loads(monkeypatch, "torch")
    lc = BGEEmbeddings(str(tiny_bge), backend="torch", precision="fp32")

    async def main() -> list[Any]:
        return await asyncio.gather(*(lc.aembed_documents(TEXTS) for _ in range(4)),
                                    lc.aembed_query("hello world"))

    results = asyncio.run(main())
    assert len(loads) == 1
    assert all(np.allclose(r, results[0], atol=1e-6) for r in results[:4])


def test_an_embedder_still_pickles_and_copies(tiny_bge: Path) -> None:
    """The lock is not part of its state: each copy gets its own, and works."""
    emb = Embedder(tiny_bge, backend="torch", precision="fp32")
    for clone in (pickle.loads(pickle.dumps(emb)), copy.deepcopy(emb), copy.copy(emb)):
        assert clone._load_lock is not emb._load_lock
        assert clone.embed_documents(TEXTS[:1]).shape == (1, 32)
