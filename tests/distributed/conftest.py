"""A local Ray instance (2 CPUs, no dashboard, small object store) shared by this directory's
tests and shut down after them; a tiny random BERT model; the Milvus Lite loopback server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bge_vdb.embedder import Embedder
from bge_vdb.store import Collection, connect
from tests.embedder.conftest import _build_tiny

REPO = Path(__file__).resolve().parents[2]
#: One torch thread per worker: two workers share the two cores.
EMB_OPTIONS: dict[str, Any] = {"backend": "torch", "threads": 1}


@pytest.fixture(scope="package")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "PYTHONPATH", "BGE_VDB_CACHE",
                                             "OMP_NUM_THREADS", "RAY_DATA_DISABLE_PROGRESS_BARS")}
    # Workers inherit the environment of the processes ray.init starts: they must import
    # tests.* (the fault-injecting embedder) and keep weight hashes out of the user's home.
    os.environ.update({
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(x for x in (str(REPO), saved["PYTHONPATH"]) if x),
        "BGE_VDB_CACHE": str(tmp_path_factory.mktemp("bge_vdb_cache")),
        "OMP_NUM_THREADS": "1",
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    })
    if ray.is_initialized():  # someone else's instance: not ours to reuse
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024,
             log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="package")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny(tmp_path_factory.mktemp("models") / "tiny-bge", max_positions=64)


@pytest.fixture(scope="package")
def milvus_url() -> str:
    from tests.support.milvus_server import server_port

    return f"milvus://127.0.0.1:{server_port()}"


@pytest.fixture
def open_col(milvus_url: str, tiny_model: Path) -> Iterator[Any]:
    """Opens collections on the shared server; drops them (once each) afterwards."""
    opened: list[Any] = []
    names: set[str] = set()

    def open_(name: str) -> Collection:
        store = connect(milvus_url)
        opened.append(store)
        names.add(name)
        return store.collection(name, embedder=Embedder(str(tiny_model), **EMB_OPTIONS))

    yield open_
    if opened:
        for name in sorted(names):
            opened[0].drop(name)
    for store in opened:
        store.close()
