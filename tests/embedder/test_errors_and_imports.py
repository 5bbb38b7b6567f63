"""Clear errors for missing models, and what importing the package (or the ONNX path) pulls in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bge_vdb import Embedder
from bge_vdb.errors import ModelError

ROOT = Path(__file__).resolve().parents[2]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        Embedder(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(ModelError, match="does not exist"):
        Embedder("./not-here")


def test_directory_without_weights(tiny_bge: Path, tmp_path: Path) -> None:
    bare = tmp_path / "noweights"
    shutil.copytree(tiny_bge, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    (bare / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match=r"no model.safetensors .*pytorch_model.bin.*safetensors only"):
        Embedder(str(bare), backend="torch").load()
    with pytest.raises(ModelError, match=r"neither onnx/model\.onnx nor model\.safetensors"):
        Embedder(str(bare), backend="onnx").load()


def test_directory_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        _ = Embedder(str(tmp_path)).dim


def test_unreachable_hub_says_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    emb = Embedder("BAAI/bge-large-zh-v1.5")
    assert emb.dim == 1024  # the preset answers without any file
    with pytest.raises(ModelError) as info:
        emb.embed_documents(["你好"])
    msg = str(info.value)
    assert "BAAI/bge-large-zh-v1.5" in msg and "HF_HUB_OFFLINE" in msg
    assert "Embedder('DIR')" in msg and "`hf download" in msg
    with pytest.raises(ModelError, match="someone/unknown-model"):
        _ = Embedder("someone/unknown-model").dim


def _run(code: str, **env: str) -> str:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          cwd=str(ROOT), timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_is_light() -> None:
    out = _run("import sys, bge_vdb; bge_vdb.Embedder; from bge_vdb import embedder, hub, backends; "
               "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))")
    assert out.strip() == "[]"


def test_migrate_is_the_function_even_after_its_module_was_imported() -> None:
    """``bge_vdb.migrate`` names a function and its module; importing the module first (as the
    CLI does) must not turn ``from bge_vdb import migrate`` into the module (it did: the docs'
    migrate example failed with "'module' object is not callable" after other tests ran)."""
    out = _run("import bge_vdb.migrate, types; from bge_vdb import migrate, MigrationReport; "
               "import bge_vdb; print(callable(migrate), isinstance(bge_vdb.migrate, types.ModuleType), "
               "MigrationReport.__name__)")
    assert out.split() == ["True", "False", "MigrationReport"]


def test_onnx_backend_runs_without_torch(tiny_bge: Path, _bge_vdb_cache: Path) -> None:
    ref = Embedder(str(tiny_bge), backend="onnx").embed_documents(["hello world"])  # exports (torch)
    code = (
        "import sys, numpy as np; from bge_vdb import Embedder; "
        f"e = Embedder({str(tiny_bge)!r}, backend='onnx'); v = e.embed_documents(['hello world']); "
        "np.save(sys.stdout.buffer, v) if False else None; print(list(v[0][:4])); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    out = _run(code, BGE_VDB_CACHE=str(_bge_vdb_cache))
    np.testing.assert_allclose(eval(out.strip().replace("np.float32", "")), ref[0][:4], atol=1e-6)


def test_int8_builds_and_runs_without_torch(tiny_bge: Path, _bge_vdb_cache: Path, tmp_path: Path) -> None:
    ref = Embedder(str(tiny_bge), backend="onnx", precision="int8").embed_documents(["hello world"])
    code = (
        "import sys; from pathlib import Path; from bge_vdb import Embedder; "
        "from bge_vdb.backends.int8 import calibration_batches, quantize_int8; "
        "from bge_vdb.backends.onnx import onnx_model_for; from bge_vdb.embedder import _pad; "
        f"e = Embedder({str(tiny_bge)!r}, backend='onnx', precision='int8').load(); "
        "v = e.embed_documents(['hello world']); print(list(v[0][:4])); "
        f"fp32 = onnx_model_for(Path({str(tiny_bge)!r}), export=False); "
        "batches = calibration_batches(lambda t: _pad(e._truncating.encode_batch(t))); "
        f"quantize_int8(fp32, Path({str(tmp_path / 'fresh.onnx')!r}), batches); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    out = _run(code, BGE_VDB_CACHE=str(_bge_vdb_cache))
    np.testing.assert_allclose(eval(out.strip().replace("np.float32", "")), ref[0][:4], atol=1e-6)
    assert (tmp_path / "fresh.onnx").stat().st_size > 0


def test_cli_embed_and_export(tiny_bge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bge_vdb.cli import main

    assert main(["embed", str(tiny_bge), "hello world", "中文", "--query", "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "shape (2, 32) float32" in out and "cls pooling" in out
    assert main(["export-onnx", str(tiny_bge), "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "model.onnx").is_file()
    assert main(["embed", str(tmp_path / "missing"), "text"]) == 2  # a configuration error (issue 14)
    assert "does not exist" in capsys.readouterr().err
    # int8 exists only as an ONNX model: --precision int8 alone picks that backend.
    assert main(["embed", str(tiny_bge), "hello world", "--precision", "int8"]) == 0
    assert "(onnx/cpu/int8)" in capsys.readouterr().out
    assert main(["embed", str(tiny_bge), "hello", "--precision", "int8", "--backend", "torch"]) == 2
    assert "ONNX option" in capsys.readouterr().err
