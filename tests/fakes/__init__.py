"""Wire-level fakes of database servers that cannot run on the test machines (Weaviate,
Pinecone). They speak the real protocol on loopback and are driven by the real SDKs."""
