"""bge-vdb: BGE embeddings into vector databases, correctly, fast and safely.

``import bge_vdb`` is cheap: torch, transformers, onnxruntime and every database SDK are
imported only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    BgeVdbError,
    CollectionError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    DimensionMismatch,
    FailedRecord,
    FilterError,
    FingerprintMismatch,
    InputError,
    MetricMismatch,
    MissingExtra,
    ModelError,
    NotHybrid,
    ServerUnreachable,
    StoreNotFound,
    TransientError,
    UnsupportedFilter,
    WriteError,
)
from .lexical import LexicalSpec
from .models import PRESETS, ModelSpec
from .retry import RetryPolicy
from .store import Collection, VectorStore, connect, register_connector
from .types import CollectionSpec, Distance, Document, Hit, Record, UpsertResult

__version__ = "0.1.0"

# ``migrate`` is both a function and the module that defines it. Imported lazily, the first
# ``import bge_vdb.migrate`` anywhere (the CLI, an integration, a user) would make Python set the
# package attribute ``migrate`` to the module, and ``from bge_vdb import migrate`` would then
# return a module. Imported here, the function is bound after the module (numpy only, like store).
from .migrate import MigrationReport, migrate

# Public names whose modules are imported on first attribute access (PEP 562).
_LAZY = {
    "Embedder": "bge_vdb.embedder",
    "Reranker": "bge_vdb.reranker",
    "sync_corpus": "bge_vdb.sync",
    "SyncReport": "bge_vdb.sync",
}

__all__ = [
    "PRESETS",
    "BgeVdbError",
    "Collection",
    "CollectionError",
    "CollectionNotFound",
    "CollectionSpec",
    "ConfigError",
    "ConnectorError",
    "DimensionMismatch",
    "Distance",
    "Document",
    "Embedder",
    "FailedRecord",
    "FilterError",
    "FingerprintMismatch",
    "Hit",
    "InputError",
    "LexicalSpec",
    "MetricMismatch",
    "MigrationReport",
    "MissingExtra",
    "ModelError",
    "ModelSpec",
    "NotHybrid",
    "Record",
    "Reranker",
    "RetryPolicy",
    "ServerUnreachable",
    "StoreNotFound",
    "SyncReport",
    "TransientError",
    "UnsupportedFilter",
    "UpsertResult",
    "VectorStore",
    "WriteError",
    "__version__",
    "connect",
    "migrate",
    "register_connector",
    "sync_corpus",
]

if TYPE_CHECKING:
    from .embedder import Embedder
    from .reranker import Reranker
    from .sync import SyncReport, sync_corpus


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bge_vdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
