"""Suite-wide settings: never reach a model hub, keep thread counts sane on 2 cores, keep the
embedder's caches (weights hashes, ONNX exports) out of the user's home directory, and the
Hypothesis profiles.

Hypothesis profiles (``pytest --hypothesis-profile=NAME``; the default is ``ci``):

* ``ci``: derandomized (a fixed seed: every CI run tries the same examples, so a red build is
  reproducible) at the sizes the README states: the model-based tests run 200 examples of up to
  50 steps on the memory store, 50 on Qdrant local and Milvus Lite.
* ``dev``: the same sizes with fresh random examples on every run.
* ``long``: random, 50 times the examples, up to 80 steps, for a long local run. Bound it in
  wall time with ``BGE_VDB_MODEL_MINUTES`` (tests/model_based/budget.py), e.g.
  ``BGE_VDB_MODEL_MINUTES=30 pytest tests/model_based --hypothesis-profile=long --timeout=0 -s``
  (the model-based tests share the 30 minutes; ``-s`` shows what each ran).
"""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("BGE_VDB_CACHE", tempfile.mkdtemp(prefix="bge-vdb-test-cache-"))

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("ci", max_examples=200, stateful_step_count=50, derandomize=True,
                          print_blob=True, database=None, **_COMMON)
settings.register_profile("dev", max_examples=200, stateful_step_count=50, **_COMMON)
settings.register_profile("long", max_examples=10_000, stateful_step_count=80, **_COMMON)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--hypothesis-profile", default=None):
        settings.load_profile("ci")
