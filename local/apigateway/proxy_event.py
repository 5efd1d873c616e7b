"""API Gateway REST (v1) Lambda proxy integration: HTTP request -> event, handler response -> HTTP."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

INTERNAL_ERROR_BODY = b'{"message": "Internal server error"}'  # API Gateway's own body for a 500 or 502


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the gateway received it; header names keep the client's spelling."""

    method: str
    path: str  # as sent (percent-encoded), without the query string: routes match it, parameters are decoded
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    declared_length: int = 0  # Content-Length as sent, even when the gateway did not keep the body
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @classmethod
    def from_target(  # noqa: PLR0917 - mirrors the request line, headers and socket in order
        cls,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        declared_length: int = 0,
    ) -> HttpRequest:
        """A request from the request line's target (``/path?query``)."""
        path, _, query = target.partition("?")
        return cls(
            method=method.upper(),
            path=path or "/",
            query=query,
            headers=headers,
            body=body,
            source_ip=source_ip,
            declared_length=declared_length,
        )

    def header(self, name: str) -> str | None:
        """The last value of a header, matched case-insensitively (what API Gateway's ``headers`` holds)."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP response as the gateway sends it: its own (a gateway response, 500, 502) or the function's."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class ApiContext:
    """What the event says about the API and the matched route."""

    api_id: str
    stage: str
    account_id: str
    resource_id: str
    resource_path: str
    path_parameters: dict[str, str]
    stage_variables: dict[str, str] | None
    api_key: str | None
    api_key_id: str | None
    binary_media_types: tuple[str, ...] = ()


class MalformedResponseError(ValueError):
    """The handler's return value is not a Lambda proxy response; API Gateway answers 502."""


def _single_and_multi(pairs: list[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def _is_binary(content_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    for pattern in binary_media_types:
        wanted = pattern.lower()
        if wanted in {"*/*", media_type} or (wanted.endswith("/*") and media_type.startswith(wanted[:-1])):
            return True
    return False


def _gateway_headers(request: HttpRequest, port: int) -> list[tuple[str, str]]:
    """The request's headers plus the ones API Gateway adds on the way to the integration."""
    headers = list(request.headers)
    forwarded = request.header("X-Forwarded-For")
    headers = [(key, value) for key, value in headers if key.lower() != "x-forwarded-for"]
    headers.append(("X-Forwarded-For", f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip))
    if request.header("X-Forwarded-Port") is None:
        headers.append(("X-Forwarded-Port", str(port)))
    if request.header("X-Forwarded-Proto") is None:
        headers.append(("X-Forwarded-Proto", "http"))
    if request.header("X-Amzn-Trace-Id") is None:
        headers.append(("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"))
    return headers


def build_event(request: HttpRequest, api: ApiContext, port: int) -> dict[str, Any]:
    """The event API Gateway sends a Lambda proxy integration for ``request`` (REST API, payload v1)."""
    headers, multi_headers = _single_and_multi(_gateway_headers(request, port))
    query, multi_query = _single_and_multi(parse_qsl(request.query, keep_blank_values=True))
    binary = _is_binary(request.header("Content-Type"), api.binary_media_types)
    if not request.body:
        body = None
    elif binary:
        body = base64.b64encode(request.body).decode("ascii")
    else:
        body = request.body.decode("utf-8", errors="replace")
    host = (request.header("Host") or "localhost").split(":", 1)[0]
    return {
        "resource": api.resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": api.path_parameters or None,
        "stageVariables": api.stage_variables,
        "requestContext": {
            "resourceId": api.resource_id,
            "resourcePath": api.resource_path,
            "httpMethod": request.method,
            "extendedRequestId": request.request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(request.received_ms / 1000)),
            "path": f"/{api.stage}{request.path}",
            "accountId": api.account_id,
            "protocol": "HTTP/1.1",
            "stage": api.stage,
            "domainPrefix": host.split(".", 1)[0],
            "requestTimeEpoch": request.received_ms,
            "requestId": request.request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.header("User-Agent"),
                "user": None,
                "apiKey": api.api_key,
                "apiKeyId": api.api_key_id,
                "clientCert": None,
            },
            "domainName": host,
            "apiId": api.api_id,
        },
        "body": body,
        "isBase64Encoded": binary and body is not None,
    }


@dataclass(frozen=True)
class ProxyResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def parse_response(response: Any) -> ProxyResponse:
    """Turn a handler's return value into HTTP, or raise :class:`MalformedResponseError` as API Gateway would."""
    if not isinstance(response, dict):
        raise MalformedResponseError(f"response is {type(response).__name__}, not an object")
    status = response.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int | str) or not str(status).isdigit():
        raise MalformedResponseError("statusCode must be an integer")
    single = response.get("headers") or {}
    multi = response.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedResponseError("headers and multiValueHeaders must be objects")
    headers: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedResponseError(f"multiValueHeaders[{name!r}] must be a list")
        headers.extend((str(name), _header_value(value)) for value in values)
    headers.extend((str(name), _header_value(value)) for name, value in single.items() if name not in multi)
    body = response.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedResponseError("body must be a string")
    raw = (body or "").encode()
    if response.get("isBase64Encoded") and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error as error:
            raise MalformedResponseError("isBase64Encoded body is not base64") from error
    return ProxyResponse(status=int(status), headers=headers, body=raw)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        raise MalformedResponseError("header values must be strings or numbers")
    return str(value)
