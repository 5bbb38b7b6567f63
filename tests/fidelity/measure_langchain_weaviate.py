"""Run langchain-weaviate's own integration tests against the Weaviate fake and count the results.

A measurement, not part of the test suite: langchain-weaviate's tests are not published on
PyPI (its sdist holds the package only), so they are read from a checkout of its repository,
copied to a temporary directory, and run there unchanged. Only their ``conftest.py`` is
replaced: theirs starts Weaviate in Docker, ours points the same two fixtures
(``weaviate_client``, ``weaviate_client_async``) at the fake started by this script. As in
their CI (one container per session), state is shared by all tests of the run.

Usage::

    git clone https://github.com/langchain-ai/langchain-weaviate  # (tag libs/weaviate/v0.0.8)
    python -m tests.fidelity.measure_langchain_weaviate /path/to/langchain-weaviate [-- pytest args]

The tests run in a child process (their package is also named ``tests``); the fake runs in
this one. Prints pytest's summary line and one line per test that did not pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fakes.weaviate_server import running_weaviate_fake

INTEGRATION_FILES = ("test_vectorstores_integration.py", "test_vectorstores_integration_async.py")

CONFTEST = '''\
"""Written by bge-vdb's measure_langchain_weaviate.py: the fixtures of the replaced conftest,
connected to the Weaviate fake whose ports are in the environment."""
import os

import pytest
import pytest_asyncio
import weaviate

def _params():
    return weaviate.connect.ConnectionParams.from_params(
        http_host="127.0.0.1", http_port=int(os.environ["FAKE_WEAVIATE_HTTP_PORT"]),
        http_secure=False, grpc_host="127.0.0.1",
        grpc_port=int(os.environ["FAKE_WEAVIATE_GRPC_PORT"]), grpc_secure=False)

@pytest.fixture(scope="session")
def weaviate_client():
    client = weaviate.WeaviateClient(connection_params=_params())
    client.connect()
    yield client
    client.close()

@pytest_asyncio.fixture(scope="function")
async def weaviate_client_async():
    client = weaviate.WeaviateAsyncClient(connection_params=_params())
    await client.connect()
    yield client
    await client.close()
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a langchain-weaviate repository checkout")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    source = args.checkout / "libs" / "weaviate" / "tests"
    if not (source / "unit_tests" / INTEGRATION_FILES[0]).is_file():
        parser.error(f"{source} does not hold langchain-weaviate's tests")
    with tempfile.TemporaryDirectory(prefix="lcw-measure-") as tmp:
        tests = Path(tmp) / "tests"
        shutil.copytree(source, tests)
        (tests / "unit_tests" / "conftest.py").write_text(CONFTEST)
        with running_weaviate_fake() as fake:
            env = {**os.environ, "FAKE_WEAVIATE_HTTP_PORT": str(fake.http_port),
                   "FAKE_WEAVIATE_GRPC_PORT": str(fake.grpc_port)}
            cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                   "-o", "addopts=", "--timeout=120", "--rootdir", tmp,
                   *[str(tests / "unit_tests" / f) for f in INTEGRATION_FILES], *args.pytest_args]
            return subprocess.run(cmd, cwd=tmp, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
