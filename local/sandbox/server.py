"""The sandbox: one HTTP server on loopback playing SendGrid, Twilio and FCM, with control endpoints for tests.

    with Sandbox(sendgrid_events_url=f"{api_url}/provider-events/sendgrid") as sandbox:
        ...  # SENDGRID_BASE_URL = TWILIO_BASE_URL = FCM_BASE_URL = sandbox.url

=============================================  ==========================================================
Route                                          What it does
=============================================  ==========================================================
POST /v3/mail/send                             SendGrid mail send (`local.sandbox.sendgrid`)
POST /2010-04-01/Accounts/{sid}/Messages.json  Twilio message create (`local.sandbox.twilio`)
POST /token                                    The FCM service account's OAuth token endpoint
POST /v1/projects/{project}/messages:send      FCM HTTP v1 send (`local.sandbox.fcm`)
GET /_messages[?provider=&notification_id=]    The accepted messages; DELETE clears them
GET /_faults, POST /_faults                    The active faults; add one (`FaultSpec`); DELETE[?provider=]
                                               clears them
=============================================  ==========================================================

Faults apply to the providers' send endpoints, before anything else (an outage comes before the credential
check). Each request runs on its own daemon thread; callbacks go out from one background worker.
"""

from __future__ import annotations

import random
import re
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationError

from local.aws.moto_server import LOOPBACK
from local.logs import get_logger
from local.sandbox import fcm, sendgrid, twilio
from local.sandbox.callbacks import CallbackWorker
from local.sandbox.credentials import TOKEN_PATH, SandboxCredentials
from local.sandbox.exchange import Answer, Request
from local.sandbox.faults import FaultBook, FaultSpec, Provider, describe
from local.sandbox.messages import MessageLog

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.sandbox.faults import Fault, Strike

logger = get_logger("sandbox")

MESSAGES_PATH = "/_messages"
FAULTS_PATH = "/_faults"
MAX_HANG_SECONDS = 300.0  # a `timeout` fault holds a connection at most this long
MAX_BODY_BYTES = 32 * 1024 * 1024

# Each provider's error answer under a fault, in its own body shape.
_FAULT_ANSWERS: dict[Provider, Callable[[Strike, float], Answer]] = {
    Provider.SENDGRID: sendgrid.fault_answer,
    Provider.TWILIO: twilio.fault_answer,
    Provider.FCM: fcm.fault_answer,
}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Request, dict[str, str]], Answer]
    faulted: Provider | None = None  # the provider whose faults apply here


