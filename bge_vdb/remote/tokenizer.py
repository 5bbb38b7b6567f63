"""Token counts for a remote embedder: the model's own tokenizer when it is on this machine, else
the server's tokenize endpoint (TEI), else none (counts are then unknown, and said so).

The local tokenizer is looked for, in order, in: the ``tokenizer=`` directory (or
``tokenizer.json`` file, or a Hugging Face id found in the local cache), the Python package that
ships a preset's weights, and the local Hugging Face cache (the server's model id, at the
server's revision when it gives one). The Hub is never contacted: an ETL host that calls a server
should not download models.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import ModelSpec
from ..tokens import adjacency_continuation, byte_to_char_offsets, word_continuation

log = logging.getLogger(__name__)
_CACHE_SIZE = 8192  # texts whose count is remembered (sync counts, then embeds, the same texts)


class TokenSource(ABC):
    """Counts tokens and gives each token's span; ``where`` says where the tokenizer is."""

    where: str

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, texts: Sequence[str]) -> list[int]:
        """Full token counts, special tokens included, without truncation (remembered)."""
        with self._lock:
            known = {t: self._counts[t] for t in texts if t in self._counts}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = dict(zip(missing, self._count(missing), strict=True))
            known.update(fresh)
            with self._lock:
                self._counts.update(fresh)
                while len(self._counts) > _CACHE_SIZE:
                    self._counts.popitem(last=False)
        return [known[t] for t in texts]

    @abstractmethod
    def _count(self, texts: list[str]) -> list[int]: ...

    @abstractmethod
    def spans(self, text: str) -> tuple[list[tuple[int, int]], list[bool]]:
        """Character span of each token (no special tokens) and whether it continues a word."""

    @abstractmethod
    def special_tokens(self) -> int:
        """How many special tokens the model adds to one text ([CLS] and [SEP]: 2)."""


class LocalTokens(TokenSource):
    """The model's fast tokenizer (tokenizer.json), loaded from a local directory."""

    def __init__(self, directory: Path, where: str) -> None:
        super().__init__()
        # The same loading (and padding/truncation resets) as the local Embedder's.
        from ..embedder import _load_tokenizers

        self.where = where
        self.directory = directory
        self._tok, _ = _load_tokenizers(directory, 512)

    def __getstate__(self) -> dict[str, Any]:
        return {"where": self.where, "directory": self.directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"], state["where"])  # type: ignore[misc]

    def _count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts)]

    def spans(self, text: str) -> tuple[list[tuple[int, int]], list[bool]]:
        enc = self._tok.encode(text, add_special_tokens=False)
        return list(enc.offsets), word_continuation(enc.word_ids)

    def special_tokens(self) -> int:
        return int(self._tok.num_special_tokens_to_add(False))


class ServerTokens(TokenSource):
    """A tokenize endpoint: ``tokenize(texts, add_special_tokens)`` returns, per text, the
    tokens' UTF-8 byte spans (None for special tokens), as TEI's ``POST /tokenize`` does."""

    def __init__(self, tokenize: Callable[[list[str], bool], list[list[tuple[int, int] | None]]],
                 where: str) -> None:
        super().__init__()
        self.where = where
        self._tokenize = tokenize
        self._specials: int | None = None

    def _count(self, texts: list[str]) -> list[int]:
        return [len(tokens) for tokens in self._tokenize(texts, True)]

    def spans(self, text: str) -> tuple[list[tuple[int, int]], list[bool]]:
        raw = self._tokenize([text], False)[0]
        byte_spans = [s for s in raw if s is not None]
        offsets = byte_to_char_offsets(text, byte_spans)
        return offsets, adjacency_continuation(text, offsets)

    def special_tokens(self) -> int:
        if self._specials is None:
            with_special = self._tokenize(["a"], True)[0]
            self._specials = sum(1 for s in with_special if s is None)
        return self._specials


def find_local_tokenizer(explicit: str | None, model_id: str | None, revision: str | None,
                         preset: ModelSpec | None) -> LocalTokens | None:
    """The model's tokenizer on this machine, or None. An explicit ``tokenizer=`` that cannot be
    found is an error (it was asked for); the other places are only looked at."""
    if explicit is not None:
        found = _directory_of(explicit)
        if found is None:
            raise ConfigError(f"tokenizer={explicit!r}: no tokenizer.json there, and not a model id "
                              f"in the local Hugging Face cache")
        return LocalTokens(found, f"tokenizer={explicit!r}")
    if preset is not None and preset.local_path is not None:
        path = preset.local_path()
        if path is not None and (path / "tokenizer.json").is_file():
            return LocalTokens(path, f"the package that ships {preset.id}")
    if model_id:
        found = _from_hf_cache(model_id, revision)
        if found is not None:
            return LocalTokens(found, f"the Hugging Face cache ({model_id})")
    return None


def _directory_of(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_file() and path.name == "tokenizer.json":
        return path.parent
    if (path / "tokenizer.json").is_file():
        return path
    if path.exists():
        return None
    return _from_hf_cache(name, None)


def _from_hf_cache(model_id: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a core dependency
        return None
    for rev in dict.fromkeys((revision, None)):  # the server's revision first, then any cached one
        try:
            hit = try_to_load_from_cache(model_id, "tokenizer.json", revision=rev)
        except Exception as exc:  # an id the cache cannot hold (bad characters...): not there
            log.debug("no cached tokenizer for %r: %s", model_id, exc)
            return None
        if isinstance(hit, str):
            return Path(hit).parent
    return None
