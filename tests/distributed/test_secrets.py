"""Issue 14, item 9: no secret in any repr or error of bge_vdb.distributed (Ray logs the
arguments of its actors). No Ray instance needed."""

from __future__ import annotations

import logging

import pytest

from bge_vdb.distributed import EmbedderSpec, _check_shared_store, _WorkerConfig

SECRETS = ("tok-s3cr3t-url", "key-s3cr3t-option", "key-s3cr3t-embedder", "pw-s3cr3t-userinfo")


def config() -> _WorkerConfig:
    spec = EmbedderSpec("BAAI/bge-small-en-v1.5", {"api_key": SECRETS[2], "threads": 1})
    return _WorkerConfig(f"milvus+https://user:{SECRETS[3]}@host:19530?token={SECRETS[0]}&db_name=prod",
                         {"api_key": SECRETS[1]}, "docs", spec, "split", None, 32, False, "rows",
                         "id", "text", "metadata")


def test_the_worker_config_and_embedder_spec_show_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config()
    shown = [repr(cfg), str(cfg), repr(cfg.embedder), str(cfg.embedder), f"{cfg!r} {[cfg]} {({'c': cfg})}"]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("bge_vdb").debug("actor config %s %r", cfg, cfg)
    for text in [*shown, caplog.text]:
        for secret in SECRETS:
            assert secret not in text, (secret, text)
    assert "collection='docs'" in repr(cfg) and "milvus+https://host:19530?..." in repr(cfg)
    assert cfg.store_options == {"api_key": SECRETS[1]}  # still there for the worker to use


def test_the_private_store_error_shows_no_token() -> None:
    from bge_vdb.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _check_shared_store(f"milvus:///tmp/x.db?token={SECRETS[0]}")
    assert SECRETS[0] not in str(info.value) and "private to one process" in str(info.value)