class Sandbox:
    """SendGrid, Twilio and FCM on 127.0.0.1: use as a context manager, or call :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    port
        The port to listen on; 0 (the default): one the system picks.
    credentials
        What callers must present and callbacks are signed with; generated at start when not given.
    sendgrid_events_url
        Where SendGrid events are POSTed (Herald's `{api}/provider-events/sendgrid`); None: no events.
        Twilio callbacks go to each message's own `StatusCallback`.
    callback_delay_seconds
        How long after a message is accepted its first callback goes out, and between its callbacks.
    random
        Draws in [0, 1) that decide which calls a fault with an `error_rate` below 1 fails.
    clock
        Epoch seconds: for message times, event timestamps and token expiry.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        credentials: SandboxCredentials | None = None,
        sendgrid_events_url: str | None = None,
        callback_delay_seconds: float = 0.2,
        random: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._port = port
        self._given_credentials = credentials
        self._credentials: SandboxCredentials | None = None
        self._sendgrid_events_url = sendgrid_events_url
        self._callback_delay = callback_delay_seconds
        self._clock = clock
        self._messages = MessageLog()
        self._faults = FaultBook(random)
        self._routes: list[Route] = []
        self._server: _SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._callbacks: CallbackWorker | None = None
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        """Listen on 127.0.0.1:`port` and serve from a background thread."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("the sandbox is already started")
            self._stopping = threading.Event()
            server = _SandboxServer((LOOPBACK, self._port), _handler_for(self))
            url = f"http://{LOOPBACK}:{server.server_address[1]}"
            credentials = self._given_credentials or SandboxCredentials.generate(url)
            callbacks = CallbackWorker(self._callback_delay)
            self._routes = self._build_routes(credentials, callbacks)
            self._credentials, self._callbacks, self._server = credentials, callbacks, server
            callbacks.start()
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
            )
            self._thread.start()
        logger.info("sandbox started", extra={"url": url})
        return self

    def stop(self) -> None:
        """Stop serving, hang up open connections and stop the callback worker (idempotent)."""
        with self._lifecycle:
            server, thread, callbacks = self._server, self._thread, self._callbacks
            self._server = self._thread = self._callbacks = None
        if server is None:
            return
        self._stopping.set()  # releases requests held by latency or timeout faults
        server.shutdown()
        server.hang_up_all()  # kept-alive connections would otherwise keep their threads reading
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if callbacks is not None:
            callbacks.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`: every provider's base URL."""
        server = self._server
        if server is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://{LOOPBACK}:{server.server_address[1]}"

    @property
    def credentials(self) -> SandboxCredentials:
        if self._credentials is None:
            raise RuntimeError("the sandbox has no credentials before it starts (or pass them in)")
        return self._credentials

    # ------------------------------------------------------------------ what the control endpoints do
    def messages(self, provider: str | None = None, notification_id: str | None = None) -> list[dict[str, Any]]:
        """The accepted messages, oldest first, as `GET /_messages` answers them."""
        return self._messages.matching(provider, notification_id)

    def clear_messages(self) -> int:
        return self._messages.clear()

    def add_fault(self, spec: FaultSpec) -> Fault:
        """Make one provider's send endpoint misbehave (replacing its previous fault)."""
        return self._faults.set(spec)

    def clear_faults(self, provider: Provider | None = None) -> int:
        return self._faults.clear(provider)

    def faults(self) -> list[Fault]:
        return self._faults.active()

    # ------------------------------------------------------------------ routing
    def _build_routes(self, credentials: SandboxCredentials, callbacks: CallbackWorker) -> list[Route]:
        mail = sendgrid.SendGridApi(credentials, self._messages, callbacks, self._sendgrid_events_url, self._clock)
        sms = twilio.TwilioApi(credentials, self._messages, callbacks, self._clock)
        push = fcm.FcmApi(credentials, self._messages, self._clock)

        def route(
            method: str,
            pattern: str,
            handler: Callable[[Request, dict[str, str]], Answer],
            faulted: Provider | None = None,
        ) -> Route:
            return Route(method, re.compile(pattern), handler, faulted)

        return [
            route("POST", re.escape(sendgrid.SEND_PATH), mail.send, Provider.SENDGRID),
            route("POST", twilio.SEND_PATH_PATTERN, sms.send, Provider.TWILIO),
            route("POST", re.escape(TOKEN_PATH), push.token),
            route("POST", fcm.SEND_PATH_PATTERN, push.send, Provider.FCM),
            route("GET", re.escape(MESSAGES_PATH), self._list_messages),
            route("DELETE", re.escape(MESSAGES_PATH), self._clear_messages),
            route("GET", re.escape(FAULTS_PATH), self._list_faults),
            route("POST", re.escape(FAULTS_PATH), self._add_fault),
            route("DELETE", re.escape(FAULTS_PATH), self._clear_faults),
        ]

    def _dispatch(self, request: Request) -> Answer:
        allowed: list[str] = []
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            if route.faulted is not None:
                strike = self._faults.strike(route.faulted)
                if strike is not None:
                    faulted = self._fault_answer(route.faulted, strike)
                    if faulted is not None:
                        return faulted
            return route.handler(request, match.groupdict())
        if allowed:
            message = f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}"
            return Answer.json(405, {"error": message}, {"Allow": ", ".join(allowed)})
        return Answer.json(404, {"error": f"no route for {request.method} {request.path}"})

    def _fault_answer(self, provider: Provider, strike: Strike) -> Answer | None:
        """The answer a fault gives this call, or None to answer it normally (after the fault's latency)."""
        if strike.latency_seconds and self._stopping.wait(strike.latency_seconds):
            return Answer.hang_up()  # stopping: no answer
        if not strike.fails:
            return None
        if strike.timeout:
            return Answer.hang_up()
        return _FAULT_ANSWERS[provider](strike, self._clock())

    def _hold(self, connection: socket.socket) -> None:
        """Answer nothing: wait until the client gives up, the sandbox stops, or `MAX_HANG_SECONDS` pass."""
        deadline = time.monotonic() + MAX_HANG_SECONDS
        while not self._stopping.wait(0.05) and time.monotonic() < deadline:
            if _closed_by_peer(connection):
                return

    # ------------------------------------------------------------------ control endpoints
    def _list_messages(self, request: Request, params: dict[str, str]) -> Answer:
        provider = request.query.get("provider")
        if provider is not None and provider not in set(Provider):
            return _bad_provider(provider)
        return Answer.json(200, {"messages": self.messages(provider, request.query.get("notification_id"))})

    def _clear_messages(self, request: Request, params: dict[str, str]) -> Answer:
        return Answer.json(200, {"cleared": self.clear_messages()})

    def _list_faults(self, request: Request, params: dict[str, str]) -> Answer:
        return Answer.json(200, {"faults": [fault.as_dict() for fault in self.faults()]})

    def _add_fault(self, request: Request, params: dict[str, str]) -> Answer:
        try:
            spec = FaultSpec.model_validate_json(request.body or b"null")
        except ValidationError as error:
            return Answer.json(400, {"error": f"bad fault: {describe(error)}"})
        return Answer.json(201, self.add_fault(spec).as_dict())

    def _clear_faults(self, request: Request, params: dict[str, str]) -> Answer:
        provider = request.query.get("provider")
        if provider is not None and provider not in set(Provider):
            return _bad_provider(provider)
        return Answer.json(200, {"cleared": self.clear_faults(Provider(provider) if provider else None)})


def _bad_provider(provider: str) -> Answer:
    known = ", ".join(Provider)
    return Answer.json(400, {"error": f"unknown provider {provider!r}; known: {known}"})


def _closed_by_peer(connection: socket.socket) -> bool:
    """Whether the client closed its side (a read would return nothing), without consuming anything it sent."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _handler_for(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    return type("SandboxHandler", (_Handler,), {"sandbox": sandbox})


class _Handler(BaseHTTPRequestHandler):
    """Reads each request, has the sandbox answer it, writes the answer (or holds the connection, answering nothing)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the providers' HTTP clients expect
    server_version = "HeraldSandbox/1"
    sandbox: Sandbox

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        request = self._read()
        if isinstance(request, Answer):
            self.close_connection = True  # what follows on the connection cannot be told from this body
            self._write(request)
            return
        try:
            answer = self.sandbox._dispatch(request)
        except Exception:  # a bug in the sandbox: answer it, rather than hang up as http.server would
            logger.exception("sandbox request failed", extra={"method": request.method, "path": request.path})
            answer = Answer.json(500, {"error": "the sandbox failed on this request; see its log"})
        if answer.hang:
            self.sandbox._hold(self.connection)
            self.close_connection = True  # the connection is closed without an answer
            return
        self._write(answer)

    def _read(self) -> Request | Answer:
        """The request, or the answer to one the sandbox cannot read."""
        if "transfer-encoding" in self.headers:
            return Answer.json(411, {"error": "send the body with a Content-Length"})
        length = self.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return Answer.json(400, {"error": f"Content-Length must be 0 to {MAX_BODY_BYTES}"})
        body = self.rfile.read(int(length))
        target = urlsplit(self.path)
        return Request(
            method=self.command,
            path=target.path,
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )

    def _write(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, *args: Any) -> None:
        return


class _SandboxServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections, to hang them up when it stops."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def hang_up_all(self) -> None:
        with self._open_lock:
            still_open = list(self._open)
        for sock in still_open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (it timed out, or the sandbox hung up on stopping): expected
        super().handle_error(request, client_address)
