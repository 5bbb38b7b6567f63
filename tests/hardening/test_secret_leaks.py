"""No secret reaches a repr, an error, a log line or a report (issue 14).

Every connector and remote embedder gets an API key, token or password; then the stores are used
the ways that print things: repr and str, errors from servers that refuse or are not there (whole
tracebacks, chained causes included), every log record at DEBUG (the SDKs' own loggers included),
the CLI's ``--json`` output and printed summaries, sync and migration reports. The Weaviate and
Pinecone fakes and a TEI fake answer on loopback; Qdrant, Milvus and PostgreSQL servers are reached
on ports nobody listens on, which is where their errors (and so the chance to echo a credential)
come from; a small server that quotes the request's Authorization header back in every answer
stands for a proxy or server that echoes credentials. The last test plants a leak in each channel
and checks that the watcher sees it, so the checks above cannot pass vacuously.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bge_vdb import Document, cli, connect, sync_corpus
from bge_vdb.embedder import Embedder
from bge_vdb.errors import BgeVdbError
from bge_vdb.retry import RetryPolicy
from tests.fakes.pinecone_server import API_KEY as PINECONE_KEY
from tests.fakes.pinecone_server import API_KEY_ENV as PINECONE_KEY_ENV
from tests.fakes.pinecone_server import running_pinecone_fake
from tests.fakes.tei_server import fake_tei
from tests.fakes.weaviate_server import running_weaviate_fake

SECRETS = {
    "QDRANT_API_KEY": "qdrant-secret-6f1a2b",
    "MILVUS_TOKEN": "milvus-secret-9c3d4e",
    "WEAVIATE_API_KEY": "weaviate-secret-2b7c8d",
    "PGPASSWORD": "postgres-secret-5e6f7a",
    "HF_TOKEN": "tei-secret-8a9b0c",
    "OPENAI_API_KEY": "openai-secret-1d2e3f",
}
ALL_SECRETS = [*SECRETS.values(), PINECONE_KEY]
NO_WAIT = RetryPolicy(attempts=2, sleep=lambda _s: None)


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Seen:
    """Everything the test saw printed, logged or raised."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, BaseException):
                self.texts.append("".join(traceback.format_exception(value)))
            else:
                self.texts.append(value if isinstance(value, str) else repr(value))
                self.texts.append(str(value))

    def error_of(self, call: Callable[[], Any]) -> BaseException:
        try:
            call()
        except Exception as exc:
            self.add(exc)
            return exc
        raise AssertionError("expected an error")

    def leaks(self) -> list[str]:
        return [f"{secret!r} in: {text[max(0, text.find(secret) - 120): text.find(secret) + 40]!r}"
                for text in self.texts for secret in ALL_SECRETS if secret in text]


class _Collect(logging.Handler):
    def __init__(self, seen: Seen) -> None:
        super().__init__(logging.DEBUG)
        self.seen = seen
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.seen.texts.append(logging.Formatter("%(name)s %(message)s").format(record))


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen (their log lines are checked too), without waiting between tries."""
    monkeypatch.setattr(RetryPolicy, "wait_for", lambda self, attempt, retry_after: 0.0)


@contextlib.contextmanager
def watching(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Seen, _Collect]]:
    """Secrets in the environment; every log record at DEBUG goes to the watcher."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(PINECONE_KEY_ENV, PINECONE_KEY)
    watcher = Seen()
    handler = _Collect(watcher)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield watcher, handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    with watching(monkeypatch) as (watcher, handler):
        yield watcher
    assert handler.count > 0, "the DEBUG handler saw nothing: the log check would be vacuous"
    assert not watcher.leaks(), "\n".join(watcher.leaks())


