"""Every public name the API reference shows has a docstring (issue 21): mkdocs --strict catches
a malformed one, this test a missing one. Public: ``bge_vdb.__all__``, the functions of
``bge_vdb.distributed`` the reference shows and the integration classes, with the public
methods and properties their classes define (a docstring inherited from a base class counts:
LangChain's and LlamaIndex's interface methods keep the framework's)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

import bge_vdb


def _public() -> list[tuple[str, Any]]:
    out = [(f"bge_vdb.{n}", getattr(bge_vdb, n)) for n in bge_vdb.__all__ if n != "__version__"]
    distributed = importlib.import_module("bge_vdb.distributed")
    out += [(f"bge_vdb.distributed.{n}", getattr(distributed, n))
            for n in ("sync_dataset", "read_source", "sync_source")]
    for module, names in (("bge_vdb.integrations.langchain", ("BGEEmbeddings", "BGEVectorStore")),
                          ("bge_vdb.integrations.llamaindex", ("BGEEmbedding", "BGELlamaVectorStore"))):
        mod = pytest.importorskip(module)
        out += [(f"{module}.{n}", getattr(mod, n)) for n in names]
    return out


def _undocumented() -> list[str]:
    missing = []
    for name, obj in _public():
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            func = getattr(value, "__func__", value)
            if isinstance(value, property):
                doc = inspect.getdoc(value)  # also a base class's property of that name
            elif inspect.isfunction(func):
                doc = inspect.getdoc(getattr(obj, attr))
            else:
                continue
            if not (doc or "").strip():
                missing.append(f"{name}.{attr}")
    return missing


def test_every_public_name_has_a_docstring() -> None:
    assert len(_public()) >= 40
    missing = _undocumented()
    assert not missing, f"public names without a docstring: {missing}"
