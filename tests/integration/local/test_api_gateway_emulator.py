"""The API Gateway emulator over HTTP: routes and keys from the template, gateway responses, proxy events."""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.apigateway.gateway import ApiGateway
from local.apigateway.server import ApiServer
from local.aws.moto_server import free_port
from tests.integration.local.conftest import unique_key_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from local.runtime import AwsClients
    from tests.integration.local.conftest import ProvisionedStack


@dataclass
class FakeApiFunction:
    """Records every event; answers ``response`` (or raises ``error``)."""

    response: Any = field(default_factory=lambda: {"statusCode": 200, "body": '{"ok": true}'})
    error: Exception | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        return self.response


@dataclass
class Gateway:
    url: str
    function: FakeApiFunction
    api_key: str  # the default client's key (HeraldApiApiKey)
    admin_key: str  # the operator's key (AdminApiKey)
    api_key_id: str


@pytest.fixture
def start_gateway(make_stack: Callable[..., ProvisionedStack], aws: AwsClients) -> Iterator[Callable[..., Gateway]]:
    """The template's API with its keys in moto (fresh values each time), served on an ephemeral port."""
    servers: list[ApiServer] = []

    def start(**parameters: str) -> Gateway:
        api_key, admin_key = unique_key_value("test-key"), unique_key_value("test-admin-key")
        stack = make_stack(api_key_values={"HeraldApiApiKey": api_key, "AdminApiKey": admin_key}, **parameters).stack
        function = FakeApiFunction()
        port = free_port()
        gateway = ApiGateway.from_stack(
            stack, {stack.arns["ApiFunction"]: function}, aws.client("apigateway"), port=port
        )
        servers.append(ApiServer(gateway, port).start())
        key_id = stack.physical_ids["HeraldApiApiKey"]
        return Gateway(f"http://127.0.0.1:{port}", function, api_key, admin_key, key_id)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway()


def test_path_parameters_and_query_reach_the_handler_as_an_api_gateway_rest_event(gateway: Gateway, http: Any) -> None:
    # Given a route with a path parameter that requires a key
    before_ms = int(time.time() * 1000)

    # When a client calls it with a key and a repeated query parameter
    reply = http("GET", f"{gateway.url}/notifications/abc-123?x=1&x=2&y=", headers={"x-api-key": gateway.api_key})

    # Then the handler got one v1 proxy event with every field API Gateway sends
    assert reply.status == 200
    (event,) = gateway.function.events
    assert set(event) == {
        "resource", "path", "httpMethod", "headers", "multiValueHeaders", "queryStringParameters",
        "multiValueQueryStringParameters", "pathParameters", "stageVariables", "requestContext", "body",
        "isBase64Encoded",
    }  # fmt: skip
    assert event["resource"] == "/notifications/{id}"
    assert event["path"] == "/notifications/abc-123"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "abc-123"}
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    headers = {name.lower(): value for name, value in event["headers"].items()}  # names as the client spelt them
    multi_headers = {name.lower(): value for name, value in event["multiValueHeaders"].items()}
    assert headers["x-api-key"] == gateway.api_key
    assert multi_headers["x-api-key"] == [gateway.api_key]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["resourcePath"] == "/notifications/{id}"
    assert context["httpMethod"] == "GET"
    assert context["stage"] == "v1"
    assert context["path"] == "/v1/notifications/abc-123"
    assert before_ms <= context["requestTimeEpoch"] <= int(time.time() * 1000)
    assert reply.header("x-amzn-RequestId") == [context["requestId"]]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["apiKey"] == gateway.api_key
    assert context["identity"]["apiKeyId"] == gateway.api_key_id  # the key's id in the embedded AWS


def test_post_body_is_passed_as_text(gateway: Gateway, http: Any) -> None:
    # Given a JSON request body
    body = json.dumps({"channel": "email", "body": "héllo"}).encode()

    # When it is posted to a keyed route
    headers = {"x-api-key": gateway.api_key, "Content-Type": "application/json"}
    http("POST", f"{gateway.url}/notifications", headers, body)

    # Then the event carries it as a string, not base64
    (event,) = gateway.function.events
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    assert event["pathParameters"] is None


def test_handler_response_becomes_the_http_response(gateway: Gateway, http: Any) -> None:
    # Given a handler answering with status, single and multi-value headers and a base64 body
    gateway.function.response = {
        "statusCode": 201,
        "headers": {"Location": "/notifications/1", "Content-Type": "text/plain"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": base64.b64encode(b"created").decode(),
        "isBase64Encoded": True,
    }

    # When the route is called
    reply = http("POST", f"{gateway.url}/notifications", {"x-api-key": gateway.api_key}, b"{}")

    # Then status, headers and decoded body come back as the handler said
    assert reply.status == 201
    assert reply.header("Location") == ["/notifications/1"]
    assert reply.header("Content-Type") == ["text/plain"]
    assert reply.header("X-Multi") == ["a", "b"]
    assert reply.body == b"created"


def test_route_without_key_requirement_needs_no_key(gateway: Gateway, http: Any) -> None:
    # Given /health/live, declared with ApiKeyRequired: false
    # When it is called without a key
    reply = http("GET", f"{gateway.url}/health/live")

    # Then the handler answers, and the event names no key
    assert reply.status == 200
    assert gateway.function.events[0]["requestContext"]["identity"]["apiKey"] is None


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["missing", "invalid"])
def test_keyed_route_refuses_missing_or_invalid_key_with_the_template_response(
    gateway: Gateway, http: Any, headers: dict[str, str]
) -> None:
    # Given a route that requires a key
    # When it is called without a valid key
    reply = http("GET", f"{gateway.url}/notifications/abc", headers=headers)

    # Then API Gateway's API_KEY response from the template answers, and the handler never runs
    assert reply.status == 401
    assert reply.json() == {"error": {"code": "unauthorized", "message": "A valid x-api-key header is required"}}
    assert reply.header("Content-Type") == ["application/json"]
    assert gateway.function.events == []


