"""The API emulator's HTTP front over real sockets: only loopback hosts, bounded bodies, no smuggling, no stalls."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.apigateway.framing import MAX_PAYLOAD_BYTES
from local.apigateway.gateway import ApiGateway
from local.apigateway.server import READ_TIMEOUT_SECONDS, ApiServer
from local.aws.moto_server import LOOPBACK
from local.aws.provision import provision
from local.aws.template import Stack
from tests.integration.local.conftest import unique_key_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from local.runtime import AwsClients

API_KEY = unique_key_value("hardening-key")  # this module's stack is provisioned once per test process
CLIENT_TIMEOUT = 2.0  # no answer within this long fails the test (the server's read timeout is longer)
STALL_TIMEOUT = 0.3  # the read timeout of servers that tests stall on purpose


@dataclass
class RecordingFunction:
    """The API function: records every event and answers 200 with the body's length."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"received": len(event["body"] or "")})}


@dataclass
class Served:
    port: int
    function: RecordingFunction

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@dataclass(frozen=True)
class RawReply:
    """The first HTTP response on a connection, and whatever the server sent after it before closing."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    after: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def stack(aws: AwsClients) -> Stack:
    """The template provisioned into moto once for this module, with :data:`API_KEY` as the client's key."""
    stack = Stack.from_file()
    stack.stack_name = f"h{uuid.uuid4().hex[:8]}"
    provision(stack, aws, stack.stack_name, api_key_values={"HeraldApiApiKey": API_KEY})
    return stack


