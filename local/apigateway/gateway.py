"""The REST API as API Gateway serves it: routes, API keys, usage plan, gateway responses, Lambda proxy.

:class:`ApiGateway` turns one :class:`~local.apigateway.proxy_event.HttpRequest` into an HTTP response;
:class:`ApiServer` serves it over HTTP on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from local.apigateway.gateway_responses import GatewayResponses
from local.apigateway.proxy_event import ApiContext, HttpRequest, MalformedResponseError, build_event, parse_response
from local.apigateway.routes import Route, RouteTable, routes_from_body
from local.apigateway.throttle import KeyQuota, KeyThrottle
from local.aws.moto_server import LOOPBACK
from local.aws.provision import local_id
from local.logs import get_logger

if TYPE_CHECKING:
    from local.aws.template import Stack

Invoke = Callable[[dict[str, Any]], Any]
"""Invoke a function with an event and return its response (e.g. ``LocalFunction.invoke``)."""

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST API payload limit (10 MiB)
ADMIN_KEY_LOGICAL_ID = "LocalAdminApiKey"  # the admin key is not in the template; it gets a local key id
INTERNAL_ERROR_BODY = b'{"message": "Internal server error"}'
_LINE_LIMIT = 65537
_DISCARD_LIMIT = 8 * MAX_PAYLOAD_BYTES  # past this, close the connection rather than read a body we drop

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
    api_keys: Mapping[str, str]  # key value -> key id
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
        cls, stack: Stack, functions: Mapping[str, Invoke], api_key: str, admin_api_key: str, port: int = 3000
    ) -> ApiGateway:
        """The template's only ``AWS::ApiGateway::RestApi`` with its stage, usage plan and key."""
        apis = stack.of_type("AWS::ApiGateway::RestApi")
        if len(apis) != 1:
            raise ValueError(f"the local runtime serves exactly one REST API; the template has {len(apis)}")
        ((api_logical_id, api_properties),) = apis.items()
        body = stack.resolve(api_properties["Body"]) if "Body" in api_properties else None
        if not isinstance(body, dict):
            raise ValueError(f"{api_logical_id}: only an inline swagger Body is supported locally")
        stage = _stage_of(stack, api_logical_id)
        plan = _usage_plan_of(stack, api_logical_id)
        throttle = plan.get("Throttle")
        quota = plan.get("Quota")
        key_ids = list(stack.of_type("AWS::ApiGateway::ApiKey"))
        return cls(
            routes=RouteTable(tuple(routes_from_body(body, stack))),
            responses=GatewayResponses.from_body(body),
            functions=functions,
            api_keys={
                api_key: stack.physical_ids.get(key_ids[0], local_id(stack, key_ids[0]))
                if key_ids
                else local_id(stack, "LocalApiKey"),
                admin_api_key: local_id(stack, ADMIN_KEY_LOGICAL_ID),
            },
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
        refusal = self._check_key(route, request)
        if refusal is not None:
            return refusal, route.resource_path
        return self._integrate(request, route, path_parameters), route.resource_path

    def _gate(self, request: HttpRequest) -> HttpResponse | tuple[Route, dict[str, str]]:
        """Size and routing checks: a gateway response, or the route and its path parameters."""
        if max(len(request.body), request.declared_length) > self.max_payload_bytes:
            return self._gateway("REQUEST_TOO_LARGE", request)
        found = self.routes.find(request.method, request.path)
        return self._gateway("MISSING_AUTHENTICATION_TOKEN", request) if found is None else found

    def _check_key(self, route: Route, request: HttpRequest) -> HttpResponse | None:
        """API key, then usage plan throttle and quota, for routes that require a key."""
        if not route.api_key_required:
            return None
        api_key = request.header("x-api-key")
        if api_key is None or api_key not in self.api_keys:
            return self._gateway("API_KEY", request)
        if self.throttle is not None and not self.throttle.allow(api_key):
            return self._gateway("THROTTLED", request)
        if self.quota is not None and not self.quota.allow(api_key):
            return self._gateway("QUOTA_EXCEEDED", request)
        return None

    def _integrate(self, request: HttpRequest, route: Route, path_parameters: dict[str, str]) -> HttpResponse:
        """Invoke the route's function with the proxy event and map its response (502 when it fails)."""
        invoke = self.functions.get(route.function_arn)
        if invoke is None:
            logger.error("no function for route", extra={"resource": route.resource_path})
            return self._internal_error(request)
        api_key = request.header("x-api-key") if route.api_key_required else None
        context = ApiContext(
            api_id=self.api_id,
            stage=self.stage,
            account_id=self.account_id,
            resource_id=self._resource_id(route.resource_path),
            resource_path=route.resource_path,
            path_parameters=path_parameters,
            stage_variables=self.stage_variables,
            api_key=api_key,
            api_key_id=self.api_keys.get(api_key) if api_key else None,
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


def _usage_plan_of(stack: Stack, api_logical_id: str) -> dict[str, Any]:
    for properties in stack.of_type("AWS::ApiGateway::UsagePlan").values():
        if any(stage.get("ApiId") == {"Ref": api_logical_id} for stage in properties.get("ApiStages", [])):
            resolved: dict[str, Any] = stack.resolve(properties)
            return resolved
    return {}


# ---------------------------------------------------------------------- HTTP server
class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _GatewayHttpServer

    def _serve(self) -> None:
        gateway = self.server.gateway
        headers = list(self.headers.items())
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body, length = self._read_chunked(gateway.max_payload_bytes)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > gateway.max_payload_bytes:
                # Too large for the gateway: read and drop it (so the client sees our answer), never keep it.
                self._discard(length)
                body = b""
            else:
                body = self.rfile.read(length) if length else b""
        request = HttpRequest.from_target(self.command, self.path, headers, body, self.client_address[0], length)
        try:
            response = gateway.handle(request)
        except Exception:  # a bug in the emulator itself must not kill the connection silently
            logger.exception("gateway error", extra={"request_id": request.request_id})
            response = HttpResponse(500, [("Content-Type", "application/json")], INTERNAL_ERROR_BODY)
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_chunked(self, limit: int) -> tuple[bytes, int]:
        """A chunked request body (kept only up to ``limit`` bytes) and its full length."""
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(_LINE_LIMIT).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(_LINE_LIMIT) not in {b"\r\n", b"\n", b""}:
                    pass  # trailers
                break
            data = self.rfile.read(size)
            self.rfile.readline(_LINE_LIMIT)  # the CRLF after each chunk
            total += size
            if total <= limit:
                chunks.append(data)
        return (b"".join(chunks) if total <= limit else b""), total

    def _discard(self, length: int) -> None:
        if length > _DISCARD_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Access logging is the gateway's structured ``request`` log; keep http.server quiet."""


class _GatewayHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: ApiGateway) -> None:
        self.gateway = gateway
        super().__init__(address, _RequestHandler)


class ApiServer:
    """Serve an :class:`ApiGateway` over HTTP on 127.0.0.1:``port`` from a background thread."""

    def __init__(self, gateway: ApiGateway, port: int, host: str = LOOPBACK) -> None:
        self.gateway = gateway
        self.host = host
        self.port = port
        self._server: _GatewayHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        try:
            self._server = _GatewayHttpServer((self.host, self.port), self.gateway)
        except OSError as error:
            raise RuntimeError(f"cannot serve the API on {self.url}: {error} (set HERALD_API_PORT)") from error
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="api-server", daemon=True
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
