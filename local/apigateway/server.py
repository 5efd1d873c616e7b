"""The HTTP front of the API Gateway emulator: serve an :class:`~local.apigateway.gateway.ApiGateway` on 127.0.0.1.

:class:`ApiServer` answers each request from a background thread, and screens it before the gateway sees it: only
loopback ``Host`` names (:mod:`~local.apigateway.hosts`), unambiguous framing and bodies within the payload limit
(:mod:`~local.apigateway.framing`), and a read timeout so that a stalled client frees its worker.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from local.apigateway.framing import MAX_PAYLOAD_BYTES, Framing, check_header_section, framing_of, read_body
from local.apigateway.hosts import LOOPBACK_HOSTS, admit_host
from local.apigateway.proxy_event import INTERNAL_ERROR_BODY, HttpRequest, HttpResponse
from local.apigateway.refusals import BodyTooLargeError, RequestRefusedError
from local.aws.moto_server import LOOPBACK
from local.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from local.apigateway.gateway import ApiGateway

READ_TIMEOUT_SECONDS = 5.0  # how long a client may leave a connection idle, mid-request or between requests
_DISCARD_LIMIT = 8 * MAX_PAYLOAD_BYTES  # at most this much of a refused body is read (and dropped) before closing

logger = get_logger("api")


class _RequestHandler(BaseHTTPRequestHandler):
    """One connection: screen each request (Host, framing, size), read its body within bounds, answer it."""

    protocol_version = "HTTP/1.1"
    # A request line without a readable version (HTTP/0.9's, or a malformed one) is answered as HTTP/1.0, with a
    # status line: http.server's default would send the bare JSON, which no client reads as an error.
    default_request_version = "HTTP/1.0"
    server: _GatewayHttpServer

    def setup(self) -> None:
        super().setup()
        # Every read and write gives up after this long, so a client that stalls frees its worker: mid-headers
        # http.server closes the connection, mid-body the client gets 408.
        self.connection.settimeout(self.server.read_timeout)

    def handle_expect_100(self) -> bool:
        """Answer ``Expect: 100-continue`` with the refusal itself when the headers already decide it."""
        if self._admitted() is None:
            return False
        return super().handle_expect_100()

    def _serve(self) -> None:
        admitted = self._admitted()
        if admitted is None:
            return
        target, framing = admitted
        gateway = self.server.gateway
        try:
            body = read_body(self.rfile, framing, gateway.max_payload_bytes)
        except BodyTooLargeError as error:
            self._refuse_too_large(target, error.size, unread=None)
            return
        except RequestRefusedError as refusal:
            self._refuse(refusal, unread=None)
            return
        except TimeoutError:
            self._refuse(RequestRefusedError(408, "request_timeout", "The request body did not arrive in time"), 0)
            return
        headers = list(self.headers.items())
        request = HttpRequest.from_target(self.command, target, headers, body, self.client_address[0], len(body))
        try:
            response = gateway.handle(request)
        except Exception:  # a bug in the emulator itself must not kill the connection silently
            logger.exception("gateway error", extra={"request_id": request.request_id})
            response = HttpResponse(500, [("Content-Type", "application/json")], INTERNAL_ERROR_BODY)
        self._send(response)

    def _admitted(self) -> tuple[str, Framing] | None:
        """The origin-form target and body framing of a request worth reading; None once it has been refused.

        Runs before any routing and before a byte of the body is read: the Host check first, so that a page
        on another origin learns nothing about the API, then the framing and the declared size.
        """
        headers = self.headers
        try:
            check_header_section(headers)
            target = admit_host(self.request_version, self.path, headers.get_all("Host", []), self.server.allowed_hosts)
            framing = framing_of(
                self.request_version, headers.get_all("Content-Length", []), headers.get_all("Transfer-Encoding", [])
            )
        except RequestRefusedError as refusal:
            self._refuse(refusal, unread=self._unread_body())
            return None
        if framing.length > self.server.gateway.max_payload_bytes:
            self._refuse_too_large(target, framing.length, unread=framing.length)
            return None
        return target, framing

    def _unread_body(self) -> int | None:
        """How much body may follow a refused request's headers: 0 for none, None when it cannot be told."""
        if self.headers.defects:
            return None
        try:
            framing = framing_of(
                self.request_version,
                self.headers.get_all("Content-Length", []),
                self.headers.get_all("Transfer-Encoding", []),
            )
        except RequestRefusedError:
            return None
        return None if framing.chunked else framing.length

    def _refuse(self, refusal: RequestRefusedError, unread: int | None) -> None:
        """Answer in Herald's error shape and close; the log names the refusal, never the request's content."""
        request_id = str(uuid.uuid4())
        logger.warning(
            "request refused",
            extra={"request_id": request_id, "method": self.command, "status": refusal.status, "code": refusal.code},
        )
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        self._answer_and_close(HttpResponse(refusal.status, headers, refusal.body()), unread)

    def _refuse_too_large(self, target: str, size: int, unread: int | None) -> None:
        """The gateway's own REQUEST_TOO_LARGE (the template's response), then close."""
        headers = list(self.headers.items())
        request = HttpRequest.from_target(self.command, target, headers, b"", self.client_address[0], size)
        self._answer_and_close(self.server.gateway.handle(request), unread)

    def _answer_and_close(self, response: HttpResponse, unread: int | None) -> None:
        self.close_connection = True
        self._send(response)
        if unread != 0:
            self._drop_unread(unread)

    def _drop_unread(self, budget: int | None) -> None:
        """Read and drop what the client still sends after our answer, so that it sees the answer, not a reset.

        Closing a socket with unread bytes makes the kernel reset the connection, and a client still sending its
        body loses the answer. As web servers' "lingering close" does, read on and keep nothing: ``budget`` bytes
        when the length is known, otherwise until the client closes, at most ``_DISCARD_LIMIT`` bytes and at
        most the read timeout.
        """
        remaining = _DISCARD_LIMIT if budget is None else min(budget, _DISCARD_LIMIT)
        deadline = time.monotonic() + self.server.read_timeout
        with contextlib.suppress(OSError):  # a reset or a stall: the client had its chance
            self.connection.shutdown(socket.SHUT_WR)  # our answer is complete
            while remaining > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                data = self.rfile.read(min(remaining, 1 << 16))
                if not data:
                    break
                remaining -= len(data)

    def _send(self, response: HttpResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except ConnectionError:  # the client is gone: nobody is left to answer
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, header section too large, unknown method), in Herald's
        error shape; ``message`` and ``explain`` quote the request, so neither is echoed."""
        self._refuse(RequestRefusedError.of_status(code), unread=None)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """http.server reports a connection it dropped (a read timeout) here: log that, not what was received."""
        logger.info("connection dropped", extra={"reason": format.split(":", 1)[0]})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Access logging is the gateway's structured ``request`` log; keep http.server quiet."""


