"""The CLI's unit tests: a scripted fake Herald on 127.0.0.1 (ephemeral port) and `herald` run in-process.

The unit suite's network guard is narrowed here to loopback: the CLI's real urllib client talks to the fake
server, and any other address still fails the test.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.session import Dependencies

if TYPE_CHECKING:
    from collections.abc import Iterator

    from typer.testing import Result

CLIENT_KEY = "client-key-under-test"
ADMIN_KEY = "admin-key-under-test"
# Every HERALD_* variable the CLI reads, unset, so the developer's environment cannot change a test.
CLEAN_ENV: dict[str, str | None] = {
    "COLUMNS": "200",  # wide enough that tables never fold a value the tests look for
    "HERALD_API_URL": None,
    "HERALD_API_KEY": None,
    "HERALD_ADMIN_API_KEY": None,
    "HERALD_STACK": None,
    "HERALD_API_PORT": None,
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the unit suite's guard: connections to 127.0.0.1 only (the fake Herald), nothing else."""
    connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: Any) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise AssertionError(f"unit tests must not use the network (connect to {address!r})")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@dataclass
class Seen:
    """One request the fake Herald received."""

    method: str
    path: str  # raw, still percent-encoded
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None without a body


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str]
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class FakeHerald:
    """Answers scripted per (method, path): each request takes the next answer; the last one repeats."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    routes: dict[tuple[str, str], list[Scripted]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def answer(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        raw: bytes | None = None,
    ) -> None:
        self.routes.setdefault((method, path), []).append(Scripted(status, body, headers or {}, delay, raw))

    def next_answer(self, method: str, path: str) -> Scripted:
        queue = self.routes.get((method, path))
        if not queue:
            return Scripted(404, {"error": {"code": "not_found", "message": "No such route"}}, {})
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def seen(self, method: str, path: str) -> list[Seen]:
        return [request for request in self.requests if (request.method, request.path) == (method, path)]


def _handler(fake: FakeHerald) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.requests.append(
                Seen(
                    method=self.command,
                    path=path,
                    query=dict(urllib.parse.parse_qsl(query)),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=json.loads(raw) if raw else None,
                )
            )
            scripted = fake.next_answer(self.command, path)
            if scripted.delay:
                fake.stop.wait(scripted.delay)  # set at teardown, so a slow answer never outlives its test
            payload = scripted.raw if scripted.raw is not None else json.dumps(scripted.body).encode()
            try:
                self.send_response(scripted.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeHerald]:
    """A fake Herald on 127.0.0.1 at an ephemeral port, stopped after the test."""
    herald = FakeHerald()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(herald))
    server.daemon_threads = True
    herald.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield herald
    finally:
        herald.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Herald:
    """`herald` run in-process against the fake, with its keys, unless a test says otherwise."""

    fake: FakeHerald
    runner: CliRunner = field(default_factory=CliRunner)
    client_key: str = CLIENT_KEY
    admin_key: str = ADMIN_KEY

    def __call__(
        self,
        *args: str,
        target: list[str] | None = None,
        deps: Dependencies | None = None,
        env: dict[str, str | None] | None = None,
        input: str | None = None,  # noqa: A002 - CliRunner's name
    ) -> Result:
        given = (
            ["--url", self.fake.url, "--api-key", CLIENT_KEY, "--admin-key", ADMIN_KEY] if target is None else target
        )
        return self.runner.invoke(
            app, [*given, *args], obj=deps or Dependencies(), env={**CLEAN_ENV, **(env or {})}, input=input
        )


@pytest.fixture
def herald(fake: FakeHerald) -> Herald:
    return Herald(fake)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
