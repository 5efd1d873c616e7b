"""The REST API as API Gateway serves it: routes, API keys, usage plan, gateway responses, Lambda proxy.

API keys are those on the usage plan in the embedded AWS (:mod:`~local.apigateway.keys`), so a key created or
revoked at run time with boto3 is honoured or refused within about a second, as in API Gateway.

:class:`ApiGateway` turns one :class:`~local.apigateway.proxy_event.HttpRequest` into an HTTP response;
:class:`ApiServer` serves it over HTTP on 127.0.0.1 in a background thread, and screens each request first:
only loopback ``Host`` names (:mod:`~local.apigateway.hosts`), unambiguous framing and bodies within the payload
limit (:mod:`~local.apigateway.framing`), and a read timeout so that a stalled client frees its worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from local.apigateway.framing import Framing, check_header_section, framing_of, read_body
from local.apigateway.gateway_responses import GatewayResponses
from local.apigateway.hosts import LOOPBACK_HOSTS, admit_host
from local.apigateway.keys import ApiKeyDirectory, ApiKeyLookupError
from local.apigateway.proxy_event import ApiContext, HttpRequest, MalformedResponseError, build_event, parse_response
from local.apigateway.refusals import BodyTooLargeError, RequestRefusedError
from local.apigateway.routes import Route, RouteTable, routes_from_body
from local.apigateway.throttle import KeyQuota, KeyThrottle
from local.aws.moto_server import LOOPBACK
from local.aws.provision import local_id
from local.logs import get_logger

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient

    from local.aws.template import Stack

Invoke = Callable[[dict[str, Any]], Any]
"""Invoke a function with an event and return its response (e.g. ``LocalFunction.invoke``)."""

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST API payload limit (10 MiB)
INTERNAL_ERROR_BODY = b'{"message": "Internal server error"}'
READ_TIMEOUT_SECONDS = 5.0  # how long a client may leave a connection idle, mid-request or between requests
_DISCARD_LIMIT = 8 * MAX_PAYLOAD_BYTES  # at most this much of a refused body is read (and dropped) before closing

logger = get_logger("api")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class ApiGateway:
    """One REST API stage: what API Gateway does between the client and the Lambda proxy integration."""

    routes: RouteTable
    responses: GatewayResponses
    functions: Mapping[str, Invoke]  # function ARN -> invoke
    api_keys: ApiKeyDirectory | None  # the usage plan's keys; None when the API has no usage plan (no key passes)
    api_id: str
    stage: str
    account_id: str
    throttle: KeyThrottle | None = None
    quota: KeyQuota | None = None
    stage_variables: dict[str, str] | None = None
    binary_media_types: tuple[str, ...] = ()
    port: int = 3000
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    _resource_ids: dict[str, str] = field(default_factory=dict, init=False)

    @classmethod
    def from_stack(
        cls,
        stack: Stack,
        functions: Mapping[str, Invoke],
        apigateway: APIGatewayClient,
        port: int = 3000,
        key_clock: Callable[[], float] = time.monotonic,
    ) -> ApiGateway:
        """The template's only ``AWS::ApiGateway::RestApi`` with its stage and usage plan.

        Parameters
        ----------
        stack : Stack
            The template, provisioned: its usage plan must exist in the embedded AWS (its physical id known).
        functions : Mapping[str, Invoke]
            Function ARN -> invoke, for the routes' Lambda proxy integrations.
        apigateway : APIGatewayClient
            A client of the embedded AWS's API Gateway, where the API keys and the usage plan live.
        port : int
            The port the API is served on (it appears in the events' headers).
        key_clock : Callable[[], float]
            The clock of the key directory's cache (see :class:`~local.apigateway.keys.ApiKeyDirectory`).
        """
        apis = stack.of_type("AWS::ApiGateway::RestApi")
        if len(apis) != 1:
            raise ValueError(f"the local runtime serves exactly one REST API; the template has {len(apis)}")
        ((api_logical_id, api_properties),) = apis.items()
        body = stack.resolve(api_properties["Body"]) if "Body" in api_properties else None
        if not isinstance(body, dict):
            raise ValueError(f"{api_logical_id}: only an inline swagger Body is supported locally")
        stage = _stage_of(stack, api_logical_id)
        plan_logical_id, plan = _usage_plan_of(stack, api_logical_id)
        throttle = plan.get("Throttle")
        quota = plan.get("Quota")
        api_keys = None
        if plan_logical_id is not None:
            if plan_logical_id not in stack.physical_ids:
                raise ValueError(f"{plan_logical_id} is not in the embedded AWS: provision the stack first")
            api_keys = ApiKeyDirectory(apigateway, stack.physical_ids[plan_logical_id], clock=key_clock)
        return cls(
            routes=RouteTable(tuple(routes_from_body(body, stack))),
            responses=GatewayResponses.from_body(body),
            functions=functions,
            api_keys=api_keys,
            api_id=stack.physical_ids.get(api_logical_id, local_id(stack, api_logical_id)),
            stage=str(stage.get("StageName", "local")),
            account_id=stack.account_id,
            throttle=KeyThrottle(float(throttle["RateLimit"]), int(throttle["BurstLimit"])) if throttle else None,
            quota=KeyQuota(int(quota["Limit"]), str(quota["Period"])) if quota else None,
            stage_variables=stage.get("Variables") or None,
            binary_media_types=tuple(body.get("x-amazon-apigateway-binary-media-types", [])),
            port=port,
        )

    # ------------------------------------------------------------------ one request
    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request: a gateway response, or the function's response, or 502."""
        started = time.monotonic()
        response, resource = self._dispatch(request)
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "resource": resource,
                "status": response.status,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return response

    def _dispatch(self, request: HttpRequest) -> tuple[HttpResponse, str | None]:
        rejection = self._gate(request)
        if isinstance(rejection, HttpResponse):
            return rejection, None
        route, path_parameters = rejection
        api_key_id = None
        if route.api_key_required:
            refusal_or_id = self._check_key(request)
            if isinstance(refusal_or_id, HttpResponse):
                return refusal_or_id, route.resource_path
            api_key_id = refusal_or_id
        return self._integrate(request, route, path_parameters, api_key_id), route.resource_path

    def _gate(self, request: HttpRequest) -> HttpResponse | tuple[Route, dict[str, str]]:
        """Size and routing checks: a gateway response, or the route and its path parameters."""
        if max(len(request.body), request.declared_length) > self.max_payload_bytes:
            return self._gateway("REQUEST_TOO_LARGE", request)
        found = self.routes.find(request.method, request.path)
        return self._gateway("MISSING_AUTHENTICATION_TOKEN", request) if found is None else found

    def _check_key(self, request: HttpRequest) -> HttpResponse | str:
        """API key, then usage plan throttle and quota (per key): a gateway response, or the key's id."""
        api_key = request.header("x-api-key")
        try:
            key_id = self.api_keys.key_id(api_key) if api_key and self.api_keys is not None else None
        except ApiKeyLookupError:  # unknown whether the key is valid: neither take it nor call it invalid
            logger.exception("api key check failed", extra={"request_id": request.request_id})
            headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request.request_id)]
            return HttpResponse(500, headers, INTERNAL_ERROR_BODY)
        if key_id is None:
            return self._gateway("API_KEY", request)
        if self.throttle is not None and not self.throttle.allow(key_id):
            return self._gateway("THROTTLED", request)
        if self.quota is not None and not self.quota.allow(key_id):
            return self._gateway("QUOTA_EXCEEDED", request)
        return key_id

    def _integrate(
        self, request: HttpRequest, route: Route, path_parameters: dict[str, str], api_key_id: str | None
    ) -> HttpResponse:
        """Invoke the route's function with the proxy event and map its response (502 when it fails)."""
        invoke = self.functions.get(route.function_arn)
        if invoke is None:
            logger.error("no function for route", extra={"resource": route.resource_path})
            return self._internal_error(request)
        context = ApiContext(
            api_id=self.api_id,
            stage=self.stage,
            account_id=self.account_id,
            resource_id=self._resource_id(route.resource_path),
            resource_path=route.resource_path,
            path_parameters=path_parameters,
            stage_variables=self.stage_variables,
            api_key=request.header("x-api-key") if route.api_key_required else None,
            api_key_id=api_key_id,
            binary_media_types=self.binary_media_types,
        )
        log_fields = {"request_id": request.request_id, "resource": route.resource_path}
        try:
            result = parse_response(invoke(build_event(request, context, self.port)))
        except MalformedResponseError as error:
            logger.error("malformed Lambda proxy response", extra={**log_fields, "reason": str(error)})
            return self._internal_error(request)
        except Exception:  # the function failed: API Gateway answers 502 whatever the error
            logger.exception("function invocation failed", extra=log_fields)
            return self._internal_error(request)
        headers = [*result.headers, ("x-amzn-RequestId", request.request_id)]
        if not any(name.lower() == "content-type" for name, _ in result.headers):
            headers.append(("Content-Type", "application/json"))
        return HttpResponse(result.status, headers, result.body)

    def _resource_id(self, resource_path: str) -> str:
        if resource_path not in self._resource_ids:
            self._resource_ids[resource_path] = local_id_for(self.api_id, resource_path)
        return self._resource_ids[resource_path]

    def _gateway(self, response_type: str, request: HttpRequest) -> HttpResponse:
        rendered = self.responses.render(response_type, request.request_id, dict(request.headers))
        return HttpResponse(rendered.status, list(rendered.headers.items()), rendered.body)

    @staticmethod
    def _internal_error(request: HttpRequest) -> HttpResponse:
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request.request_id)]
        return HttpResponse(502, headers, INTERNAL_ERROR_BODY)


def local_id_for(api_id: str, resource_path: str) -> str:
    """A stable 6-character resource id, like API Gateway's."""
    return hashlib.sha256(f"{api_id}{resource_path}".encode()).hexdigest()[:6]


def _stage_of(stack: Stack, api_logical_id: str) -> dict[str, Any]:
    for properties in stack.of_type("AWS::ApiGateway::Stage").values():
        if properties.get("RestApiId") == {"Ref": api_logical_id}:
            resolved: dict[str, Any] = stack.resolve(properties)
            return resolved
    return {}


def _usage_plan_of(stack: Stack, api_logical_id: str) -> tuple[str | None, dict[str, Any]]:
    """The logical id and resolved properties of the usage plan with a stage of the API (None, {} if none)."""
    for logical_id, properties in stack.of_type("AWS::ApiGateway::UsagePlan").items():
        if any(stage.get("ApiId") == {"Ref": api_logical_id} for stage in properties.get("ApiStages", [])):
            resolved: dict[str, Any] = stack.resolve(properties)
            return logical_id, resolved
    return None, {}


# ---------------------------------------------------------------------- HTTP server
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
