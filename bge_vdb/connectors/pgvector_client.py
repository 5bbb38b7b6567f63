"""Where the pgvector connector's SQL runs: its URLs, its connections, and the one place psycopg
errors become ours."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg

from ..errors import (
    BgeVdbError,
    CollectionNotFound,
    ConfigError,
    ConnectorError,
    ServerUnreachable,
    TransientError,
)
from ..store import url_options

#: Options of ours, in a URL's query or as keywords of connect(); libpq takes the rest of a query.
INT_OPTIONS = ("m", "ef_construction", "ef_search")
URL_OPTIONS = ("schema", "index", *INT_OPTIONS)
KEYWORD_OPTIONS = (*URL_OPTIONS, "retry_policy")

# SQLSTATEs worth a retry: serialization failure, deadlock, too many connections, lock timeout,
# admin / crash shutdown, cannot connect now. A lost connection has class 08 or no SQLSTATE.
TRANSIENT_STATES = frozenset({"40001", "40P01", "53300", "55P03", "57P01", "57P02", "57P03"})
# A failed connection attempt carries no SQLSTATE in psycopg, only libpq's text. The server
# refusing us (FATAL: bad password, no such database) or a TLS/auth mismatch will not pass on a
# retry, unless the refusal is one of the passing states below.
_PERMANENT_CONNECT = ("FATAL", "SSL", "password", "authentication", "certificate")
_TRANSIENT_LOGIN = ("starting up", "shutting down", "too many clients", "recovery mode",
                    "not yet accepting connections", "in hot standby mode")


@dataclass
class PgUrl:
    """What a ``postgresql://``, ``postgres://`` or ``pgvector://`` URL says."""

    settings: dict[str, Any]  # our options, parsed and checked
    embedded: str | None = None  # pgvector:///dir: the directory
    conninfo: str = field(default="", repr=False)  # a server: the libpq URL, password included
    shown: str = ""  # the same without the password or any option
    secret: str | None = field(default=None, repr=False)


def _settings(query: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in URL_OPTIONS:
        if key not in query:
            continue
        value = query.pop(key)
        if key in INT_OPTIONS:
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"the URL option {key} takes a positive whole number, got {value!r}")
            out[key] = int(value)
        elif key == "index":
            if value.lower() not in ("hnsw", "", "none", "exact"):
                raise ConfigError(f"the URL option index takes hnsw (or none: exact search), got {value!r}")
            out[key] = "hnsw" if value.lower() == "hnsw" else None
        else:
            out[key] = value
    return out


def parse_url(url: str) -> PgUrl:
    """Check and split a URL without connecting: unknown options are refused by name."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "pgvector":
        query = url_options(url, URL_OPTIONS, "pgvector")
        if parts.netloc not in ("", ".", "..") or not parts.path.strip("/"):
            raise ConfigError(f"{url!r}: write pgvector:///abs/dir or pgvector://./rel/dir (an embedded server "
                              f"for that directory); for a server write postgresql://user@host:5432/db")
        return PgUrl(_settings(query), embedded=parts.netloc + parts.path)
    if scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"PgVectorStore cannot open {scheme!r} URLs")
    libpq = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()}
    query = url_options(url, (*URL_OPTIONS, *libpq), "PostgreSQL")
    settings = _settings(query)
    if not parts.hostname and "host" not in query:
        raise ConfigError(f"no host in {url!r}; write postgresql://user@host:5432/db")
    query.setdefault("connect_timeout", "10")
    # quote, not quote_plus: libpq reads "+" as a plus sign, not a space.
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query, quote_via=quote), ""))
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else (parts.hostname or "")
    shown = f"postgresql://{unquote(parts.username) + '@' if parts.username else ''}{host}"
    shown += f":{parts.port}" if parts.port else ""
    secret = unquote(parts.password) if parts.password else os.environ.get("PGPASSWORD") or None
    return PgUrl(settings, conninfo=conninfo, shown=shown + parts.path, secret=secret)


class ConnectFailed(psycopg.OperationalError):
    """A new connection could not be opened (the server is unreachable or refused the login)."""


class PgClient:
    """A connection opened (and re-opened after a loss) from a libpq connection string, a psycopg
    connection the user passed (used as it is), or a pool (anything with psycopg_pool's
    ``connection()``). ``read`` and ``write`` run ``fn(cursor)`` in one transaction, which is a
    savepoint inside a transaction the user's connection already has open. The fault-injection
    tests wrap this object and fail ``write``."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()  # one transaction at a time on one connection

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if isinstance(self.source, str):
            with self._lock:
                if self._conn is not None and self._conn.broken:
                    self._conn.close()  # lost: the next call reconnects
                if self._conn is None or self._conn.closed:
                    self._conn = None
                    try:
                        self._conn = psycopg.connect(self.source, autocommit=True)
                    except psycopg.OperationalError as exc:
                        raise ConnectFailed(str(exc)) from exc
                yield self._conn
        elif isinstance(self.source, psycopg.Connection):
            with self._lock:
                if self.source.closed or self.source.broken:  # not ours to reopen: no retry can help
                    raise psycopg.InterfaceError("the psycopg connection given to PgVectorStore is closed")
                yield self.source
        else:
            with self.source.connection() as conn:
                yield conn

    def _run(self, fn: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            return fn(cur)

    def read(self, fn: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        return self._run(fn)

    def write(self, fn: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        return self._run(fn)

    def close(self) -> None:
        """Close the connection this client opened; a user's connection or pool stays open."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@contextmanager
def map_errors(where: str, action: str, secret: str | None = None,
               on_schema_change: Callable[[], None] | None = None) -> Iterator[None]:
    """psycopg exceptions -> bge-vdb errors; TransientError only for what a retry can fix."""

    def msg(exc: BaseException) -> str:
        text = f"PostgreSQL ({where}) {action} failed: {type(exc).__name__}: {str(exc).strip()}"
        return text.replace(secret, "***") if secret else text

    try:
        yield
    except BgeVdbError:
        raise
    except ConnectFailed as exc:
        text = str(exc)
        if any(t in text for t in _PERMANENT_CONNECT) and not any(t in text for t in _TRANSIENT_LOGIN):
            raise ConnectorError(msg(exc)) from None
        raise ServerUnreachable(msg(exc)) from None
    except psycopg.errors.UndefinedTable as exc:
        if on_schema_change:
            on_schema_change()
        raise CollectionNotFound(msg(exc)) from None
    except psycopg.OperationalError as exc:
        state = exc.sqlstate
        if state is None or state.startswith("08") or state in TRANSIENT_STATES:
            raise TransientError(msg(exc)) from None
        raise ConnectorError(msg(exc)) from None
    except psycopg.InterfaceError as exc:  # e.g. the user's own connection was closed
        raise ConnectorError(msg(exc)) from None
    except (psycopg.Error, ValueError, TypeError) as exc:
        if on_schema_change and isinstance(exc, (psycopg.errors.UndefinedColumn, psycopg.errors.DatatypeMismatch,
                                                 psycopg.errors.UndefinedObject)):
            on_schema_change()  # a table or type changed under us: read them again
        raise ConnectorError(msg(exc)) from None
