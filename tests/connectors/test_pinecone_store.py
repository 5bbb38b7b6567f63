"""PineconeStore beyond the conformance suite: URL options, API keys (never shown), index
readiness, name mapping, namespaces, an existing client, records written by another tool."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pinecone import Pinecone

from bge_vdb.connectors.pinecone import META_NAMESPACE, PineconeStore
from bge_vdb.connectors.pinecone_mapping import index_name
from bge_vdb.errors import ConfigError, ConnectorError
from bge_vdb.store import connect
from bge_vdb.types import Record
from tests.fakes.pinecone_server import API_KEY, API_KEY_ENV, FakePinecone, running_pinecone_fake
from tests.support.fake_embedder import HashEmbedder

DIM = 8


@pytest.fixture
def fake() -> Iterator[FakePinecone]:
    with running_pinecone_fake() as f:
        yield f


def vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM))


def test_url_options(fake: FakePinecone) -> None:
    url = f"{fake.url}&namespace=team-a&cloud=gcp&region=europe-west4&timeout=5&ready_timeout=60"
    with connect(url) as store:
        assert isinstance(store, PineconeStore)
        assert (store.namespace, store.cloud, store.region, store.ready_timeout) == ("team-a", "gcp", "europe-west4", 60.0)
        store.collection("docs", dim=DIM)
    with pytest.raises(ConfigError, match=r"unknown Pinecone URL option.*'colud'"):
        connect(f"{fake.url}&colud=aws")
    with pytest.raises(ConfigError, match="API key in a URL"):
        connect(f"pinecone://?host={fake.control_host}&api_key=abc")
    with pytest.raises(ConfigError, match="query"):
        connect("pinecone://somehost:443")
    with pytest.raises(ConfigError, match="reserved"):
        connect(f"{fake.url}&namespace={META_NAMESPACE}")


def test_api_key_from_argument_or_named_env_var_never_shown(fake: FakePinecone, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_PC_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_PC_KEY"):
        connect(f"pinecone://?host={fake.control_host}&api_key_env=MY_PC_KEY")
    monkeypatch.setenv("MY_PC_KEY", API_KEY)
    with connect(f"pinecone://?host={fake.control_host}&api_key_env=MY_PC_KEY") as store:
        store.collection("docs", dim=DIM)
        assert API_KEY not in repr(store)
    with connect(f"pinecone://?host={fake.control_host}", api_key=API_KEY) as store:
        assert store.list_collections() == ["docs"]
    wrong = "sk-wrong-secret-0123456789"
    with connect(f"pinecone://?host={fake.control_host}", api_key=wrong) as store:
        with pytest.raises(ConnectorError) as err:
            store.list_collections()
        assert "401" in str(err.value) and wrong not in str(err.value) and wrong[-4:] not in repr(store)


def test_waits_until_the_index_is_ready(fake: FakePinecone) -> None:
    slept: list[float] = []
    fake.initializing_describes = 3
    with connect(fake.url, sleep=slept.append) as store:
        col = store.collection("docs", dim=DIM)
        assert len(slept) >= 3 and col.count() == 0
    fake.initializing_describes = 10**6  # never ready: a clear error after bounded polls
    slept.clear()
    with connect(fake.url, sleep=slept.append, ready_timeout=10, poll_interval=2) as store, \
            pytest.raises(ConnectorError, match="'late' is not ready after 10 s"):
        store.collection("late", dim=DIM)
    assert 1 <= len(slept) <= 6 and sum(slept) <= 12


def test_collection_names_map_to_valid_index_names(fake: FakePinecone) -> None:
    with connect(fake.url, sleep=lambda s: None) as store:
        col = store.collection("My Docs", dim=DIM)
        col.upsert([Record("a", vecs(1)[0])])
        assert index_name("My Docs") in fake.indexes and "My Docs" not in fake.indexes
        assert store.list_collections() == ["My Docs"]
        spec = store.describe_collection("My Docs")
        assert spec is not None and spec.name == "My Docs"
        store.drop("My Docs")
        assert store.list_collections() == [] and fake.indexes == {}


def test_namespaces_are_separate_collections_of_one_index(fake: FakePinecone) -> None:
    with connect(f"{fake.url}&namespace=a", sleep=lambda s: None) as sa, \
            connect(f"{fake.url}&namespace=b", sleep=lambda s: None) as sb:
        ca = sa.collection("docs", embedder=HashEmbedder(DIM))
        cb = sb.collection("docs", embedder=HashEmbedder(DIM, name="other/model"))
        v = vecs(5)
        ca.upsert([Record(f"a{i}", v[i]) for i in range(3)])
        cb.upsert([Record(f"b{i}", v[i]) for i in range(2)])
        assert (ca.count(), cb.count()) == (3, 2)
        assert [h.id for h in cb.search(v[0], k=5)] == ["b0", "b1"]
        # The index existed when namespace b opened it: like a collection made outside bge-vdb,
        # it has no fingerprint until one is set; each namespace keeps its own.
        assert not sb.describe_collection("docs").fingerprint  # type: ignore[union-attr]
        cb.set_fingerprint(HashEmbedder(DIM, name="other/model").fingerprint)
        fa, fb = (s.describe_collection("docs").fingerprint for s in (sa, sb))  # type: ignore[union-attr]
        assert fa is not None and fb is not None and fa["model"] != fb["model"]
        written = {ns for ns, rows in fake.indexes["docs"].namespaces.items() if rows}
        assert written == {"a", "b", META_NAMESPACE}  # nothing in the default namespace


def test_existing_client_and_records_from_another_tool(fake: FakePinecone) -> None:
    pc = Pinecone(api_key=API_KEY, host=fake.control_host)
    pc.indexes.create(name="ext", dimension=DIM, metric="cosine",
                      spec={"serverless": {"cloud": "aws", "region": "us-east-1"}}, timeout=-1)
    pc.index(name="ext").upsert(vectors=[("raw-1", vecs(1)[0].tolist(), {"genre": "comedy"})])
    store = PineconeStore(client=pc, sleep=lambda s: None)
    col = store.collection("ext", dim=DIM)
    (rec,) = [r for page in col.scroll() for r in page]
    assert rec.id == "raw-1" and dict(rec.metadata) == {"genre": "comedy"} and rec.text is None
    col.upsert([Record("mine", vecs(2)[1], "text", {"genre": "drama"})])
    assert col.count() == 2 and [r.id for r in col.fetch(["mine"])] == ["mine"]
    store.close()
    assert pc.indexes.describe("ext").name == "ext"  # the caller's client is still open


def test_env_key_of_the_fake_is_what_its_url_names(fake: FakePinecone) -> None:
    assert API_KEY_ENV in fake.url and API_KEY not in fake.url
