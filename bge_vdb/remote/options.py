"""Remote embedder URLs and options: ``tei+http(s)://host:port[/prefix][?options]`` and
``openai+http(s)://host:port/v1?model=NAME[&options]``.

A URL configures a remote embedder completely, so one string works wherever a model id goes
(``Embedder(...)``, ``--model``, ``BGEEmbeddings(model=...)``, a Ray worker's spec). Options in the
query are the embedder's keyword options (see :data:`URL_OPTIONS`); unknown ones are refused by
name. Credentials never go in a URL (they would end up in logs, shell history and process lists):
a user:password part or a token-like option is refused without echoing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigError

KINDS = ("tei", "openai")
_PREFIXES = tuple(f"{kind}+{scheme}://" for kind in KINDS for scheme in ("http", "https"))

#: Options a URL's query may carry, and how each is read. Everything else is keyword-only.
URL_OPTIONS: dict[str, type] = {
    "model": str, "preset": str, "tokenizer": str, "query_instruction": str,
    "concurrency": int, "batch_size": int, "max_length": int, "timeout": float, "normalize": bool,
}
_SECRET_NAMES = frozenset({"token", "api_key", "apikey", "key", "password", "secret", "access_token",
                           "hf_token", "authorization"})


def is_remote_url(model: object) -> bool:
    """Whether ``model`` names a remote embedder (``tei+http...`` or ``openai+http...``)."""
    return isinstance(model, str) and model.strip().lower().startswith(_PREFIXES)


@dataclass(frozen=True)
class RemoteURL:
    """A parsed remote embedder URL: ``kind`` (tei/openai), the server's ``base_url`` and the
    options of its query, typed."""

    kind: str
    base_url: str
    options: dict[str, Any]

    @property
    def display(self) -> str:
        """The URL without its query, for messages and ``repr``."""
        return f"{self.kind}+{self.base_url}"


def parse_remote_url(url: str) -> RemoteURL:
    if not is_remote_url(url):
        raise ConfigError(f"not a remote embedder URL (tei+http(s)://... or openai+http(s)://...): {url!r}")
    kind, rest = url.strip().split("+", 1)
    parts = urlsplit(rest)
    if "@" in parts.netloc:  # never echo the URL: it holds a secret
        raise ConfigError(
            f"credentials in a {kind.lower()}+ URL are refused (they would show in logs and process "
            f"lists): give the token as {_secret_hint(kind.lower())}")
    if not parts.hostname:
        raise ConfigError(f"{kind.lower()}+ URL has no host: {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{kind.lower()}+ URL has a bad port: {url!r}") from None
    if parts.fragment:
        raise ConfigError(f"{kind.lower()}+ URL has a '#' part, which means nothing here: {url!r}")
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _SECRET_NAMES:
            raise ConfigError(f"option {name!r} is refused in a URL (it would show in logs and "
                              f"process lists): give it as {_secret_hint(kind.lower())}")
        if name not in URL_OPTIONS:
            raise ConfigError(f"unknown option {name!r} in a {kind.lower()}+ URL; URL options: "
                              f"{', '.join(sorted(URL_OPTIONS))}")
        if name in options:
            raise ConfigError(f"option {name!r} is given twice in the URL")
        options[name] = _typed(name, value)
    path = parts.path.rstrip("/")
    return RemoteURL(kind.lower(), f"{parts.scheme}://{parts.netloc}{path}", options)


def _typed(name: str, value: str) -> Any:
    kind = URL_OPTIONS[name]
    try:
        if kind is bool:
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return kind(value)
    except ValueError:
        raise ConfigError(f"URL option {name}={value!r} is not a valid {kind.__name__}") from None


def _secret_hint(kind: str) -> str:
    return "token=... or the HF_TOKEN variable" if kind == "tei" else "api_key=... or the OPENAI_API_KEY variable"


#: Keyword options every remote embedder takes (besides its secret: ``token`` / ``api_key``).
OPTIONS = ("model", "preset", "tokenizer", "query_instruction", "concurrency", "batch_size",
           "max_length", "timeout", "normalize", "retry", "probe_tolerance", "backend", "precision")


def check_options(options: Mapping[str, Any], secret_arg: str) -> None:
    """Refuse options a remote embedder does not take (the local Embedder's ``device``,
    ``threads``...) by name, before anything is contacted."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"a remote embedder does not take {', '.join(map(repr, unknown))} (options "
                          f"of the local Embedder, or misspelt); it takes {secret_arg}, "
                          f"{', '.join(OPTIONS)}")


def merge_options(from_url: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in given.items():
        if name in from_url and from_url[name] != value:
            raise ConfigError(f"option {name!r} is given in the URL and as an argument, differently")
    return {**from_url, **given}


def positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")
    return value
