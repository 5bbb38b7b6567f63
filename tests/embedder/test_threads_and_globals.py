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


# --- item 10: no global side effects ----------------------------------------------------------


def test_torch_thread_count_is_never_changed_for_the_process(tiny_bge: Path) -> None:
    """Loading used to call torch.set_num_threads(all cores) for the whole process. Now the
    caller's setting stays; an explicit threads=N holds only while bge-vdb's forward runs."""
    torch = pytest.importorskip("torch")
    from bge_vdb.backends.base import default_threads

    caller = default_threads() + 1  # what the old load would have overwritten with the core count
    before = torch.get_num_threads()
    torch.set_num_threads(caller)
    try:
        seen: list[int] = []
        for threads in (None, 1):
            emb = Embedder(tiny_bge, backend="torch", precision="fp32", threads=threads).load()
            assert torch.get_num_threads() == caller  # loading leaves it alone
            hook = emb.backend.model.register_forward_pre_hook(  # type: ignore[attr-defined]
                lambda *_: seen.append(torch.get_num_threads()))
            emb.embed_documents(TEXTS)  # one batch: one forward pass
            hook.remove()
            assert torch.get_num_threads() == caller  # and so does embedding
        assert seen == [caller, 1]
    finally:
        torch.set_num_threads(before)


def test_concurrent_explicit_thread_counts_restore_the_callers_setting(tiny_bge: Path) -> None:
    """Two threads embedding with different explicit counts at once: whatever the interleaving,
    neither restores the other's value over the caller's."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        embedders = [Embedder(tiny_bge, backend="torch", precision="fp32", threads=n).load() for n in (1, 2)]
        start = threading.Barrier(2)

        def work(emb: Embedder) -> None:
            start.wait()
            for _ in range(10):
                emb.embed_documents(TEXTS)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(work, embedders))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def _fp32_onnx_and_batches(tiny_bge: Path) -> tuple[Path, list[Any]]:
    from bge_vdb.backends.int8 import calibration_batches
    from bge_vdb.backends.onnx import onnx_model_for
    from bge_vdb.embedder import _pad

    emb = Embedder(tiny_bge, backend="onnx").load()  # int8 is built from the plain (unfused) export
    return onnx_model_for(tiny_bge), calibration_batches(lambda t: _pad(emb._truncating.encode_batch(t)))  # type: ignore[attr-defined]


def test_int8_build_leaves_the_root_logger_alone(tiny_bge: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The build used to raise the root logger's level to ERROR while it ran, hiding every
    other log line of the process in that time. Now the caller's level holds throughout, the
    application's records during the build get through, and the quantizer's do not."""
    import logging

    import onnxruntime.quantization as q

    from bge_vdb.backends.int8 import quantize_int8

    fp32, batches = _fp32_onnx_and_batches(tiny_bge)
    real = q.quantize_dynamic
    during: list[int] = []

    def observed(*args: Any, **kwargs: Any) -> Any:  # the real quantizer, plus a look around it
        during.append(logging.getLogger().level)
        logging.getLogger("app").info("application record during the build")
        return real(*args, **kwargs)

    monkeypatch.setattr(q, "quantize_dynamic", observed)
    root = logging.getLogger()
    filters = list(root.filters)
    with caplog.at_level(logging.INFO):
        quantize_int8(fp32, tmp_path / "int8.onnx", batches)
        assert during == [logging.INFO]
        assert root.level == logging.INFO
    assert root.filters == filters
    assert "application record during the build" in caplog.text
    # Without the filter the quantizer logs a WARNING ("pre-processing") and an INFO per node.
    assert not [r for r in caplog.records if "onnxruntime" in r.pathname and "quantization" in r.pathname]
    assert "INT8 model: 1 of 2 FFN matmuls quantized" in caplog.text  # bge-vdb's own line stays
    assert (tmp_path / "int8.onnx").is_file()


def test_int8_build_in_an_unconfigured_process_adds_no_log_handler(tiny_bge: Path, tmp_path: Path,
                                                                  _bge_vdb_cache: Path) -> None:
    """onnxruntime's quantizer logs through logging.info/warning, which install a stderr handler
    on the root logger when it has none (logging.basicConfig); a library must not leave one."""
    import os
    import subprocess
    import sys

    fp32, _ = _fp32_onnx_and_batches(tiny_bge)
    code = (
        "import logging, sys; from pathlib import Path; from bge_vdb import Embedder; "
        "from bge_vdb.backends.int8 import calibration_batches, quantize_int8; "
        "from bge_vdb.embedder import _pad; "
        f"e = Embedder({str(tiny_bge)!r}, backend='onnx').load(); "
        "batches = calibration_batches(lambda t: _pad(e._truncating.encode_batch(t))); "
        f"quantize_int8(Path({str(fp32)!r}), Path({str(tmp_path / 'int8.onnx')!r}), batches); "
        "root = logging.getLogger(); print(root.level, len(root.handlers), len(root.filters))"
    )
    root_dir = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root_dir), "BGE_VDB_CACHE": str(_bge_vdb_cache)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-3:] == ["30", "0", "0"]  # WARNING, no handler, no filter
    assert "pre-processing" not in done.stderr
