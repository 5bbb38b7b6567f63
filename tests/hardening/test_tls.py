"""TLS failures are permanent: never retried for a minute (issue 14, item 7).

Real TLS on loopback: a server with a self-signed certificate (the client cannot verify it) and
a plain-HTTP server spoken to over https (no TLS handshake possible). Each connector must raise
a ConnectorError that says why, after one attempt; a port nobody listens on stays transient.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import connect
from bge_vdb.errors import ConnectorError, TransientError
from bge_vdb.retry import RetryPolicy


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Loopback servers on fresh ports: two speaking TLS with an untrusted certificate, two plain."""
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers = {}
    for name in ("tls", "tls_grpc", "plain", "plain_grpc"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        if name.startswith("tls"):
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    dead = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)  # bound, closed: nobody listens
    dead_port = dead.server_address[1]
    dead.server_close()
    try:
        yield {name: s.server_address[1] for name, s in servers.items()} | {"dead": dead_port}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


def open_and_describe(kind: str, port: int, grpc_port: int, policy: RetryPolicy,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "qdrant":
        store = connect(f"qdrant+https://127.0.0.1:{port}", retry_policy=policy)
    elif kind == "pinecone":
        monkeypatch.setenv("PINECONE_API_KEY", "pc-test-key")
        store = connect(f"pinecone://?host=https://127.0.0.1:{port}")
        store.retry_policy = policy
    else:
        store = connect(f"weaviate+https://127.0.0.1:{port}?grpc_port={grpc_port}", retry_policy=policy)
    with store:
        store.collection("docs", dim=4)


@pytest.mark.parametrize("kind", ["qdrant", "pinecone", "weaviate"])
@pytest.mark.parametrize(("server", "cause"), [("tls", "CERTIFICATE_VERIFY_FAILED"), ("plain", "WRONG_VERSION_NUMBER")])
def test_tls_failure_is_not_retried(kind: str, server: str, cause: str, ports: dict[str, int],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, sleep=sleeps.append)
    with pytest.raises(ConnectorError) as err:
        open_and_describe(kind, ports[server], ports[f"{server}_grpc"], policy, monkeypatch)
    assert not isinstance(err.value, TransientError)
    assert "TLS failed" in str(err.value) and cause in str(err.value) and "retrying cannot fix" in str(err.value)
    assert sleeps == []  # one attempt, no backoff


@pytest.mark.parametrize("kind", ["qdrant", "pinecone", "weaviate"])
def test_a_closed_port_is_still_transient(kind: str, ports: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    with pytest.raises(TransientError):
        open_and_describe(kind, ports["dead"], ports["plain_grpc"], RetryPolicy(attempts=3, sleep=sleeps.append),
                          monkeypatch)
    assert len(sleeps) == 2  # retried as before
