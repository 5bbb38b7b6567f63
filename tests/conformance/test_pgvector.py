"""PostgreSQL + pgvector through the conformance suite, on a real server over TCP."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bge_vdb.store import VectorStore
from tests.conformance.suite import StoreConformance
from tests.support.stores import STORE_FACTORIES

_TRANSIENT: list[Callable[[], BaseException]] = [
    lambda: psycopg.OperationalError("server closed the connection unexpectedly"),
    lambda: psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    lambda: psycopg.errors.SerializationFailure("could not serialize access due to concurrent update"),
    lambda: psycopg.errors.DeadlockDetected("deadlock detected"),
]


class PgVectorHooks(StoreConformance):
    factory = "pgvector"
    write_methods = ("write",)

    @pytest.fixture
    def store(self, tmp_path: Any) -> Iterator[VectorStore]:
        with STORE_FACTORIES[self.factory](tmp_path) as s:
            yield s

    def create_native_collection(self, store: VectorStore, name: str, dim: int, metric: str) -> None:
        # As a user following pgvector's README would make it: other column names, an HNSW index
        # whose operator class is the metric, no bge-vdb catalogue row.
        ops = {"cosine": "vector_cosine_ops", "euclid": "vector_l2_ops"}[metric]

        def run(cur: psycopg.Cursor[Any]) -> None:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cur.execute(sql.SQL("CREATE TABLE {} (key text PRIMARY KEY, content text, embedding vector({}), "
                                "meta jsonb)").format(sql.Identifier(name), sql.Literal(dim)))
            cur.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding {})").format(
                sql.Identifier(name), sql.SQL(ops)))

        store._client.write(run)  # type: ignore[attr-defined]

    def inject_faults(self, store: VectorStore, wrap: Callable[[Any], Any]) -> None:
        store._client = wrap(store._client)  # type: ignore[attr-defined]

    _kinds = itertools.count()

    def transient_error(self) -> BaseException:
        # Cycle through real psycopg errors: connection lost, admin shutdown, serialization, deadlock.
        return _TRANSIENT[next(self._kinds) % len(_TRANSIENT)]()

    def permanent_error(self) -> BaseException:
        return psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")


class TestPgVector(PgVectorHooks):
    pass
