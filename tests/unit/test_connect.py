"""connect(url): schemes, the lazy connector registry, and missing extras."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.errors import ConfigError, MissingExtra
from bge_vdb.store import _REGISTRY, connect, load_connector, register_connector


def test_memory_urls() -> None:
    assert isinstance(connect("memory://"), MemoryStore)
    assert connect("memory://") is not connect("memory://")  # unnamed: a new empty store each time
    named = connect("memory://shared-test")
    assert connect("memory://shared-test") is named and repr(named) == "MemoryStore('shared-test')"


@pytest.mark.parametrize("url, where", [
    ("qdrant://:memory:", ":memory:"),
    ("QDRANT://:memory:", ":memory:"),  # schemes are case-insensitive
])
def test_qdrant_memory_url(url: str, where: str) -> None:
    from bge_vdb.connectors.qdrant import QdrantStore

    with connect(url) as store:
        assert isinstance(store, QdrantStore) and repr(store) == f"QdrantStore({where!r})"


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_qdrant_server_urls_build_clients_without_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "env-secret")
    store: Any = connect("qdrant+https://db.example.invalid/prefix")
    assert repr(store) == "QdrantStore('https://db.example.invalid')" and "env-secret" not in repr(store)
    store.close()
    store = connect("qdrant+http://127.0.0.1:6333?timeout=3")
    assert repr(store) == "QdrantStore('http://127.0.0.1:6333')"
    store.close()


@pytest.mark.parametrize("url, message", [
    ("nosuchdb://x", r"unknown store URL scheme 'nosuchdb'; known schemes: .*memory.*qdrant"),
    ("just-a-path", "looks like"),
    (None, "looks like"),
])
def test_bad_urls(url: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        connect(url)


@pytest.mark.parametrize("scheme, package, extra", [
    ("qdrant", "qdrant-client", "qdrant"),
    ("milvus", "pymilvus", "milvus"),
    ("weaviate+http", "weaviate", "weaviate"),
    ("pinecone", "pinecone", "pinecone"),
])
def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch, scheme: str, package: str,
                                              extra: str) -> None:
    sdk = _REGISTRY[scheme][1]
    assert sdk is not None
    monkeypatch.setitem(sys.modules, sdk, None)  # makes `import sdk` raise ImportError
    with pytest.raises(MissingExtra) as err:
        connect(f"{scheme}://somewhere")
    assert f"pip install 'bge-vdb[{extra}]'" in str(err.value)
    assert err.value.package == package and isinstance(err.value, ImportError)


def test_missing_extra_in_a_fresh_interpreter() -> None:
    """The same with the SDK really unimportable, as on a machine without the extra."""
    code = (
        "import sys; sys.modules['qdrant_client'] = None\n"
        "import bge_vdb\n"
        "from bge_vdb.errors import MissingExtra\n"
        "try:\n    bge_vdb.connect('qdrant:///tmp/x')\n"
        "except MissingExtra as e:\n    print('OK', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK") and "pip install 'bge-vdb[qdrant]'" in out.stdout


def test_import_does_not_load_database_sdks() -> None:
    code = (
        "import sys, bge_vdb\n"
        "heavy = [m for m in ('qdrant_client', 'pymilvus', 'weaviate', 'pinecone', 'torch', 'transformers')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_register_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_REGISTRY, "mystore", ("bge_vdb.connectors.memory:MemoryStore", None, None))
    assert load_connector("mystore") is MemoryStore
    register_connector("mystore2", "bge_vdb.connectors.memory:MemoryStore")
    try:
        assert isinstance(connect("mystore2://"), MemoryStore)
    finally:
        _REGISTRY.pop("mystore2")
