"""The jobs built on the VectorStore interface, against the real Milvus 2.3.5 standalone server.

The conformance, congruence and sync-store suites reach the server through its registration in
``tests/support/stores.py``. Here: LangChain's own ``VectorStoreIntegrationTests``; the migrate
matrix's every check, for each pair of the server and another store (both directions); and a
client SIGKILLed in the middle of ``sync_corpus`` into the server, re-run until it converges to
exactly what an uninterrupted run writes.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from pymilvus import MilvusClient

from bge_vdb.integrations.langchain import BGEVectorStore
from bge_vdb.store import connect
from tests.migrate.conftest import make_records
from tests.migrate.test_matrix import STORES
from tests.migrate.test_matrix import test_migrate_pair as check_migrate_pair
from tests.support.milvus_standalone import shared_server
from tests.support.stores import STORE_FACTORIES

SERVER = "milvus-standalone"
ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "sync" / "crash_worker.py"


class TestLangChainStandardOnMilvusStandalone(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[BGEVectorStore]:  # type: ignore[override]
        with STORE_FACTORIES[SERVER](tmp_path) as store:
            yield BGEVectorStore(store, collection_name="lc_standard", embedding=self.get_embeddings())


OTHERS = [s for s in STORES if s != SERVER]
PAIRS = [(SERVER, o) for o in OTHERS] + [(o, SERVER) for o in OTHERS]


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_migrate_to_and_from_the_server(src_kind: str, dst_kind: str, tmp_path: Path) -> None:
    """Every check of tests/migrate/test_matrix.py: each record exact, verified, then resumed."""
    check_migrate_pair(src_kind, dst_kind, tmp_path, make_records(60))


# ------------------------------------------------------------------- a client killed mid-sync

def _run_worker(url: str, out: Path, kill_after_batches: int | None, rng: random.Random) -> int:
    proc = subprocess.Popen([sys.executable, str(WORKER), url, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None
    try:
        if kill_after_batches is not None:
            batches = (line for line in proc.stdout if line.startswith(b"batch"))
            for seen, _ in enumerate(batches, 1):
                if seen >= kill_after_batches:
                    for _ in range(rng.randrange(0, 200_000)):  # land the kill anywhere in a batch
                        pass
                    proc.send_signal(signal.SIGKILL)
                    break
        return proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _snapshot(url: str) -> dict[str, tuple[str | None, str | None, np.ndarray]]:
    with connect(url) as store:
        col = store.collection("crash", dim=16, create=False)
        return {r.id: (r.content_hash, r.text, np.asarray(r.vector))
                for page in col.scroll(500, with_vectors=True) for r in page}


def test_client_killed_mid_sync_resumes_to_exactly_a_clean_sync() -> None:
    server = shared_server()
    admin = MilvusClient(uri=server.uri)
    clean_db, crashed_db = "bgevdb_clean", "bgevdb_crashed"
    try:
        for db in (clean_db, crashed_db):
            if db not in admin.list_databases():
                admin.create_database(db)

        def url(db: str) -> str:
            return f"{server.url}?db_name={db}"

        assert _run_worker(url(clean_db), Path(server.base_dir) / "clean.json", None, random.Random()) == 0
        clean = _snapshot(url(clean_db))
        rng = random.Random(5)
        killed = sum(
            _run_worker(url(crashed_db), Path(server.base_dir) / f"r{n}.json", rng.randrange(1, 12), rng)
            == -signal.SIGKILL
            for n in range(3)
        )
        assert killed >= 2  # the kills really interrupted runs
        before = _snapshot(url(crashed_db))
        final_json = Path(server.base_dir) / "final.json"
        assert _run_worker(url(crashed_db), final_json, None, rng) == 0
        after = _snapshot(url(crashed_db))
        final = json.loads(final_json.read_text())

        assert len(clean) > 240 and sorted(after) == sorted(clean)  # every record exactly once
        with connect(url(crashed_db)) as store:  # and no duplicate rows behind the unique ids
            assert store.collection("crash", dim=16, create=False).count() == len(clean)
        for rid, (chash, text, vec) in clean.items():
            assert after[rid][:2] == (chash, text)
            np.testing.assert_allclose(after[rid][2], vec, atol=1e-6)
        # Nothing already written with its final hash was embedded again.
        done = {final["texts"][rid] for rid, (h, _, _) in before.items() if clean.get(rid, (None,))[0] == h}
        assert not done & set(final["embedded"])
        assert final["report"]["ok"] and final["report"]["embedded"] == len(final["embedded"])
    finally:
        for db in set(admin.list_databases()) & {clean_db, crashed_db}:
            in_db = MilvusClient(uri=server.uri, db_name=db)  # not using_database(): 2.3 lacks DescribeDatabase
            for name in in_db.list_collections():
                in_db.drop_collection(name)
            in_db.close()
            admin.drop_database(db)
        admin.close()
