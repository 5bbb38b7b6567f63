"""HTTP to an embedding server: one client per embedder, errors mapped into bge-vdb's tree once.

Every request goes through :func:`~bge_vdb.retry.call_with_retry`: connection errors, timeouts,
HTTP 408, 429 and 5xx are :class:`~bge_vdb.errors.TransientError` (with the server's
``Retry-After``) and are retried by the embedder's policy; when the policy gives up they become
:class:`~bge_vdb.errors.EmbedderUnavailable`. Any other refusal is :class:`RequestRefused`
(permanent), except refused credentials, which are a :class:`~bge_vdb.errors.ConfigError`.

The secret (a bearer token or API key) lives in one header of the client and nowhere else: it
is never part of a message, a log line or a ``repr``, not even when a server or proxy quotes the
request's header back in its answer (it is cut out of any text taken from an answer).

One embed call sends several requests at once (:mod:`.requests`); when one of them fails for
good, the call's ``stop`` event is set and its sibling requests are not sent again (they raise
:class:`RequestAbandoned`, never what the caller sees: the caller gets the failure that stopped
the call).
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import (
    ConfigError,
    EmbedderServerError,
    EmbedderUnavailable,
    MissingExtra,
    TransientError,
    permanent_connection_failure,
)
from ..retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

_RETRIED_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


class RequestRefused(EmbedderServerError):
    """The server answered a request with a permanent error status (400, 404, 413, 422, 424...).

    ``status`` is the HTTP status, ``reason`` the server's own message, ``kind`` its error type
    when it names one (TEI: ``Validation``, ``Tokenizer``, ``Backend``...).
    """

    def __init__(self, message: str, *, status: int, reason: str, kind: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.kind = kind


class RequestAbandoned(EmbedderUnavailable):
    """A request not sent (again) because another request of the same embed call failed first.

    Never the error an embed call raises: the runner raises the failure that set ``stop``.
    """


def server_reason(body: bytes) -> tuple[str, str | None]:
    """The message and error type an error body carries, for TEI (``{"error": "...",
    "error_type": "..."}``), OpenAI and Infinity (``{"error": {"message": ..., "type": ...}}``)
    and FastAPI (``{"detail": ...}``); else the start of the text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300] or "(empty body)", None
    if isinstance(data, Mapping):
        err = data.get("error")
        if isinstance(err, Mapping):
            return str(err.get("message") or err)[:300], _str_or_none(err.get("type") or err.get("code"))
        if err is not None:
            return str(err)[:300], _str_or_none(data.get("error_type"))
        if "detail" in data:
            return str(data["detail"])[:300], None
    return text[:300], None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _sleep_unless(stop: threading.Event) -> Callable[[float], None]:
    """A retry's backoff that ends early once ``stop`` is set (a sibling request failed: the
    call is over, the next try would not be sent anyway)."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


class ServerClient:
    """JSON over HTTP to one server, with retries, bounded connections and mapped errors.

    Args:
        base_url: ``http(s)://host:port[/prefix]`` (no credentials in it; checked by the caller).
        secret: sent as ``Authorization: Bearer ...``; None sends no such header.
        secret_hint: how to provide the secret, for the message when the server refuses it.
        timeout: seconds for connecting and for each read.
        connections: most connections kept open (the embedder's concurrency).
        policy: the retry policy for transient failures.
    """

    def __init__(self, base_url: str, *, secret: str | None, secret_hint: str, timeout: float,
                 connections: int, policy: RetryPolicy) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingExtra("httpx", "remote", "a remote embedder") from exc
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._secret_hint = secret_hint
        self._had_secret = secret is not None
        headers = {"Accept": "application/json", "User-Agent": "bge-vdb"}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=False, trust_env=False,
        )

    def __repr__(self) -> str:
        return f"ServerClient({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def get(self, path: str) -> Any:
        return self._call("GET", path, None, None)

    def post(self, path: str, body: Mapping[str, Any], *, stop: threading.Event | None = None) -> Any:
        """POST ``body`` as JSON; once ``stop`` is set, no further try is sent
        (:class:`RequestAbandoned`)."""
        return self._call("POST", path, body, stop)

    def _redacted(self, body: bytes) -> bytes:
        """A server's answer without the secret, should the server quote the request's header back
        (cut out before any truncation, so no part of it is left either)."""
        auth = self._client.headers.get("Authorization")
        secret = auth.removeprefix("Bearer ").encode() if auth else b""
        return body.replace(secret, b"[secret removed]") if secret else body

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None,
              stop: threading.Event | None) -> Any:
        where = f"{method} {self.base_url}{path}"
        policy = self.policy
        if stop is not None and policy.sleep is time.sleep:
            policy = dataclasses.replace(policy, sleep=_sleep_unless(stop))
        try:
            return call_with_retry(self._once, method, path, body, where, stop, policy=policy)
        except TransientError as exc:
            raise EmbedderUnavailable(
                f"the server did not answer {where} after the retries "
                f"(policy: up to {self.policy.attempts} tries, {self.policy.max_total:.0f}s): {exc}"
            ) from exc

    def _once(self, method: str, path: str, body: Mapping[str, Any] | None, where: str,
              stop: threading.Event | None) -> Any:
        if stop is not None and stop.is_set():
            raise RequestAbandoned(f"{where} not sent: another request of the same call failed")
        httpx = self._httpx
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            permanent = permanent_connection_failure(exc)
            if permanent is not None:
                raise EmbedderServerError(f"{where}: {permanent}") from None
            raise TransientError(f"{where}: {type(exc).__name__}: {exc or 'no detail'}") from None
        status = response.status_code
        if status < 300:
            try:
                return response.json()
            except ValueError:
                raise EmbedderServerError(
                    f"{where} answered HTTP {status} with a body that is not JSON: "
                    f"{self._redacted(response.content)[:120]!r}") from None
        reason, kind = server_reason(self._redacted(response.content))
        if status in _RETRIED_STATUS:
            raise TransientError(f"{where} answered HTTP {status}: {reason}",
                                 retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        if status in (401, 403):
            given = "the credentials given were refused" if self._had_secret else "no credentials were given"
            raise ConfigError(f"{where} answered HTTP {status} ({given}): {self._secret_hint}")
        raise RequestRefused(f"{where} answered HTTP {status}: {reason}", status=status,
                             reason=reason, kind=kind)
