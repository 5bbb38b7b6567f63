"""Model resolution: a preset id, a Hugging Face id or a local directory -> a local directory.

Nothing here imports torch or transformers. ``huggingface_hub`` is imported only when a Hugging
Face id has to be looked up. Every failure is a :class:`~bge_vdb.errors.ModelError` that says
what was tried and how to pass a local directory instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError
from .models import ModelSpec, get_preset

log = logging.getLogger(__name__)

# Files a sentence-transformers / Hugging Face BERT repo needs; never *.bin pickles.
_ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*/*.json", "onnx/model.onnx"]
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HF_SNAPSHOT_RE = re.compile(r"/snapshots/([0-9a-f]{40})(?:/|$)")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and what it is called."""

    name: str  # preset / Hugging Face id, or the absolute directory path
    path: Path
    preset: ModelSpec | None
    revision: str | None  # the Hub commit when the files come from the Hugging Face cache


def cache_dir() -> Path:
    """bge-vdb's own cache (exported ONNX models, weight hashes); env ``BGE_VDB_CACHE`` overrides."""
    env = os.environ.get("BGE_VDB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bge-vdb"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _looks_like_path(model: str) -> bool:
    # "org/name" is a Hub id; anything anchored or deeper is a filesystem path.
    return (
        model.startswith((".", "/", "~", "\\"))
        or os.path.isabs(model)
        or model.count("/") > 1
        or "\\" in model
    )


def check_model_path(model: str) -> None:
    """Refuse, before anything loads, a model argument that is a path to nothing or a URL.

    A URL is named by its scheme and host only: credentials or a token in it would otherwise
    end up in logs and tracebacks.
    """
    scheme, sep, rest = model.partition("://")
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):  # RFC 3986's scheme
        host = rest.split("/", 1)[0].rpartition("@")[2].split("?", 1)[0]
        raise ModelError(
            f"model {scheme}://{host}/... is a URL bge-vdb does not serve models from: a local model "
            f"is a directory or a Hugging Face id, a served one a tei+http(s):// or "
            f"openai+http(s)://.../v1?model=NAME URL"
        )
    local = Path(model).expanduser()
    if not local.exists() and _looks_like_path(model):
        raise ModelError(f"model directory {str(local)!r} does not exist")


def resolve(model: str) -> ResolvedModel:
    """Find ``model`` on disk, downloading it only when the Hub is allowed and reachable."""
    if not isinstance(model, str) and not isinstance(model, os.PathLike):
        raise TypeError(f"model must be a preset id, a Hugging Face id or a directory, not {type(model).__name__}")
    model = os.fspath(model)
    local = Path(model).expanduser()
    if local.is_dir():
        path = local.resolve()
        return ResolvedModel(str(path), path, None, _revision_of(path))
    if local.exists():
        raise ModelError(f"{model!r} is a file; pass the model's directory (with config.json)")
    check_model_path(model)

    preset = get_preset(model)
    name = preset.id if preset else model
    tried: list[str] = [f"no local directory named {model!r}"]
    if preset is not None and preset.local_path is not None:
        found = preset.local_path()
        if found is not None:
            return ResolvedModel(name, found.resolve(), preset, None)
        tried.append("the Python package that ships its weights is not installed")

    offline = _hub_offline()
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - installed with tokenizers/transformers
        tried.append("huggingface_hub is not installed")
    else:
        try:
            path = Path(snapshot_download(name, allow_patterns=_ALLOW_PATTERNS, local_files_only=offline))
            return ResolvedModel(name, path, preset, _revision_of(path))
        except Exception as exc:  # the Hub raises many types; all mean "not available"
            where = "the local Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else (
                "the local Hugging Face cache and the Hub")
            first_line = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else ""
            tried.append(f"{where}: {type(exc).__name__}: {first_line}")
    raise ModelError(
        f"cannot find model {model!r}. Tried: " + "; ".join(tried) + ". "
        "Download it on a machine with internet access (e.g. `hf download "
        f"{name} --local-dir DIR`; `huggingface-cli download` in old huggingface-hub releases) and "
        "pass that directory: "
        "Embedder('DIR')."
    )


def _revision_of(path: Path) -> str | None:
    match = _HF_SNAPSHOT_RE.search(path.as_posix())
    return match.group(1) if match else None


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when absent; a broken file is a ModelError."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def weights_file(path: Path) -> Path | None:
    """The safetensors weights of a model directory (single file only), or None."""
    candidate = path / "model.safetensors"
    return candidate if candidate.is_file() else None


def check_model_files(path: Path, backend: str) -> None:
    """What loading will need, checked without loading anything: a fast tokenizer and, for the
    torch backend, safetensors weights. Lets a command refuse a broken model before it writes."""
    if not (path / "tokenizer.json").is_file():
        raise ModelError(f"{path} has no tokenizer.json (a fast tokenizer is required)")
    if backend == "torch" and weights_file(path) is None:
        found = sorted(p.name for p in path.glob("*.bin"))
        hint = f" (found {found}: bge-vdb loads safetensors only)" if found else ""
        raise ModelError(f"no model.safetensors weights in {path}{hint}")


def weights_sha256(file: Path) -> str:
    """SHA-256 of a weights file: the HF cache blob name when it is one, else hashed once and cached."""
    real = file.resolve()
    if _SHA256_RE.match(real.name):  # huggingface cache: snapshots/<rev>/f -> blobs/<sha256>
        return real.name
    stat = real.stat()
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
    store = cache_dir() / "sha256.json"
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):  # a missing or broken cache is just empty
        known = json.loads(store.read_text(encoding="utf-8"))
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with real.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    known[key] = value
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known), encoding="utf-8")
        tmp.replace(store)
    except OSError as exc:  # a read-only home must not stop embedding
        log.debug("cannot cache weights hash in %s: %s", store, exc)
    return value
