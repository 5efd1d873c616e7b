"""The REST API as API Gateway serves it: routes, API keys, usage plan, method throttles, gateway responses, Lambda
proxy.

API keys are those on the usage plan in the embedded AWS (:mod:`~local.apigateway.keys`), so a key created or
revoked at run time with boto3 is honoured or refused within about a second, as in API Gateway. The stage's
``MethodSettings`` throttle each method for every caller together (:mod:`~local.apigateway.throttle`).

:class:`ApiGateway` turns one :class:`~local.apigateway.proxy_event.HttpRequest` into an HTTP response;
:class:`~local.apigateway.server.ApiServer` serves it over HTTP (still importable from here, as are
``READ_TIMEOUT_SECONDS``, ``HttpResponse`` and ``MAX_PAYLOAD_BYTES``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.apigateway.framing import MAX_PAYLOAD_BYTES
from local.apigateway.gateway_responses import GatewayResponses
from local.apigateway.keys import ApiKeyDirectory, ApiKeyLookupError
from local.apigateway.proxy_event import (
    INTERNAL_ERROR_BODY,
    ApiContext,
    HttpRequest,
    HttpResponse,
    MalformedResponseError,
    build_event,
    parse_response,
)
from local.apigateway.routes import Route, RouteTable, routes_from_body
from local.apigateway.server import READ_TIMEOUT_SECONDS, ApiServer
from local.apigateway.throttle import KeyQuota, KeyThrottle, MethodThrottle
from local.aws.provision import local_id
from local.logs import get_logger

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient

    from local.aws.template import Stack

Invoke = Callable[[dict[str, Any]], Any]
"""Invoke a function with an event and return its response (e.g. ``LocalFunction.invoke``)."""

__all__ = [
    "INTERNAL_ERROR_BODY",
    "MAX_PAYLOAD_BYTES",
    "READ_TIMEOUT_SECONDS",
    "ApiGateway",
    "ApiServer",
    "HttpResponse",
    "Invoke",
    "local_id_for",
]

logger = get_logger("api")


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
    throttle: KeyThrottle | None = None  # the usage plan's, per key
    quota: KeyQuota | None = None
    method_throttle: MethodThrottle | None = None  # the stage's MethodSettings, per method for every caller
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
        *,
        key_clock: Callable[[], float] = time.monotonic,
        throttle_clock: Callable[[], float] = time.monotonic,
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
        throttle_clock : Callable[[], float]
            The clock (seconds) the usage plan's and the stage's method throttles refill on.

        Raises
        ------
        ValueError
            The template has no or several REST APIs, no inline swagger Body, an unprovisioned usage plan, or a
            ``MethodSettings`` entry a deployment would refuse (e.g. a ``ResourcePath`` without ``~1``).
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
            throttle=(
                KeyThrottle(float(throttle["RateLimit"]), int(throttle["BurstLimit"]), throttle_clock)
                if throttle
                else None
            ),
            quota=KeyQuota(int(quota["Limit"]), str(quota["Period"])) if quota else None,
            method_throttle=MethodThrottle.from_stage(stage.get("MethodSettings") or [], throttle_clock),
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
        # API Gateway's order: the key's usage-plan throttle, then the method's; a throttled request uses no quota.
        if self.method_throttle is not None and not self.method_throttle.allow(route.resource_path, route.method):
            return self._gateway("THROTTLED", request), route.resource_path
        if api_key_id is not None and self.quota is not None and not self.quota.allow(api_key_id):
            return self._gateway("QUOTA_EXCEEDED", request), route.resource_path
        return self._integrate(request, route, path_parameters, api_key_id), route.resource_path

    def _gate(self, request: HttpRequest) -> HttpResponse | tuple[Route, dict[str, str]]:
        """Size and routing checks: a gateway response, or the route and its path parameters."""
        if max(len(request.body), request.declared_length) > self.max_payload_bytes:
            return self._gateway("REQUEST_TOO_LARGE", request)
        found = self.routes.find(request.method, request.path)
        return self._gateway("MISSING_AUTHENTICATION_TOKEN", request) if found is None else found

    def _check_key(self, request: HttpRequest) -> HttpResponse | str:
        """API key, then the usage plan's throttle for it: a gateway response, or the key's id."""
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