def test_admin_key_is_a_valid_key(gateway: Gateway, http: Any) -> None:
    # Given the admin key, which is on the usage plan (the handlers, not the gateway, decide what it may do)
    # When it is used on a keyed route
    reply = http("GET", f"{gateway.url}/notifications/abc", headers={"x-api-key": gateway.admin_key})

    # Then the request passes and the handler can tell which key it was
    assert reply.status == 200
    identity = gateway.function.events[0]["requestContext"]["identity"]
    assert identity["apiKey"] == gateway.admin_key
    assert identity["apiKeyId"] not in {None, gateway.api_key_id}


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("DELETE", "/health"), ("GET", "/notifications/a/b")])
def test_unknown_route_gets_the_template_not_found_response(
    gateway: Gateway, http: Any, method: str, path: str
) -> None:
    # Given a method and path the swagger does not declare
    # When it is called (even with a valid key)
    reply = http(method, f"{gateway.url}{path}", headers={"x-api-key": gateway.api_key})

    # Then MISSING_AUTHENTICATION_TOKEN from the template answers: 404 with its JSON
    assert reply.status == 404
    assert reply.json() == {"error": {"code": "not_found", "message": "No such route"}}
    assert gateway.function.events == []


def test_usage_plan_throttles_each_key_with_its_own_bucket(start_gateway: Callable[..., Gateway], http: Any) -> None:
    # Given a usage plan of 1 request/s with a burst of 2 (template parameters)
    gateway = start_gateway(ApiThrottleRateLimit="0.001", ApiThrottleBurstLimit="2")
    url = f"{gateway.url}/notifications/abc"

    # When one key sends three requests at once, and another key one
    statuses = [http("GET", url, headers={"x-api-key": gateway.api_key}).status for _ in range(3)]
    throttled = http("GET", url, headers={"x-api-key": gateway.api_key})
    other_key = http("GET", url, headers={"x-api-key": gateway.admin_key})

    # Then the burst passes, the rest gets the template's THROTTLED response, and the other key is unaffected
    assert statuses == [200, 200, 429]
    assert throttled.status == 429
    assert throttled.json() == {"error": {"code": "throttled", "message": "Too many requests; slow down and retry"}}
    assert other_key.status == 200
    assert len(gateway.function.events) == 3


def test_handler_exception_is_a_502_like_api_gateway_and_is_logged(
    gateway: Gateway, http: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a handler that raises
    gateway.function.error = RuntimeError("boom")

    # When its route is called
    with caplog.at_level(logging.ERROR, logger="herald.local"):
        reply = http("GET", f"{gateway.url}/health")

    # Then the client gets API Gateway's 502 and the error is in the logs
    assert reply.status == 502
    assert reply.json() == {"message": "Internal server error"}
    assert any(record.message == "function invocation failed" and record.exc_info for record in caplog.records)


@pytest.mark.parametrize(
    "response",
    ["not an object", {"body": "no status"}, {"statusCode": 200, "body": {"not": "a string"}}, None],
    ids=["string", "no-status", "body-object", "none"],
)
def test_malformed_proxy_response_is_a_502(gateway: Gateway, http: Any, response: Any) -> None:
    # Given a handler whose return value is not a Lambda proxy response
    gateway.function.response = response

    # When its route is called
    reply = http("GET", f"{gateway.url}/health")

    # Then API Gateway would answer 502 Internal server error
    assert reply.status == 502
    assert reply.json() == {"message": "Internal server error"}


def test_body_over_10_mib_gets_the_template_too_large_response(gateway: Gateway, http: Any) -> None:
    # Given a body one byte over API Gateway's 10 MiB limit
    body = b"x" * (10 * 1024 * 1024 + 1)

    # When it is posted
    reply = http("POST", f"{gateway.url}/notifications", {"x-api-key": gateway.api_key}, body)

    # Then REQUEST_TOO_LARGE from the template answers and the handler never runs
    assert reply.status == 413
    assert reply.json() == {"error": {"code": "payload_too_large", "message": "The request body is too large"}}
    assert gateway.function.events == []


def test_chunked_request_body_is_reassembled(gateway: Gateway) -> None:
    # Given a client that streams its body in chunks (no Content-Length)
    chunks = iter([b'{"channel": ', b'"sms"}'])
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        f"{gateway.url}/notifications", data=chunks, method="POST", headers={"x-api-key": gateway.api_key}
    )

    # When it posts
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        status = response.status

    # Then the handler sees the whole body
    assert status == 200
    assert gateway.function.events[0]["body"] == '{"channel": "sms"}'
