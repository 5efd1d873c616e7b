"""Route matching and gateway response rendering, from swagger bodies (no server)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from local.apigateway.gateway_responses import GatewayResponses
from local.apigateway.routes import RouteTable, routes_from_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.aws.template import Stack

_URI = {"Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${ApiFunction.Arn}/invocations"}


def _operation(secured: bool = False) -> dict[str, Any]:
    return {
        "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": _URI},
        "security": [{"api_key": []}] if secured else [],
    }


def _table(stack: Stack, paths: dict[str, Any]) -> RouteTable:
    body = {"paths": paths, "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}}
    return RouteTable(tuple(routes_from_body(body, stack)))


def test_literal_route_wins_over_parameter_and_greedy_routes(offline_stack: Callable[..., Stack]) -> None:
    # Given overlapping routes declared in any order
    table = _table(
        offline_stack(),
        {
            "/{proxy+}": {"x-amazon-apigateway-any-method": _operation()},
            "/notifications/{id}": {"get": _operation(secured=True)},
            "/notifications/batch": {"get": _operation()},
        },
    )

    # When paths are matched
    batch = table.find("GET", "/notifications/batch")
    single = table.find("GET", "/notifications/n-1")
    other = table.find("PATCH", "/a/b/c")

    # Then the most specific route serves each, with its path parameters and key requirement
    assert batch is not None and batch[0].resource_path == "/notifications/batch" and batch[1] == {}
    assert single is not None and single[1] == {"id": "n-1"} and single[0].api_key_required
    assert other is not None and other[0].resource_path == "/{proxy+}" and other[1] == {"proxy": "a/b/c"}


def test_route_invokes_the_function_named_by_its_integration(offline_stack: Callable[..., Stack]) -> None:
    # Given the real template's routes
    stack = offline_stack()
    body = stack.resolve(stack.resources["HeraldApi"]["Properties"]["Body"])

    # When they are read
    routes = routes_from_body(body, stack)

    # Then the operator's routes (/admin/*) invoke AdminFunction and every other one ApiFunction, and only
    # /notifications*, the detailed health views and /admin/* need a key (/health, /health/live and
    # /health/ready are public, provider events carry a signature instead)
    admin = [route for route in routes if route.resource_path.startswith("/admin/")]
    public = [route for route in routes if not route.resource_path.startswith("/admin/")]
    assert {("POST", "/admin/clients"), ("DELETE", "/admin/clients/{id}")} <= {
        (route.method, route.resource_path) for route in admin
    }
    assert {route.function_arn for route in admin} == {stack.arns["AdminFunction"]}
    assert {route.function_arn for route in public} == {stack.arns["ApiFunction"]}
    assert {(route.method, route.resource_path) for route in routes if route.api_key_required} == {
        ("POST", "/notifications"),
        ("POST", "/notifications/batch"),
        ("GET", "/notifications"),
        ("GET", "/notifications/{id}"),
        *(
            ("GET", f"/health/{view}")
            for view in ("detailed", "db", "queues", "providers", "circuit-breakers", "system")
        ),
    } | {(route.method, route.resource_path) for route in admin}


def test_default_4xx_template_gets_the_message_as_a_json_string(offline_stack: Callable[..., Stack]) -> None:
    # Given the template's gateway responses without a specific API_KEY response
    stack = offline_stack()
    body = stack.resolve(stack.resources["HeraldApi"]["Properties"]["Body"])
    customised = dict(body["x-amazon-apigateway-gateway-responses"])
    del customised["API_KEY"]

    # When an API_KEY response is rendered
    rendered = GatewayResponses(customised).render("API_KEY", "req-1")

    # Then DEFAULT_4XX's template answers with API Gateway's own message, JSON-quoted, and the default status
    assert rendered.status == 403
    assert json.loads(rendered.body) == {"error": {"code": "bad_request", "message": "Forbidden"}}
    assert rendered.headers["x-amzn-RequestId"] == "req-1"


def test_an_encoded_slash_stays_inside_its_path_parameter_which_is_then_decoded(
    offline_stack: Callable[..., Stack],
) -> None:
    # Given a route with a parameter in the middle (the admin API's breaker actions)
    table = _table(offline_stack(), {"/admin/circuit-breakers/{name}/reset": {"post": _operation(secured=True)}})

    # When a webhook breaker's name is sent percent-encoded, as clients must (it holds "/" and ":")
    found = table.find("POST", "/admin/circuit-breakers/webhook%3Ahttps%3A%2F%2Fhooks.example.com%3A443/reset")
    plain = table.find("POST", "/admin/circuit-breakers/webhook:https://hooks.example.com:443/reset")

    # Then the encoded form matches, with the name decoded; the raw slashes do not (they are path segments)
    assert found is not None
    assert found[1] == {"name": "webhook:https://hooks.example.com:443"}
    assert plain is None
