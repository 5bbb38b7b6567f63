"""Reranked search: a first stage fetches candidates, a cross-encoder puts them in order.

``col.search(query, k, rerank=reranker, candidates=N)`` runs the ordinary search (dense, hybrid or
lexical, with ``where``) for the top ``N`` candidates, scores each (query, candidate text) pair with
the cross-encoder and returns the best ``k`` by that score. A cross-encoder reads the query and the
passage together, so it ranks better than a vector comparison, but it costs one model forward per
candidate: ``N`` bounds that cost and decides what the reranker can find (a record outside the
first stage's top ``N`` is never seen).

Everything about the call is checked before the first stage runs (so a mistake costs neither a
query embedding nor a database round trip); only a candidate without text, which is known once the
candidates are there, is refused afterwards, naming its id. Nothing here imports a model: the
reranker object is the caller's (:class:`bge_vdb.Reranker`, a remote one, or any object with
their ``score`` and ``rerank`` methods: :class:`bge_vdb.reranker.RerankerProtocol`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import filters
from .errors import InputError
from .types import Hit

if TYPE_CHECKING:
    # The one reranker protocol, for typing only: bge_vdb.reranker imports the model machinery.
    from .reranker import RerankerProtocol
    from .store import Collection

#: Candidates fetched for reranking when ``candidates=`` is not given: 50, or ``k`` when larger.
#: The issue's own example reranks 50, a common choice in RAG stacks: fewer often leaves the right
#: passage out of the reranker's sight, more costs one more cross-encoder pass per candidate.
DEFAULT_CANDIDATES = 50


def check_reranker(reranker: Any) -> RerankerProtocol:
    """``reranker`` itself when it has callable ``score`` and ``rerank`` methods, else InputError."""
    if not all(callable(getattr(reranker, name, None)) for name in ("score", "rerank")):
        raise InputError(
            f"rerank= takes a bge_vdb.Reranker (or an object with its score() and rerank() "
            f"methods), got {type(reranker).__name__}"
        )
    return reranker  # type: ignore[no-any-return]


def candidate_count(candidates: Any, k: int) -> int:
    """How many first-stage hits to rerank: ``candidates``, or by default ``max(50, k)``."""
    if candidates is None:
        return max(DEFAULT_CANDIDATES, k)
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise InputError(f"candidates must be a positive int, got {candidates!r}")
    if candidates < k:
        raise InputError(
            f"candidates={candidates} is less than k={k}: the reranker picks the top k among the "
            f"candidates, so fetch at least k"
        )
    return candidates


def check_query(query: Any) -> str:
    """A cross-encoder reads the query's text: a vector query cannot be reranked."""
    if not isinstance(query, str):
        raise InputError(
            f"rerank= needs a text query (a cross-encoder reads the query with each passage), got "
            f"{type(query).__name__}; search by text, or leave out rerank="
        )
    if not query.strip():
        raise InputError("query: text is empty")
    return query


def require_text(hits: Sequence[Hit], collection: str) -> None:
    """Refuse candidates the reranker cannot read, naming the first such record."""
    for position, hit in enumerate(hits):
        if not isinstance(hit.text, str) or not hit.text.strip():
            raise InputError(
                f"record {hit.id!r} (candidate {position}) in collection {collection!r} has no text, "
                f"so the reranker cannot score it; rerank= needs records stored with their text"
            )


def search_reranked(
    collection: Collection,
    query: Any,
    k: int,
    *,
    rerank: Any,
    candidates: Any,
    where: Mapping[str, Any] | None,
    with_vectors: bool,
    mode: str,
    alpha: float | None,
    fusion: str,
) -> list[Hit]:
    """What ``Collection.search`` runs when ``rerank=`` or ``candidates=`` is given."""
    if rerank is None:
        raise InputError("candidates= applies to reranked search only: pass rerank=... too")
    reranker = check_reranker(rerank)
    depth = candidate_count(candidates, k)
    text = check_query(query)
    filters.parse(where)  # a bad filter is refused before the query is embedded
    hits = collection.search(text, depth, where=where, with_vectors=with_vectors, mode=mode,
                             alpha=alpha, fusion=fusion)
    if not hits:
        return []
    require_text(hits, collection.name)
    return list(reranker.rerank(text, hits, k))


def resolve_reranker(model: str | None, reranker: Any, options: Mapping[str, Any]) -> RerankerProtocol:
    """The reranker an integration wraps: the one given, or a new :class:`bge_vdb.Reranker` for
    ``model`` (a preset id, a directory, or a server URL) with ``options``."""
    if reranker is not None:
        if model is not None or options:
            raise InputError("pass either reranker=... or model=... (with Reranker options), not both")
        return check_reranker(reranker)
    if model is None:
        raise InputError("pass model=... (a reranker preset id, directory or URL) or reranker=...")
    from .reranker import Reranker  # imported on use: it pulls in tokenizers and a backend

    return check_reranker(Reranker(model, **options))


def check_top_n(top_n: Any) -> int:
    """``top_n`` of the framework rerankers: a positive int."""
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise InputError(f"top_n must be a positive int, got {top_n!r}")
    return top_n


def rerank_texts(reranker: RerankerProtocol, query: Any, texts: Sequence[Any], labels: Sequence[str],
                 top_n: int) -> list[tuple[int, float]]:
    """``(position, score)`` of the best ``top_n`` of ``texts`` for ``query``, best first (ties
    in input order): what the LangChain and LlamaIndex rerankers share. ``labels[i]`` names
    item ``i`` in errors (e.g. "document 2 (id 'a')")."""
    text = check_query(query)
    for label, passage in zip(labels, texts, strict=True):
        if not isinstance(passage, str) or not passage.strip():
            raise InputError(f"{label} has no text, so the reranker cannot score it")
    hits = [Hit(id=str(i), score=0.0, text=t, metadata={}) for i, t in enumerate(texts)]
    return [(int(h.id), float(h.score)) for h in reranker.rerank(text, hits, top_n)]
