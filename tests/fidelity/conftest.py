"""Fixtures of the fidelity gate: third-party clients (weaviate-client, langchain-weaviate, the
pinecone SDK), installed as packages, pointed at the wire-level fakes in tests/fakes/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.pinecone_server import API_KEY, FakePinecone, running_pinecone_fake
from tests.fakes.weaviate_server import FakeWeaviate, running_weaviate_fake


@pytest.fixture
def weaviate_fake() -> Iterator[FakeWeaviate]:
    with running_weaviate_fake() as fake:
        yield fake


@pytest.fixture
def wv(weaviate_fake: FakeWeaviate) -> Iterator[Any]:
    """A plain weaviate-client, as a user of Weaviate would open it."""
    import weaviate

    client = weaviate.connect_to_local(port=weaviate_fake.http_port, grpc_port=weaviate_fake.grpc_port,
                                       skip_init_checks=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def pinecone_fake() -> Iterator[FakePinecone]:
    with running_pinecone_fake() as fake:
        yield fake


@pytest.fixture
def pc(pinecone_fake: FakePinecone) -> Iterator[Any]:
    """A plain pinecone SDK client whose control plane is the fake."""
    from pinecone import Pinecone

    client = Pinecone(api_key=API_KEY, host=pinecone_fake.control_host)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_index(pc: Any) -> Any:
    """``make_index(name, dim, metric)``: a serverless dense index, ready, and its data client."""

    def make(name: str = "films", dim: int = 3, metric: str = "cosine") -> Any:
        pc.indexes.create(name=name, dimension=dim, metric=metric,
                          spec={"serverless": {"cloud": "aws", "region": "us-east-1"}}, timeout=-1)
        return pc.index(name)

    return make