def run_cli(seen: Seen, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    seen.add(out.getvalue(), err.getvalue())
    return code, out.getvalue()


def test_connectors_and_embedders_facing_unreachable_servers(seen: Seen) -> None:
    port = dead_port()
    qdrant = connect(f"qdrant+http://127.0.0.1:{port}", retry_policy=NO_WAIT)  # key from QDRANT_API_KEY
    seen.add(qdrant)
    seen.error_of(lambda: qdrant.collection("docs", dim=4))
    keyed = connect(f"qdrant+https://127.0.0.1:{port}", api_key=SECRETS["QDRANT_API_KEY"], retry_policy=NO_WAIT)
    seen.add(keyed)
    seen.error_of(lambda: keyed.collection("docs", dim=4))

    seen.error_of(lambda: connect(f"milvus://127.0.0.1:{port}", retry_policy=NO_WAIT))  # MILVUS_TOKEN
    seen.error_of(lambda: connect(f"milvus://127.0.0.1:{port}", token=SECRETS["MILVUS_TOKEN"], retry_policy=NO_WAIT))
    seen.error_of(lambda: connect(f"milvus://127.0.0.1:{port}?token={SECRETS['MILVUS_TOKEN']}"))

    pg = connect(f"postgresql://bge:{SECRETS['PGPASSWORD']}@127.0.0.1:{port}/db", retry_policy=NO_WAIT)
    seen.add(pg)
    seen.error_of(lambda: pg.collection("docs", dim=4))
    seen.error_of(lambda: connect(f"postgresql://bge@127.0.0.1:{port}/db", retry_policy=NO_WAIT).collection("d", dim=4))

    seen.error_of(lambda: connect(f"weaviate+http://127.0.0.1:{port}?grpc_port={dead_port()}", retry_policy=NO_WAIT))
    seen.error_of(lambda: connect(f"weaviate+http://127.0.0.1:{port}?api_key={SECRETS['WEAVIATE_API_KEY']}"))
    seen.error_of(lambda: connect(f"pinecone://?api_key={PINECONE_KEY}"))
    seen.error_of(lambda: connect(f"pinecone://?host=http://127.0.0.1:{port}&api_key_env={PINECONE_KEY_ENV}",
                                  sleep=lambda _s: None).collection("docs", dim=4))

    for url in (f"tei+http://127.0.0.1:{port}", f"openai+http://127.0.0.1:{port}/v1?model=m"):
        emb = Embedder(url)  # the key from HF_TOKEN / OPENAI_API_KEY
        seen.add(emb)
        seen.error_of(lambda emb=emb: emb.embed_documents(["hello"]))
    given = Embedder(f"openai+http://127.0.0.1:{port}/v1?model=m", api_key=SECRETS["OPENAI_API_KEY"])
    seen.add(given)
    seen.error_of(lambda: Embedder(f"tei+http://127.0.0.1:{port}?token={SECRETS['HF_TOKEN']}"))


def test_the_cli_facing_unreachable_servers(seen: Seen) -> None:
    port = dead_port()
    for url in (f"qdrant+http://127.0.0.1:{port}", f"milvus://127.0.0.1:{port}",
                f"postgresql://bge:{SECRETS['PGPASSWORD']}@127.0.0.1:{port}/db",
                f"weaviate+http://127.0.0.1:{port}?grpc_port={dead_port()}"):
        for argv in (("info", url, "--json"), ("info", url, "docs"),
                     ("search", url, "docs", "river", "--model", f"tei+http://127.0.0.1:{port}", "--json")):
            code, _ = run_cli(seen, *argv)
            assert code != 0, argv


def test_fakes_jobs_reports_and_the_cli(seen: Seen, tiny_384: Path, tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": f"the river number {i}", "lang": "en"}) + "\n"
                           for i in range(6)) + '{"id": "bad", "text": ""}\n', encoding="utf-8")
    with running_weaviate_fake() as weaviate, running_pinecone_fake() as pinecone, \
            fake_tei(tiny_384, api_key=SECRETS["HF_TOKEN"]) as tei:
        # The CLI: the TEI token comes from HF_TOKEN, Weaviate's key from WEAVIATE_API_KEY.
        code, out = run_cli(seen, "sync", str(src), "--to", weaviate.url, "--collection", "Leaks",
                            "--model", tei.url, "--json")
        assert code == 1 and json.loads(out)["added"] == 6  # the empty text is reported, not written
        run_cli(seen, "sync", str(src), "--to", weaviate.url, "--collection", "Leaks", "--model", tei.url)
        assert run_cli(seen, "search", weaviate.url, "Leaks", "river", "-k", "2", "--model", tei.url, "--json")[0] == 0
        assert run_cli(seen, "info", weaviate.url, "Leaks", "--json")[0] == 0
        code, out = run_cli(seen, "migrate", weaviate.url, "Leaks", pinecone.url, "leaks-copy", "--json")
        assert code == 0 and json.loads(out)["written"] == 6
        assert run_cli(seen, "info", pinecone.url, "--json")[0] == 0

        # The Python API: reprs, a report with failures, a server error, a refused token.
        store = connect(pinecone.url, sleep=lambda _s: None)
        emb = Embedder(tei.url)
        seen.add(store, emb, emb.fingerprint)
        col = store.collection("leaks-api", embedder=emb)
        seen.add(col)
        report = sync_corpus(col, [Document("a", "alpha"), {"id": "b", "text": None}])
        seen.add(report, report.to_dict(), json.dumps(report.to_dict()))
        tei.inject(500, times=10)
        seen.error_of(lambda: emb.embed_documents(["gamma"]))
        wrong = Embedder(tei.url, token="not-the-token")
        seen.error_of(lambda: wrong.embed_documents(["delta"]))
        seen.add(wrong)
        store.close()


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with ``server.status`` and a body quoting the request's credential."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        said = f"you sent Authorization: {self.headers.get('Authorization')}"
        status: int = self.server.status  # type: ignore[attr-defined]
        if status == 200:  # a 200 whose body is not JSON (a proxy's login page)
            body = said.encode()
        else:
            body = json.dumps({"error": {"message": said, "type": "invalid_request_error"}}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_secret_echoed_by_a_server_is_not_passed_on(seen: Seen, echo: ThreadingHTTPServer) -> None:
    """A proxy or server that quotes the request's credential back: the messages bge-vdb builds
    from its answers (refusals, server errors after the retries, a body that is not JSON) must not
    carry the credential on, for either remote embedder."""
    port = echo.server_address[1]
    for status in (400, 422, 503, 200, 401):
        echo.status = status  # type: ignore[attr-defined]
        for url in (f"tei+http://127.0.0.1:{port}", f"openai+http://127.0.0.1:{port}/v1?model=m"):
            err = seen.error_of(lambda url=url: Embedder(url).embed_documents(["x"]))
            assert isinstance(err, BgeVdbError), err
            assert "you sent Authorization: Bearer" in "".join(traceback.format_exception(err)) or status == 401


def test_the_watcher_catches_a_planted_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above are only as good as the watcher: a secret planted in each channel (a log
    record of an SDK's logger at DEBUG, an error's chained cause, a repr, CLI output) is found."""
    from bge_vdb.connectors.qdrant import QdrantStore

    with watching(monkeypatch) as (watcher, _):
        assert not watcher.leaks()
        logging.getLogger("pinecone.openapi").debug("headers: %s", {"Api-Key": PINECONE_KEY})
        assert len(watcher.leaks()) == 1
        try:
            try:
                raise OSError(f"connect to postgresql://bge:{SECRETS['PGPASSWORD']}@db failed")
            except OSError as cause:
                raise BgeVdbError("cannot reach PostgreSQL") from cause
        except BgeVdbError as exc:
            watcher.add(exc)
        assert len(watcher.leaks()) == 2
        monkeypatch.setattr(QdrantStore, "__repr__", lambda self: f"QdrantStore({self._api_key!r})",
                            raising=False)
        store = object.__new__(QdrantStore)
        store._api_key = SECRETS["QDRANT_API_KEY"]  # type: ignore[attr-defined]
        watcher.add(store)
        assert len(watcher.leaks()) >= 3
        code, _ = run_cli(watcher, "info", f"milvus://./{SECRETS['MILVUS_TOKEN']}.db")
        assert code != 0 and any(SECRETS["MILVUS_TOKEN"] in leak for leak in watcher.leaks())


@pytest.mark.parametrize("kind", ["Embedder", "Reranker"])
@pytest.mark.parametrize("url", [
    "https://user:{secret}@models.example/bge", "http://models.example/bge?token={secret}",
    "s3://{secret}@bucket/model",
])
def test_a_model_url_with_credentials_is_refused_without_echoing_them(kind: str, url: str) -> None:
    """A plain URL is not a model bge-vdb can load; the error names its scheme and host only."""
    import bge_vdb

    secret = "s3cr3t-model-token"
    with pytest.raises(BgeVdbError) as raised:
        getattr(bge_vdb, kind)(url.format(secret=secret))
    shown = "".join(traceback.format_exception(raised.value))
    assert secret not in shown
    assert "is a URL" in str(raised.value)
