"""Suite-wide settings: never reach a model hub, keep thread counts sane on 2 cores, and keep
the embedder's caches (weights hashes, ONNX exports) out of the user's home directory."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("BGE_VDB_CACHE", tempfile.mkdtemp(prefix="bge-vdb-test-cache-"))
