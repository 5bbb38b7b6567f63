"""A migration SIGKILLed half-way (in a subprocess, file-backed engines) resumes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bge_vdb.migrate import migrate
from bge_vdb.store import connect, load_connector

from .conftest import fill_source, make_records

CHILD = textwrap.dedent("""
    import sys
    from bge_vdb.migrate import migrate
    from bge_vdb.store import connect

    src_url, dst_url, pause_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    src = connect(src_url).collection("migsrc", create=False)

    def progress(report):
        if report.read >= pause_after:
            print("paused", report.written, flush=True)
            sys.stdin.readline()  # block here until the parent kills us

    migrate(src, (connect(dst_url), "migdst"), batch_size=50, verify=False, progress=progress)
    print("finished", flush=True)
""")


URLS = {"milvus": "milvus://{tmp}/{name}.db", "qdrant": "qdrant://{tmp}/{name}"}


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(("src_kind", "dst_kind"),
                         [("milvus", "qdrant"), ("qdrant", "milvus"), ("qdrant", "qdrant")])
def test_sigkill_then_resume(src_kind: str, dst_kind: str, tmp_path: Path) -> None:
    for scheme in (src_kind, dst_kind):
        try:
            load_connector(scheme)
        except Exception as exc:  # connector module not there yet
            pytest.skip(f"{scheme} connector unavailable: {exc}")
    src_url = URLS[src_kind].format(tmp=tmp_path, name="src")
    dst_url = URLS[dst_kind].format(tmp=tmp_path, name="dst")
    records = make_records(500)
    root = Path(__file__).parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    with connect(src_url) as store:  # closed again: embedded engines lock their files
        fill_source(store, "migsrc", records)

    err_path = tmp_path / "child.stderr"  # a file, not a pipe: a chatty child cannot block on it
    with err_path.open("w") as err_file:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, src_url, dst_url, "150"], cwd=root, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file, text=True,
            start_new_session=True,
        )
    line = ""
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the child and any engine process it started
        child.wait()
    if not line.startswith("paused"):
        pytest.fail(f"the migration did not reach its pause: {err_path.read_text()[-2000:]}")
    written_before_kill = int(line.split()[1])
    assert child.returncode == -signal.SIGKILL
    assert 150 <= written_before_kill < 500

    with connect(src_url) as src_store, connect(dst_url) as dst_store:
        src = src_store.collection("migsrc", create=False)
        assert dst_store.count("migdst") == written_before_kill
        report = migrate(src, (dst_store, "migdst"), batch_size=50)
        # Resumed: what landed before the kill is skipped, the rest written, nothing twice.
        assert report.skipped == written_before_kill
        assert report.written == 500 - written_before_kill
        assert report.ok, report.verification
        ids = [r.id for page in dst_store.collection("migdst", create=False).scroll(100) for r in page]
        assert len(ids) == len(set(ids)) == 500
        assert set(ids) == {r.id for r in records}
