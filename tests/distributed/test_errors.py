"""Errors of bge_vdb.distributed that need no Ray instance."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bge_vdb.distributed import sync_dataset
from bge_vdb.errors import ConfigError


def test_without_ray_the_error_names_the_extra() -> None:
    # A fresh interpreter where `import ray` fails, as on an install without the extra.
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from bge_vdb.distributed import sync_dataset\n"
        "from bge_vdb.errors import MissingExtra\n"
        "try:\n"
        "    sync_dataset([], store_url='milvus://127.0.0.1:1', collection='c', model='m')\n"
        "except MissingExtra as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'bge-vdb[ray]'" in out


def test_importing_the_module_imports_neither_ray_nor_torch() -> None:
    code = ("import sys, bge_vdb.distributed\n"
            "print(sorted(m for m in ('ray', 'torch', 'pymilvus') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"on_long": "drop"}, "on_long must be one of"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"num_workers": True}, "num_workers must be a positive int"),
    ({"row_format": "csv"}, "row_format must be one of"),
])
def test_bad_arguments_are_refused_before_any_work(kwargs: dict[str, object], message: str) -> None:
    pytest.importorskip("ray")
    with pytest.raises(ConfigError, match=message):
        sync_dataset(object(), store_url="milvus://127.0.0.1:1", collection="c", model="m", **kwargs)  # type: ignore[arg-type]


def test_a_dataset_is_required() -> None:
    pytest.importorskip("ray")
    with pytest.raises(ConfigError, match=r"takes a ray\.data\.Dataset, got list"):
        sync_dataset([{"id": "a", "text": "b"}], store_url="milvus://127.0.0.1:1", collection="c", model="m")  # type: ignore[arg-type]
