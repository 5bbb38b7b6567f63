"""Accepting a collection written by another embedder of the same model: a probe of its records.

A server reports a model id and maybe a revision, never a hash of its weights, so a remote
embedder's fingerprint cannot equal the one a local :class:`~bge_vdb.Embedder` records (which
names its weights by SHA-256). Names alone prove nothing either: a fine-tune may carry its base's
name. What proves "same model" is the vectors, so when a collection records another fingerprint,
the remote embedder re-embeds the text of a few stored records (the shortest of the first page)
and compares: when every component of every unit vector agrees within ``probe_tolerance``, the
server makes the vectors the collection holds, and the embedder adopts the collection's recorded
identity (same digest: the collection opens, and ``sync_corpus`` re-embeds nothing). Otherwise it
keeps its own fingerprint and the collection refuses it as it refuses any other model.

The default tolerance, 5e-3, is set by measurement (README, "Embedding on a server"): fp32
against fp32 agrees within 1e-6, bf16 (the local default on CPUs with AVX-512 BF16) within about
1e-3 of fp32, and two different models, even of the same family and size, differ by 1e-1 or more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..models import ModelSpec, get_preset
from ..types import _VECTOR_IDENTITY_KEYS, Record, fingerprint_digest

log = logging.getLogger(__name__)
DEFAULT_PROBE_TOLERANCE = 5e-3
PROBE_RECORDS = 3  # stored records re-embedded by a probe
PROBE_PAGE = 16  # records read to choose them from


class ProbeMixin:
    """The probe and the adopted identity; mixed into the remote embedders."""

    _adopted: dict[str, Any] | None
    probe_tolerance: float

    def _init_probe(self, tolerance: float | None) -> None:
        value = DEFAULT_PROBE_TOLERANCE if tolerance is None else tolerance
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"probe_tolerance must be a number between 0 and 1, not {value!r}")
        self.probe_tolerance = float(value)
        self._adopted = None

    def _with_adopted(self, fp: dict[str, Any]) -> dict[str, Any]:
        if self._adopted is None:
            return fp
        for key in _VECTOR_IDENTITY_KEYS:
            fp.pop(key, None)
        fp.update(self._adopted)
        return fp

    def _adopted_preset(self) -> ModelSpec | None:
        name = (self._adopted or {}).get("preset")
        return get_preset(name) if isinstance(name, str) else None

    @property
    def fingerprint(self) -> dict[str, Any]:  # pragma: no cover - the embedder defines it
        raise NotImplementedError

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def adopt_fingerprint(self, recorded: Mapping[str, Any], samples: Sequence[Record]) -> bool:
        """Take ``recorded`` (a collection's fingerprint) as this embedder's identity when the
        stored ``samples`` (records with text and vector) re-embed to the vectors they hold.

        Returns:
            True when this embedder's fingerprint now has the recorded digest (it may have had
            it already), False when the probe could not be made or the vectors differ.
        """
        mine = self.fingerprint
        if fingerprint_digest(recorded) == fingerprint_digest(mine):
            return True
        if recorded.get("dim") not in (None, mine.get("dim")) or \
                bool(recorded.get("normalize", True)) != bool(mine.get("normalize")):
            return False
        usable = [r for r in samples if isinstance(r.text, str) and r.text.strip() and r.vector is not None]
        usable = sorted(usable, key=lambda r: len(r.text or ""))[:PROBE_RECORDS]
        if not usable:
            log.info("no stored record with text and vector to probe: %s stays a different model",
                     recorded.get("model"))
            return False
        theirs = np.asarray([np.asarray(r.vector, dtype=np.float32) for r in usable])
        ours = self.embed_documents([r.text or "" for r in usable])
        if theirs.shape != ours.shape:
            return False
        diff = float(np.abs(_unit(ours) - _unit(theirs)).max())
        if diff > self.probe_tolerance:
            log.info("probe of %d stored record(s): vectors differ by up to %.2g (tolerance %.2g): "
                     "the server does not make the vectors of %s", len(usable), diff,
                     self.probe_tolerance, recorded.get("model"))
            return False
        adopted = {k: recorded[k] for k in _VECTOR_IDENTITY_KEYS if k in recorded}
        if not mine.get("preset") and recorded.get("preset"):
            adopted["preset"] = recorded["preset"]
        adopted["probe"] = {"records": len(usable), "max_abs_diff": diff}
        self._adopted = adopted
        log.info("probe of %d stored record(s): vectors agree within %.2g: the collection's model "
                 "%s is the one served", len(usable), diff, recorded.get("model"))
        return True


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)