class _GatewayHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], gateway: ApiGateway, read_timeout: float, allowed_hosts: frozenset[str]
    ) -> None:
        self.gateway = gateway
        self.read_timeout = read_timeout
        self.allowed_hosts = allowed_hosts
        super().__init__(address, _RequestHandler)


class ApiServer:
    """Serve an :class:`ApiGateway` over HTTP on 127.0.0.1:``port`` from a background thread.

    Parameters
    ----------
    gateway : ApiGateway
        What answers each request.
    port : int
        The port to listen on (0 for any free one; :attr:`port` is then the one the system chose).
    host : str
        The address to bind; loopback, so that only this machine can connect.
    read_timeout : float
        Seconds a client may leave the connection idle (before, in or after a request) before it is dropped.
    allowed_hosts : Iterable[str]
        The ``Host`` names answered (ports are not compared); any other gets 403, the DNS-rebinding defence
        of :mod:`local.apigateway.hosts`. Add a name here to serve the API under it (e.g. from a container).
    """

    def __init__(
        self,
        gateway: ApiGateway,
        port: int,
        host: str = LOOPBACK,
        *,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    ) -> None:
        if read_timeout <= 0:
            raise ValueError("read_timeout must be positive")
        self.gateway = gateway
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self.allowed_hosts = frozenset(name.lower() for name in allowed_hosts)
        self._server: _GatewayHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        try:
            self._server = _GatewayHttpServer(
                (self.host, self.port), self.gateway, self.read_timeout, self.allowed_hosts
            )
        except OSError as error:
            raise RuntimeError(f"cannot serve the API on {self.url}: {error} (set HERALD_API_PORT)") from error
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="api-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
