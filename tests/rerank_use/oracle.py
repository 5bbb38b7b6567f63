"""The independent computation reranked search is compared with: the first stage's top
``candidates`` computed here (by numpy for dense search), each candidate's text scored with the
query by ``Reranker.score`` (not ``rerank``), sorted by that score (ties in first-stage order),
the best ``k``. Corpora are drawn from the tiny cross-encoders' vocabulary, so their texts are real
tokens and the random cross-encoder gives distinct texts distinct scores."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bge_vdb import filters
from bge_vdb.types import Hit
from tests.support.cross_encoders import WORDS

#: Scores closer than this are a tie for the comparison (batches of other shapes may change the
#: last bits of a score); the reranker's own tie rule is tested on exact duplicates.
TIE = 1e-5

words = st.sampled_from(WORDS[18:])  # the content words of the tiny models: "vector" ... "short"
texts = st.lists(words, min_size=1, max_size=8).map(" ".join)
corpora = st.lists(st.tuples(texts, st.integers(0, 2)), min_size=1, max_size=30,
                   unique_by=lambda t: t[0])
wheres = st.one_of(st.none(), st.integers(0, 2).map(lambda g: {"g": g}),
                   st.integers(0, 2).map(lambda g: {"g": {"$ne": g}}))


def dense_candidates(embedder: Any, docs: Sequence[tuple[str, str, int]], query: str,
                     where: Any, n: int) -> list[tuple[str, str, float]] | None:
    """Top ``n`` ``(id, text, cosine)`` of ``docs`` matching ``where``, by brute force; None
    when the n-th and the next are tied (either may be a candidate: no single answer)."""
    node = filters.parse(where)
    kept = [(i, t) for i, t, g in docs if filters.matches(node, {"g": g})]
    if not kept:
        return []
    vecs = np.asarray(embedder.embed_documents([t for _, t in kept]), dtype=np.float64)
    q = np.asarray(embedder.embed_query(query), dtype=np.float64)
    sims = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    order = sorted(range(len(kept)), key=lambda j: -sims[j])
    if len(order) > n and abs(sims[order[n - 1]] - sims[order[n]]) < 1e-5:
        return None
    return [(kept[j][0], kept[j][1], float(sims[j])) for j in order[:n]]


def expected(reranker: Any, query: str, candidates: Sequence[tuple[str, str]],
             k: int) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """``(id, score)`` of the best ``k`` candidates by ``reranker.score``, best first, and every
    candidate's score by id."""
    if not candidates:
        return [], {}
    scores = np.asarray(reranker.score([(query, text) for _, text in candidates]), dtype=np.float64)
    order = sorted(range(len(candidates)), key=lambda j: -scores[j])  # stable: ties keep input order
    return ([(candidates[j][0], float(scores[j])) for j in order[:k]],
            {i: float(s) for (i, _), s in zip(candidates, scores, strict=True)})


def assert_same_ranking(got: Sequence[Hit], want: Sequence[tuple[str, float]],
                        all_scores: dict[str, float]) -> None:
    """``got`` is ``want``: the same length, each hit scored as the reranker scores its text, and
    the same ids in the same order except among scores closer than :data:`TIE`."""
    assert len(got) == len(want), ([h.id for h in got], want)
    for h in got:
        assert abs(h.score - all_scores[h.id]) <= TIE, (h.id, h.score, all_scores[h.id])
    assert all(a.score >= b.score - TIE for a, b in itertools.pairwise(got))
    for position, ((want_id, want_score), h) in enumerate(zip(want, got, strict=True)):
        if want_id != h.id:  # only a near-tie may swap places
            assert abs(want_score - h.score) <= TIE, (position, want, [(x.id, x.score) for x in got])
    near_boundary = [s for i, s in all_scores.items() if i not in {w for w, _ in want}]
    if want and near_boundary and max(near_boundary) < want[-1][1] - TIE:
        assert {h.id for h in got} == {w for w, _ in want}
