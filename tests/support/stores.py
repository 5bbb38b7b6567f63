"""Factories of empty stores, one per connector, shared by the conformance, congruence, sync,
migrate and integration tests (so every job is tested on every database the same way).

Each factory is a context manager taking a temporary directory and yielding an EMPTY
``VectorStore``; it cleans up on exit. Connector owners register theirs here with ``@register``.
Servers (Milvus Lite on a loopback port, the Weaviate and Pinecone fakes) may be started once per
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
