"""``verify_migration``: prove that a destination collection holds what the source holds.

Counts, every id with its text, metadata and content hash, a sample of vectors and a sample of
top-k queries, in one streaming pass over the source (memory flat). ``migrate`` runs it after a
copy and uses :func:`same_record` to skip records a resumed run finds already in place.

After re-embedding, a stored vector is compared with a fresh embedding of its text. The same
text embedded in another batch is not bit-identical everywhere: bf16 (the default on CPUs with
AVX-512 BF16 and on GPUs) moves it by up to ~8e-4 with the batch's padding (measured on
all-MiniLM-L6-v2), int8 with its dynamic quantization ranges. So the tolerance is measured, not
assumed: part of the sample is embedded a second time one text at a time, and the vectors may
differ from the fresh ones by up to 4 times the largest difference between those two embeddings
of the same texts (at least ``REEMBED_ATOL``). A stale vector, another model's or another
record's, is off by orders of magnitude more; the top-k check catches a swap on top.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .store import Collection, check_vector
from .sync_hash import carry_to_model, model_digest
from .types import EmbedderLike, Hit, Record

#: Copied vectors must match the source to this (they are copied bit for bit, so 0 in practice).
COPY_ATOL = 1e-6
#: Re-embedded vectors are compared with a fresh embedding of their text: padding in another
#: batch composition moves a transformer's float32 output by ~1e-6, so allow a little more. This
#: is the floor; the tolerance used is measured from the embedder (see the module docstring).
REEMBED_ATOL = 1e-4
#: How many times the embedder's own batch-to-batch difference a re-embedded vector may differ.
NOISE_FACTOR = 4.0
_CALIBRATION_TEXTS = 32  # texts embedded one by one to measure that difference
#: Scores this close to the k-th score count as a tie: either id may legitimately be returned.
TIE_TOL = 1e-5
_MAX_LISTED = 20  # differences listed per kind in Verification.differences


@dataclass
class Verification:
    """What ``verify_migration`` checked and found. ``ok`` is False when anything disagrees."""

    source_count: int = 0
    destination_count: int = 0
    missing_ids: list[str] = field(default_factory=list)  # in the source, not in the destination
    extra_ids: list[str] = field(default_factory=list)  # in the destination, not in the source
    content_mismatches: list[str] = field(default_factory=list)  # text/metadata/content_hash differ
    vectors_checked: int = 0
    vector_mismatches: list[str] = field(default_factory=list)
    max_vector_diff: float = 0.0
    vector_tolerance: float = 0.0  # the largest difference allowed (measured when re-embedding)
    queries: int = 0
    queries_agreeing: int = 0
    topk_overlap: float = 1.0  # mean |top-k(src) ∩ top-k(dst)| / k over the sampled queries
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def carried_hashes(content_hash: str | None, reembed: EmbedderLike) -> set[str | None]:
    """The content hashes a record may rightly hold after ``migrate`` re-embedded it with
    ``reembed`` (whether its text fits the new model decides between them)."""
    model = model_digest(reembed.fingerprint)
    return {carry_to_model(content_hash, model, fits=fits) for fits in (True, False)}


def same_record(new: Record, held: Record | None, *, vectors: bool) -> bool:
    """Whether ``held`` (what a store holds) is ``new``: text, content hash and metadata, and
    with ``vectors`` the vector within :data:`COPY_ATOL`."""
    if held is None:
        return False
    if (held.text, held.content_hash) != (new.text, new.content_hash):
        return False
    if dict(held.metadata) != dict(new.metadata):
        return False
    if vectors:
        # Within COPY_ATOL, not bit for bit: Qdrant re-normalizes cosine vectors on every write,
        # which moves float32 values by up to an ulp, so an exact test would never skip there.
        held_vec = None if held.vector is None else np.asarray(held.vector, dtype=np.float32)
        return (held_vec is not None and held_vec.shape == new.vector.shape
                and float(np.max(np.abs(held_vec - new.vector))) <= COPY_ATOL)
    return True



def verify_migration(
    src: Collection,
    dst: Collection,
    *,
    reembed: EmbedderLike | None = None,
    sample: int = 100,
    queries: int = 20,
    k: int = 10,
    seed: int = 0,
    page_size: int = 1000,
) -> Verification:
    """Prove ``dst`` holds what ``src`` holds.

    Counts equal; every source id present in the destination with the same text, metadata and
    content hash; no extra ids; a random sample of vectors equal within 1e-6 (or, after
    re-embedding, equal to a fresh embedding of their text within 1e-4); and for a sample of
    stored vectors used as queries, the top-``k`` ids of source and destination agree, ids tied
    at the k-th score allowed (after re-embedding: each stored vector finds itself in its top-k).
    """
    v = Verification(source_count=src.count(), destination_count=dst.count())
    rng = random.Random(seed)
    reservoir: list[str] = []
    seen = 0
    n_missing = n_content = 0
    for page in src.scroll(page_size):
        held = {r.id: r for r in dst.fetch([r.id for r in page])}
        for rec in page:
            seen += 1  # reservoir sampling: a uniform sample in one pass, memory flat
            if len(reservoir) < sample:
                reservoir.append(rec.id)
            elif (j := rng.randrange(seen)) < sample:
                reservoir[j] = rec.id
            other = held.get(rec.id)
            if other is None:
                n_missing += 1
                if len(v.missing_ids) < _MAX_LISTED:
                    v.missing_ids.append(rec.id)
            elif not (same_record(rec, other, vectors=False) if reembed is None else (
                    (other.text, dict(other.metadata)) == (rec.text, dict(rec.metadata))
                    and other.content_hash in carried_hashes(rec.content_hash, reembed))):
                n_content += 1
                if len(v.content_mismatches) < _MAX_LISTED:
                    v.content_mismatches.append(rec.id)
    n_extra = v.destination_count - (seen - n_missing)
    if n_extra > 0:
        for page in dst.scroll(page_size):
            known = {r.id for r in src.fetch([r.id for r in page])}
            v.extra_ids.extend(r.id for r in page if r.id not in known)
            if len(v.extra_ids) >= _MAX_LISTED:
                break
        v.extra_ids = v.extra_ids[:_MAX_LISTED]
    _check_vectors(src, dst, reservoir, reembed, v)
    _check_topk(src, dst, reservoir[:queries], reembed, k, v)

    d = v.differences
    if v.source_count != v.destination_count:
        d.append(f"counts differ: source {v.source_count}, destination {v.destination_count}")
    if n_missing:
        d.append(f"{n_missing} source id(s) missing from the destination: {_show(v.missing_ids, n_missing)}")
    if n_extra > 0:
        d.append(f"{n_extra} id(s) in the destination but not in the source: {_show(v.extra_ids, n_extra)}")
    if n_content:
        d.append(f"{n_content} record(s) with other text, metadata or content hash: "
                 f"{_show(v.content_mismatches, n_content)}")
    if v.vector_mismatches:
        d.append(f"{len(v.vector_mismatches)} of {v.vectors_checked} sampled vector(s) differ by more "
                 f"than {v.vector_tolerance:.3g} (max {v.max_vector_diff:.3g}): "
                 f"{_show(v.vector_mismatches, len(v.vector_mismatches))}")
    if v.queries_agreeing < v.queries:
        d.append(f"top-{k} results disagree for {v.queries - v.queries_agreeing} of {v.queries} "
                 f"sampled queries (mean overlap {v.topk_overlap:.3f})")
    return v


def _show(ids: Sequence[str], total: int) -> str:
    listed = ", ".join(repr(i) for i in ids[:_MAX_LISTED])
    return listed + (f" (and {total - min(len(ids), _MAX_LISTED)} more)" if total > _MAX_LISTED else "")


def _check_vectors(
    src: Collection, dst: Collection, ids: list[str], reembed: EmbedderLike | None, v: Verification
) -> None:
    if not ids:
        return
    got = {r.id: r for r in dst.fetch(ids, with_vectors=True)}
    if reembed is not None:
        texts = {r.id: r.text for r in src.fetch(ids)}
        ids = [i for i in ids if i in got and texts.get(i)]
        fresh = reembed.embed_documents([texts[i] or "" for i in ids]) if ids else np.zeros((0, dst.dim))
        want = {i: check_vector(vec, dst.dim, i) for i, vec in zip(ids, fresh, strict=True)}
        tol = _reembed_tolerance(reembed, [texts[i] or "" for i in ids[:_CALIBRATION_TEXTS]], dst.dim,
                                 [want[i] for i in ids[:_CALIBRATION_TEXTS]])
    else:
        want = {r.id: np.asarray(r.vector, dtype=np.float32) for r in src.fetch(ids, with_vectors=True)}
        tol = COPY_ATOL
    v.vector_tolerance = tol
    for i in ids:
        if i not in got or i not in want:
            continue
        v.vectors_checked += 1
        have = np.asarray(got[i].vector, dtype=np.float32)
        diff = math.inf if have.shape != want[i].shape else float(np.max(np.abs(have - want[i])))
        v.max_vector_diff = max(v.max_vector_diff, diff)
        if diff > tol:
            v.vector_mismatches.append(i)


def _reembed_tolerance(reembed: EmbedderLike, texts: list[str], dim: int, batched: list[np.ndarray]) -> float:
    """``NOISE_FACTOR`` times the largest difference between ``batched`` (the texts embedded
    together) and the same texts embedded one at a time, at least ``REEMBED_ATOL``."""
    noise = 0.0
    for text, vec in zip(texts, batched, strict=True):
        alone = check_vector(reembed.embed_documents([text])[0], dim, "calibration")
        noise = max(noise, float(np.max(np.abs(alone - vec))))
    return max(REEMBED_ATOL, NOISE_FACTOR * noise)


def _check_topk(
    src: Collection, dst: Collection, ids: list[str], reembed: EmbedderLike | None, k: int,
    v: Verification,
) -> None:
    if not ids:
        return
    # Queries are stored vectors: source vectors when copying, destination ones after re-embedding.
    owner = dst if reembed is not None else src
    overlaps: list[float] = []
    for rec in owner.fetch(ids, with_vectors=True):
        if rec.vector is None:
            continue
        query = np.asarray(rec.vector, dtype=np.float32)
        theirs = dst.search(query, k)
        if reembed is not None:
            agree = any(h.id == rec.id for h in theirs) or _tied(theirs, 1.0)
            overlaps.append(1.0 if any(h.id == rec.id for h in theirs) else 0.0)
        else:
            ours = src.search(query, k)
            a, b = {h.id for h in ours}, {h.id for h in theirs}
            overlaps.append(len(a & b) / max(len(a), 1))
            agree = len(a) == len(b) and all(
                _tied(hits, h.score) for hits, diff in ((ours, a - b), (theirs, b - a))
                for h in hits if h.id in diff
            )
        v.queries += 1
        v.queries_agreeing += int(agree)
    v.topk_overlap = sum(overlaps) / len(overlaps) if overlaps else 1.0


def _tied(hits: list[Hit], score: float) -> bool:
    """Whether ``score`` ties the last (k-th) score of a full result list."""
    return bool(hits) and abs(hits[-1].score - score) <= TIE_TOL
