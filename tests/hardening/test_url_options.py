"""Misspelt or unknown store options are refused, naming the option and never its value
(issue 14, item 5: ``?db_nme=prod&token=...`` must not silently write to the default database).

Milvus's options are tested with its connector (tests/connectors/test_milvus_*)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from bge_vdb import connect
from bge_vdb.errors import ConfigError

SECRET = "sk-not-a-real-key-2f9c"

CASES: list[tuple[str, dict[str, Any], str]] = [
    # (url, keyword options, the name the error must quote)
    (f"weaviate+http://127.0.0.1:9?grpc_prot=50051&tenant={SECRET}", {}, "grpc_prot"),
    (f"weaviate+https://db.example?tennant={SECRET}", {}, "tennant"),
    ("weaviate+http://127.0.0.1:9?grpc_port=1&graphql=", {}, "graphql"),
    ("weaviate+http://127.0.0.1:9", {"apikey": SECRET}, "apikey"),
    (f"weaviate+http://127.0.0.1:9?api_key={SECRET}", {}, "API key in a URL"),
    (f"qdrant+https://db.example:6333?db_nme={SECRET}", {}, "db_nme"),
    ("qdrant+http://127.0.0.1:9?timeout=10&prefer_grcp=true", {}, "prefer_grcp"),
    ("qdrant+http://127.0.0.1:9", {"api_kye": SECRET}, "api_kye"),
    ("qdrant://:memory:", {"prefer_grcp": True}, "prefer_grcp"),
    ("qdrant+http://127.0.0.1:9?timeout=soon", {}, "timeout"),
    ("qdrant+http://127.0.0.1:9?prefer_grpc=maybe", {}, "prefer_grpc"),
    (f"pinecone://?api_key_env=PINECONE_API_KEY&namespce={SECRET}", {}, "namespce"),
    ("pinecone://?api_key_env=PINECONE_API_KEY", {"apikey": SECRET}, "apikey"),
    (f"pinecone://?api_key={SECRET}", {}, "API key in a URL"),
    ("memory://scratch?persist=1", {}, "persist"),
    ("memory://", {"dim": 8}, "dim"),
]


@pytest.mark.parametrize(("url", "options", "named"), CASES, ids=[c[2] + "-" + c[0].split(":")[0] for c in CASES])
def test_unknown_option_is_refused_before_connecting(url: str, options: dict[str, Any], named: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "pc-test-key")

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a connection was attempted before the options were checked")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(ConfigError) as err:
        connect(url, **options)
    message = str(err.value)
    assert named in message
    assert SECRET not in message and "pc-test-key" not in message
