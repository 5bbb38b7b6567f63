"""sync_dataset on Ray with a remote embedder: each worker builds ``Embedder(URL)`` from the URL
(no local threads, no model files on the workers) and the result equals sync_corpus through the
same server. Against the real Infinity server; the store is Milvus Lite on a loopback port."""

from __future__ import annotations

from typing import Any

import pytest

from bge_vdb.distributed import sync_dataset
from bge_vdb.embedder import Embedder
from bge_vdb.store import connect
from bge_vdb.sync import sync_corpus
from tests.distributed.conftest import milvus_url, ray_local  # noqa: F401  (fixtures)
from tests.distributed.test_sync_dataset import assert_same_store
from tests.remote.conftest import INFINITY_KEY
from tests.remote.infinity import InfinityServer
from tests.remote.test_sync_remote import corpus

pytestmark = pytest.mark.timeout(1800)  # the first test may create Infinity's virtualenv


def test_ray_workers_embed_through_the_server(ray_local: Any, milvus_url: str,  # noqa: F811
                                              infinity_server: InfinityServer) -> None:
    docs = [{"id": d.id, "text": d.text, "metadata": dict(d.metadata)} for d in corpus(200)]
    url = infinity_server.url()
    try:
        ds = ray_local.data.from_items(docs, override_num_blocks=4)
        got = sync_dataset(ds, store_url=milvus_url, collection="ray_remote", model=url,
                           embedder_options={"api_key": INFINITY_KEY}, num_workers=2, batch_size=50)
        assert got.ok and got.added == len(docs) and got.truncated == 8
        with connect(milvus_url) as store:
            ref = store.collection("ray_ref", embedder=Embedder(url, api_key=INFINITY_KEY))
            want = sync_corpus(ref, docs, batch_size=50)
            assert (want.added, want.truncated) == (got.added, got.truncated)
            assert_same_store(store.collection("ray_remote", create=False), ref)
        again = sync_dataset(ray_local.data.from_items(docs, override_num_blocks=4), store_url=milvus_url,
                             collection="ray_remote", model=url, embedder_options={"api_key": INFINITY_KEY},
                             num_workers=2, batch_size=50)
        assert (again.embedded, again.unchanged) == (0, len(docs))
    finally:
        with connect(milvus_url) as store:
            for name in ("ray_remote", "ray_ref"):
                if store.describe_collection(name) is not None:
                    store.drop(name)
