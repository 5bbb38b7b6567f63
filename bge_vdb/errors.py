"""One error tree for the whole library.

Every connector maps its SDK's exceptions into these at exactly one place (its ``_map_errors``
context manager), so callers and the retry policy only ever see this tree. Retries key on
:class:`TransientError` alone.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class BgeVdbError(Exception):
    """Base class of every error raised by bge-vdb."""


class ConfigError(BgeVdbError, ValueError):
    """A wrong setting: unknown URL scheme, bad option, missing credentials."""


class StoreNotFound(ConfigError):
    """An embedded store's file or directory does not exist and the caller asked not to create it
    (``connect(url, must_exist=True)``, which read-only commands use)."""


class MissingExtra(ConfigError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run.

    ``extra`` is the bge-vdb extra that brings the package (a test checks that every extra named
    anywhere exists in pyproject.toml); ``None`` for a package no extra brings, which is then
    named on its own.
    """

    def __init__(self, package: str, extra: str | None, what: str | None = None) -> None:
        self.package = package
        self.extra = extra
        need = what or package
        target = f"'bge-vdb[{extra}]'" if extra else package
        super().__init__(
            f"{need} needs the Python package {package!r}, which is not installed. "
            f"Install it with: pip install {target}"
        )


class ModelError(BgeVdbError):
    """A model cannot be found, loaded or does not match what was asked for."""


class TokenCountUnavailable(ModelError):
    """The embedder cannot count tokens: a remote embedder with no local tokenizer and a server
    without a tokenize endpoint. Sync then embeds whole documents (the server truncates) and its
    report says that token counts are unknown; ``on_long='split'``/``'error'`` are refused."""


class EmbedderServerError(BgeVdbError):
    """An embedding server (TEI, an OpenAI-compatible server) failed or refused a request, or
    answered something that is not what was asked for. Permanent: retrying will not help."""


class EmbedderUnavailable(EmbedderServerError):
    """The embedding server could not be reached, or kept failing transiently (429, 5xx, a
    dropped connection), after every retry. What was embedded before stays valid; re-run later.
    """


class InputError(BgeVdbError, ValueError):
    """Bad input from the caller: empty or non-string text, missing ids, bad vectors..."""


class TextsRefused(InputError):
    """An embedding server refused some texts of a call (a tokenizer or validation error) while
    it embedded the others. ``refused`` maps each refused text's position in the call (from 0)
    to the server's reason; nothing of the call is returned."""

    def __init__(self, refused: dict[int, str], total: int) -> None:
        self.refused = dict(sorted(refused.items()))
        shown = "; ".join(f"text at position {i}: {why}" for i, why in list(self.refused.items())[:5])
        more = f" (and {len(self.refused) - 5} more)" if len(self.refused) > 5 else ""
        super().__init__(f"the server refused {len(self.refused)} of {total} text(s): {shown}{more}")


class FilterError(InputError):
    """A filter that does not parse: unknown operator, wrong value type, malformed structure."""


class UnsupportedFilter(FilterError):
    """A well-formed filter that one database cannot evaluate (never silently ignored)."""


class CollectionError(BgeVdbError):
    """A collection exists but does not match what was asked for, or does not exist."""


class CollectionNotFound(CollectionError, KeyError):
    """The collection does not exist (also a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "collection not found"


class DimensionMismatch(CollectionError, ValueError):
    """A collection, vector or model has another dimension than expected."""


class MetricMismatch(CollectionError, ValueError):
    """An existing collection uses another distance metric than cosine."""


class FingerprintMismatch(CollectionError, ValueError):
    """A collection was written by another embedding model (see ``Embedder.fingerprint``)."""


class NotHybrid(CollectionError, ValueError):
    """A lexical or hybrid search (or ``hybrid=True``) where there is no lexical side: a
    collection created dense-only, or a database (version) that cannot hold one."""


class ConnectorError(BgeVdbError):
    """The database refused or failed a request; permanent unless it is a TransientError."""


class TransientError(ConnectorError):
    """A failure worth retrying: connection refused/reset, timeout, 429, 5xx, gRPC UNAVAILABLE...

    ``retry_after`` carries the server's Retry-After hint in seconds, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerUnreachable(TransientError):
    """The server cannot be reached at all (raised after the retry budget is spent)."""


class RequestNotImplemented(ConnectorError):
    """The server does not implement this kind of request (HTTP 501). Permanent, and the same for
    any part of a batch: :meth:`Collection.upsert` reports the batch failed instead of bisecting it."""


@dataclass(frozen=True)
class FailedRecord:
    """One record that was not written, and why.

    ``transient`` is true when the store was still failing transiently after every retry (or the
    record was not attempted because of that): the record itself is fine and a later run may
    write it. Jobs use it to stop early instead of spending a retry budget per batch.
    """

    id: str
    reason: str
    transient: bool = False


class WriteError(ConnectorError):
    """Some records could not be written; ``failed`` names each one and ``written`` counts the rest."""

    def __init__(self, failed: Sequence[FailedRecord], written: int = 0) -> None:
        self.failed = list(failed)
        self.written = written
        shown = "; ".join(f"{f.id!r}: {f.reason}" for f in self.failed[:5])
        more = f" (and {len(self.failed) - 5} more)" if len(self.failed) > 5 else ""
        super().__init__(
            f"{len(self.failed)} record(s) not written, {written} written. {shown}{more}"
        )


def permanent_connection_failure(exc: BaseException) -> str | None:
    """Why a connection error can never succeed on retry, or None when it might.

    SDKs report TLS failures (a certificate that does not verify, ``https`` spoken to a plain
    HTTP port, no common TLS version) and URLs of an unsupported protocol as connection errors,
    which connectors would otherwise map to TransientError and retry for a minute. The cause is
    found by walking the exception chain, so no SDK needs to be imported here.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            parts = [getattr(current, "reason", None), getattr(current, "verify_message", None)]
            reason = ": ".join(p for p in parts if p) or str(current)
            return (f"TLS failed ({reason}): the server's certificate does not verify, or the URL "
                    f"says https where the server speaks plain http (or the reverse); retrying "
                    f"cannot fix this: check the URL's scheme and port and the certificate")
        if type(current).__name__ == "UnsupportedProtocol":  # httpx: a URL scheme it cannot speak
            return f"unsupported protocol: {current}"
        current = current.__cause__ or current.__context__
    return None


class JobInterrupted(BgeVdbError):
    """A job (``sync_corpus``, ``migrate``) stopped mid-run by an error from outside the store:
    the source iterator, the embedder, a progress callback.

    What was written before it stays written (and a re-run resumes from there). ``report`` is the
    job's partial report (a ``SyncReport`` or ``MigrationReport``, with ``aborted``/``stopped``
    saying where it stopped); the original error is ``__cause__``.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class SyncInterrupted(JobInterrupted):
    """``sync_corpus`` (or ``sync_dataset``) stopped by an error; see :class:`JobInterrupted`."""


class MigrationInterrupted(JobInterrupted):
    """``migrate`` stopped by an error; see :class:`JobInterrupted`."""


class JobCancelled(KeyboardInterrupt):
    """Ctrl-C during a job: still a ``KeyboardInterrupt`` (so it stops a program as one does),
    re-raised with the job's partial ``report`` attached; the original is ``__cause__``."""

    def __init__(self, report: Any) -> None:
        super().__init__("interrupted")
        self.report = report