@pytest.fixture
def serve(stack: Stack, aws: AwsClients) -> Iterator[Callable[..., Served]]:
    """Start an API server on an ephemeral loopback port; every one is stopped after the test."""
    servers: list[ApiServer] = []

    def start(read_timeout: float = READ_TIMEOUT_SECONDS, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Served:
        function = RecordingFunction()
        gateway = ApiGateway.from_stack(stack, {stack.arns["ApiFunction"]: function}, aws.client("apigateway"))
        gateway.max_payload_bytes = max_payload_bytes
        server = ApiServer(gateway, 0, read_timeout=read_timeout).start()
        servers.append(server)
        return Served(server.port, function)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api(serve: Callable[..., Served]) -> Served:
    return serve()


def exchange(port: int, data: bytes, *, half_close: bool = False, method: str = "POST") -> RawReply:
    """Send raw bytes, read until the server closes, and parse the first response."""
    with socket.create_connection((LOOPBACK, port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return parse_reply(read_until_closed(sock), method)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(1 << 16):
        received += chunk
    return received


def parse_reply(data: bytes, method: str = "POST") -> RawReply:
    stream = _Received(data)
    response = http.client.HTTPResponse(stream, method=method)  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return RawReply(response.status, response.headers, body, stream.read())


class _Received(io.BytesIO):
    """Bytes already received, shaped like the socket http.client.HTTPResponse reads from (and stays open for
    reading what came after the response)."""

    def makefile(self, *_: Any) -> io.BytesIO:
        return self

    def close(self) -> None:
        """http.client closes the response's stream when done; keep it readable."""


def request_head(
    target: str = "/notifications",
    headers: list[tuple[str, str]] | None = None,
    *,
    method: str = "POST",
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {target} {version}", *(f"{name}: {value}" for name, value in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def keyed(host: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """Headers of a request to the keyed POST /notifications that would succeed, plus ``extra``."""
    return [("Host", host), ("x-api-key", API_KEY), ("Connection", "close"), *extra]


def chunked(*chunks: bytes) -> bytes:
    return b"".join(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n" for chunk in chunks) + b"0\r\n\r\n"


def assert_refused(reply: RawReply, status: int, code: str) -> None:
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Connection"] == "close"
    error = reply.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert reply.after == b"", "nothing may follow a refusal on its connection"


# ---------------------------------------------------------------------- Host
@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "0.0.0.0:{port}", "127.0.0.1.nip.io:{port}", "localhost.evil.example", ""],
    ids=["rebound-name", "rebound-name-with-port", "zero-address", "loopback-lookalike", "subdomain", "empty"],
)
def test_a_request_for_any_other_host_is_refused_before_routing(
    api: Served, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a request that would succeed (valid key, declared route, small body), but for another host
    body = b'{"channel": "sms"}'
    headers = keyed(host.format(port=api.port), ("Content-Length", str(len(body))))

    # When it reaches the emulator (as a DNS-rebound page's request would)
    with caplog.at_level(logging.WARNING, logger="herald.local"):
        reply = exchange(api.port, request_head(headers=headers) + body)

    # Then 403 in Herald's error shape, the function never runs, and the log names the refusal, not the host
    assert_refused(reply, 403, "host_not_allowed")
    assert reply.json()["error"]["message"] == "This server answers only requests for: 127.0.0.1, [::1], localhost"
    assert api.function.events == []
    (refusal,) = [record for record in caplog.records if record.message == "request refused"]
    assert refusal.__dict__["status"] == 403
    assert "evil" not in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost", "[::1]:{port}", "127.0.0.1"])
def test_loopback_hosts_are_answered_whatever_the_port(api: Served, host: str) -> None:
    # Given a keyed request for a loopback name (the port in Host is not compared)
    body = b'{"channel": "sms"}'
    headers = keyed(host.format(port=api.port), ("Content-Length", str(len(body))))

    # When it is sent
    reply = exchange(api.port, request_head(headers=headers) + body)

    # Then the function answers with the body it received
    assert reply.status == 200
    assert reply.json() == {"received": len(body)}
    assert api.function.events[0]["body"] == body.decode()


@pytest.mark.parametrize(
    ("version", "host_headers", "status", "code"),
    [
        ("HTTP/1.0", [], 403, "host_not_allowed"),
        ("HTTP/1.1", [], 400, "bad_request"),
        ("HTTP/1.1", ["127.0.0.1", "evil.example"], 400, "bad_request"),
        ("HTTP/1.1", ["127.0.0.1:http"], 400, "bad_request"),
        ("HTTP/1.1", ["user@127.0.0.1"], 400, "bad_request"),
    ],
    ids=["http10-without-host", "http11-without-host", "two-hosts", "port-not-a-number", "userinfo"],
)
def test_a_missing_duplicated_or_malformed_host_is_refused(
    api: Served, version: str, host_headers: list[str], status: int, code: str
) -> None:
    # Given a request whose Host is missing, repeated or malformed
    headers = [("Host", value) for value in host_headers]

    # When it is sent to an unkeyed route that would otherwise answer
    reply = exchange(api.port, request_head("/health/live", headers, method="GET", version=version), method="GET")

    # Then HTTP/1.0 without Host is treated as a foreign host; what RFC 9112 calls invalid gets 400
    assert_refused(reply, status, code)
    assert api.function.events == []


def test_an_absolute_target_for_another_host_is_refused_even_with_a_loopback_host_header(api: Served) -> None:
    # Given requests in absolute form: one naming another host, one naming the emulator
    foreign = request_head("http://evil.example/health/live", [("Host", api.host)], method="GET")
    own = request_head(
        f"http://{api.host}/health/live?probe=1", [("Host", api.host), ("Connection", "close")], method="GET"
    )

    # When both are sent
    refused = exchange(api.port, foreign, method="GET")
    served = exchange(api.port, own, method="GET")

    # Then the target's host counts as well as Host: the foreign one is refused, the own one routed by its path
    assert_refused(refused, 403, "host_not_allowed")
    assert served.status == 200
    (event,) = api.function.events
    assert event["path"] == "/health/live"
    assert event["queryStringParameters"] == {"probe": "1"}


def test_the_host_is_checked_before_the_body_size_and_without_reading_the_body(api: Served) -> None:
    # Given a foreign host announcing a body over the limit and waiting for 100 Continue before sending it
    headers = keyed("evil.example", ("Content-Length", str(MAX_PAYLOAD_BYTES + 1)), ("Expect", "100-continue"))

    # When only the headers are sent
    reply = exchange(api.port, request_head(headers=headers))

    # Then the answer is the host refusal, with no 100 Continue before it
    assert_refused(reply, 403, "host_not_allowed")


# ---------------------------------------------------------------------- body bounds
def test_a_declared_length_over_the_limit_is_refused_without_waiting_for_the_body(api: Served) -> None:
    # Given a request declaring one byte over API Gateway's 10 MiB limit
    headers = keyed(api.host, ("Content-Length", str(MAX_PAYLOAD_BYTES + 1)))

    # When only its headers are sent (a server waiting for the body would time out after 5 s, past the client's 2 s)
    reply = exchange(api.port, request_head(headers=headers))

    # Then the template's REQUEST_TOO_LARGE answers at once, and the function never runs
    assert reply.status == 413
    assert reply.json() == {"error": {"code": "payload_too_large", "message": "The request body is too large"}}
    assert reply.headers["Connection"] == "close"
    assert api.function.events == []


def test_expect_100_continue_over_the_limit_gets_413_instead_of_continue(api: Served) -> None:
    # Given a client that asks before sending a body over the limit
    headers = keyed(api.host, ("Content-Length", str(MAX_PAYLOAD_BYTES + 1)), ("Expect", "100-continue"))

    # When it sends its headers
    with socket.create_connection((LOOPBACK, api.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(request_head(headers=headers))
        received = read_until_closed(sock)

    # Then the first thing it hears is 413, so it never sends the body
    assert received.startswith(b"HTTP/1.1 413 ")
    assert parse_reply(received).json()["error"]["code"] == "payload_too_large"


def test_expect_100_continue_within_the_limit_still_continues(api: Served) -> None:
    # Given a client that asks before sending a small body
    body = b'{"channel": "email"}'
    headers = keyed(api.host, ("Content-Length", str(len(body))), ("Expect", "100-continue"))

    # When it sends its headers, waits for 100 Continue, then sends the body
    with socket.create_connection((LOOPBACK, api.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(request_head(headers=headers))
        interim = sock.recv(1 << 16)
        sock.sendall(body)
        reply = parse_reply(read_until_closed(sock))

    # Then the body reaches the function
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert reply.status == 200
    assert api.function.events[0]["body"] == body.decode()


def test_a_chunked_body_is_refused_as_soon_as_it_crosses_the_limit(api: Served) -> None:
    # Given a chunked body of exactly 10 MiB in 1 MiB chunks, then one more byte, and no final chunk yet
    mebibyte = b"x" * (1 << 20)
    within = b"".join(f"{len(mebibyte):X}\r\n".encode() + mebibyte + b"\r\n" for _ in range(MAX_PAYLOAD_BYTES >> 20))
    head = request_head(headers=keyed(api.host, ("Transfer-Encoding", "chunked")))

    # When the client sends that much and then waits
    reply = exchange(api.port, head + within + b"1\r\nx\r\n")

    # Then the template's 413 answers without the end of the body, and the function never runs
    assert reply.status == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert reply.headers["Connection"] == "close"
    assert api.function.events == []


def test_a_chunk_announced_over_the_limit_is_refused_before_its_data_is_read(api: Served) -> None:
    # Given a chunked body whose first chunk announces a size far over the limit
    head = request_head(headers=keyed(api.host, ("Transfer-Encoding", "chunked")))

    # When only the chunk's size line is sent
    reply = exchange(api.port, head + b"FFFFFFFFFFFF\r\n")

    # Then 413 answers at once: the server did not wait for (or buffer) the chunk
    assert reply.status == 413
    assert reply.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(("size", "status"), [(64, 200), (65, 413)], ids=["at-limit", "one-over"])
def test_the_chunked_limit_is_inclusive(serve: Callable[..., Served], size: int, status: int) -> None:
    # Given a gateway whose payload limit is 64 bytes, and a chunked body of ``size`` bytes in three chunks
    api = serve(max_payload_bytes=64)
    body = b"y" * size
    head = request_head(headers=keyed(api.host, ("Transfer-Encoding", "chunked")))

    # When it is posted
    reply = exchange(api.port, head + chunked(body[:10], body[10:40], body[40:]))

    # Then exactly the limit passes, one byte more does not
    assert reply.status == status
    assert [len(event["body"]) for event in api.function.events] == ([size] if status == 200 else [])


def test_chunk_extensions_and_trailers_are_accepted_and_dropped(api: Served) -> None:
    # Given a chunked body with chunk extensions and a trailer field
    head = request_head(headers=keyed(api.host, ("Transfer-Encoding", "Chunked")))
    body = b'5;name=value\r\n{"a":\r\n3 ; x\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n'

    # When it is posted
    reply = exchange(api.port, head + body)

    # Then the function gets the chunks' data only
    assert reply.status == 200
    assert api.function.events[0]["body"] == '{"a": 1}'


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nab\r\n0\r\n\r\n",
        b"-2\r\nab\r\n0\r\n\r\n",
        b"0x2\r\nab\r\n0\r\n\r\n",
        b"\r\nab\r\n0\r\n\r\n",
        b"2\nab\r\n0\r\n\r\n",
        b"2\r\nabc\r\n0\r\n\r\n",
        b"2\r\nab\r\n0\r\nX-Trailer: t\n\r\n",
    ],
    ids=["not-hex", "negative", "hex-prefix", "empty-size", "bare-lf", "chunk-longer-than-size", "bare-lf-trailer"],
)
def test_a_malformed_chunked_body_is_a_400(api: Served, body: bytes) -> None:
    # Given a chunked body that breaks the chunked syntax
    head = request_head(headers=keyed(api.host, ("Transfer-Encoding", "chunked")))

    # When it is posted
    reply = exchange(api.port, head + body)

    # Then 400 in Herald's error shape, and the function never runs
    assert_refused(reply, 400, "bad_request")
    assert api.function.events == []


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        (("Content-Length", "10"), b"short"),
        (("Transfer-Encoding", "chunked"), b"5\r\nhel"),
    ],
    ids=["content-length", "chunked"],
)
def test_a_body_that_ends_early_is_a_400_not_a_truncated_event(
    api: Served, framing: tuple[str, str], body: bytes
) -> None:
    # Given a client that closes its side before the body is complete
    head = request_head(headers=keyed(api.host, framing))

    # When the server reads the body
    reply = exchange(api.port, head + body, half_close=True)

    # Then 400, and no function is invoked with part of a body
    assert_refused(reply, 400, "bad_request")
    assert api.function.events == []


@pytest.mark.parametrize(
    "content_lengths",
    [["-1"], ["abc"], ["1.5"], ["+5"], ["0x5"], ["5, 5"], ["5", "5"], [""]],
    ids=["negative", "not-a-number", "fraction", "signed", "hex", "list", "twice", "empty"],
)
def test_a_content_length_that_is_not_one_non_negative_integer_is_a_400(
    api: Served, content_lengths: list[str]
) -> None:
    # Given a request whose Content-Length is not one plain decimal number
    head = request_head(headers=keyed(api.host, *(("Content-Length", value) for value in content_lengths)))

    # When it is sent with a few bytes of body
    reply = exchange(api.port, head + b"hello")

    # Then 400 before anything is read or routed
    assert_refused(reply, 400, "bad_request")
    assert api.function.events == []


def test_a_huge_content_length_is_too_large_not_a_crash(api: Served) -> None:
    # Given a Content-Length of 5,000 digits (int() refuses to parse more than 4,300)
    head = request_head(headers=keyed(api.host, ("Content-Length", "9" * 5000)))

    # When only the headers are sent
    reply = exchange(api.port, head)

    # Then it is simply over the limit
    assert reply.status == 413


def test_content_length_and_transfer_encoding_together_is_refused_and_nothing_is_smuggled(api: Served) -> None:
    # Given a request framed two ways, whose chunked reading would hide a second request in the "body"
    smuggled = request_head("/health/live", [("Host", api.host)], method="GET")
    body = b"0\r\n\r\n" + smuggled
    headers = keyed(api.host, ("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked"))

    # When it is sent
    reply = exchange(api.port, request_head(headers=headers) + body)

    # Then one 400, the connection closes without answering the smuggled request, and no function runs
    assert_refused(reply, 400, "bad_request")
    assert api.function.events == []


@pytest.mark.parametrize(
    ("version", "codings", "status", "code"),
    [
        ("HTTP/1.1", "gzip, chunked", 501, "not_implemented"),
        ("HTTP/1.1", "chunked, gzip", 400, "bad_request"),
        ("HTTP/1.1", "identity", 400, "bad_request"),
        ("HTTP/1.0", "chunked", 400, "bad_request"),
    ],
    ids=["coding-before-chunked", "chunked-not-last", "no-chunked", "http10"],
)
def test_transfer_encodings_other_than_chunked_are_refused(
    api: Served, version: str, codings: str, status: int, code: str
) -> None:
    # Given a request with a transfer coding API Gateway does not accept
    head = request_head(headers=keyed(api.host, ("Transfer-Encoding", codings)), version=version)

    # When it is sent
    reply = exchange(api.port, head + chunked(b"{}"))

    # Then it is refused before any body is read
    assert_refused(reply, status, code)
    assert api.function.events == []


@pytest.mark.parametrize(
    "raw_header",
    [b"Content-Length : 2", b"X-Folded: a\r\n b", b"X-Nul: a\x00b"],
    ids=["space-before-colon", "obs-fold", "nul"],
)
def test_header_lines_parsers_could_read_differently_are_a_400(api: Served, raw_header: bytes) -> None:
    # Given a header line that Python's parser would drop or glue to another (and so misread the framing)
    head = request_head(headers=keyed(api.host)).removesuffix(b"\r\n") + raw_header + b"\r\n\r\n"

    # When the request is sent
    reply = exchange(api.port, head + b"{}")

    # Then it is refused rather than guessed at
    assert_refused(reply, 400, "bad_request")
    assert api.function.events == []


def test_a_keep_alive_connection_still_serves_request_after_request(api: Served) -> None:
    # Given one HTTP/1.1 connection
    connection = http.client.HTTPConnection(LOOPBACK, api.port, timeout=CLIENT_TIMEOUT)
    try:
        # When a Content-Length body, a chunked body and a bodiless request follow each other on it
        connection.request("POST", "/notifications", body=b'{"n": 1}', headers={"x-api-key": API_KEY})
        first = connection.getresponse().read()
        connection.request(
            "POST", "/notifications", body=iter([b'{"n":', b" 2}"]), headers={"x-api-key": API_KEY}, encode_chunked=True
        )
        second = connection.getresponse().read()
        connection.request("GET", "/health/live")
        third = connection.getresponse()
        third.read()
    finally:
        connection.close()

    # Then each is answered in turn with its own body
    assert json.loads(first) == {"received": 8}
    assert json.loads(second) == {"received": 8}
    assert third.status == 200
    assert [event["body"] for event in api.function.events] == ['{"n": 1}', '{"n": 2}', None]


@pytest.mark.parametrize(
    ("request_line", "status", "code"),
    [
        (b"TRACE / HTTP/1.1", 501, "not_implemented"),
        (b"GET / HTTP/2.0", 505, "http_version_not_supported"),
        (b"GET / HTTP/1.x", 400, "bad_request"),
    ],
    ids=["unknown-method", "http2-request-line", "unreadable-version"],
)
def test_http_servers_own_refusals_use_the_herald_error_shape(
    api: Served, request_line: bytes, status: int, code: str
) -> None:
    # Given a request http.server itself refuses
    data = request_line + f"\r\nHost: {api.host}\r\n\r\n".encode()

    # When it is sent
    reply = exchange(api.port, data, method="GET")

    # Then the answer is JSON in Herald's shape, quoting nothing of the request
    assert_refused(reply, status, code)


# ---------------------------------------------------------------------- slow clients
def test_a_client_that_stalls_after_its_headers_gets_408_after_the_read_timeout(serve: Callable[..., Served]) -> None:
    # Given a server with a short read timeout, and a client that announces a body and never sends it
    api = serve(read_timeout=STALL_TIMEOUT)
    head = request_head(headers=keyed(api.host, ("Content-Length", "10")))

    # When the client sends its headers and stalls
    started = time.monotonic()
    reply = exchange(api.port, head)
    waited = time.monotonic() - started

    # Then after the timeout (not before) it gets 408 and the connection is closed, freeing the worker
    assert_refused(reply, 408, "request_timeout")
    assert STALL_TIMEOUT <= waited < CLIENT_TIMEOUT
    assert api.function.events == []


def test_a_client_that_stalls_inside_its_headers_is_disconnected(
    serve: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a server with a short read timeout, and a client that stops halfway through its headers
    api = serve(read_timeout=STALL_TIMEOUT)

    # When it sends part of its header section and waits
    started = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger="herald.local"),
        socket.create_connection((LOOPBACK, api.port), timeout=CLIENT_TIMEOUT) as sock,
    ):
        sock.sendall(f"GET /health/live HTTP/1.1\r\nHost: {api.host}\r\n".encode())
        received = read_until_closed(sock)
    waited = time.monotonic() - started

    # Then the server closes the connection after the timeout, without an answer, and says so in its log
    assert received == b""
    assert STALL_TIMEOUT <= waited < CLIENT_TIMEOUT
    assert any(record.message == "connection dropped" for record in caplog.records)
    assert api.function.events == []


def test_an_idle_keep_alive_connection_is_closed_after_the_read_timeout(serve: Callable[..., Served]) -> None:
    # Given a server with a short read timeout, and a keep-alive connection that served one request
    api = serve(read_timeout=STALL_TIMEOUT)
    with socket.create_connection((LOOPBACK, api.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(request_head("/health/live", [("Host", api.host)], method="GET"))

        # When the client then sends nothing more
        received = read_until_closed(sock)

    # Then the server answered the request and then closed the idle connection
    assert parse_reply(received, "GET").status == 200


def test_read_timeout_must_be_positive(stack: Stack, aws: AwsClients) -> None:
    # Given a gateway
    gateway = ApiGateway.from_stack(stack, {}, aws.client("apigateway"))

    # When a server is configured to wait forever
    # Then it is refused, since a stalled client would hold a worker forever
    with pytest.raises(ValueError, match="read_timeout"):
        ApiServer(gateway, 0, read_timeout=0)
