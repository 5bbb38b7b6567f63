"""`bge-vdb sync SOURCE --ray`, as a user runs it: a fresh process that starts (and stops) its own
local Ray instance. The same Parquet file synced with and without --ray must end the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import cli
from tests.distributed.conftest import REPO
from tests.distributed.test_sync_dataset import assert_same_store, corpus

KEYS = ("added", "updated", "unchanged", "documents", "written", "embedded", "truncated", "tokens")


def test_parquet_with_and_without_ray(milvus_url: str, tiny_model: Path, open_col: Any,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # Flat columns: every column but id and text is metadata, in both readers.
    rows = [{"id": d["id"], "text": d["text"], **d["metadata"]} for d in corpus(400)]
    rows[3]["text"] = " "
    src = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    common = ["--to", milvus_url, "--model", str(tiny_model), "--backend", "torch", "--batch-size", "100",
              "--json"]
    code = cli.main(["sync", str(src), "--collection", "dist_cli_ref", *common])
    want = json.loads(capsys.readouterr().out)
    assert code == 1 and want["added"] == 399 and [f["id"] for f in want["failed"]] == ["doc-3"]

    # Two workers holding a CPU each on a 2-core machine: the local instance must keep a CPU for
    # Ray Data's file listing, or the run waits forever (the timeout turns that into a failure).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO), "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bge_vdb.cli", "sync", str(src), "--collection", "dist_cli_ray", *common,
         "--ray", "--workers", "2"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: doc-3 failed, as without --ray
    got = json.loads(proc.stdout)
    assert {k: got[k] for k in KEYS} == {k: want[k] for k in KEYS}
    assert [f["id"] for f in got["failed"]] == ["doc-3"]
    assert_same_store(open_col("dist_cli_ray"), open_col("dist_cli_ref"))
    assert open_col("dist_cli_ray").fetch(["doc-1"])[0].metadata == {"n": 1, "src": "b"}


@pytest.mark.parametrize("url", ["memory://", "qdrant:///tmp/x", "qdrant://./rel", "milvus:///tmp/a.db",
                                 "milvus://./a.db"])
def test_process_private_stores_are_refused_before_ray_starts(url: str, tiny_model: Path) -> None:
    from bge_vdb.distributed import sync_dataset
    from bge_vdb.errors import ConfigError

    with pytest.raises(ConfigError, match="private to one process"):
        sync_dataset(object(), store_url=url, collection="c", model=str(tiny_model))  # type: ignore[arg-type]
