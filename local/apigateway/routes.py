"""Routes of the REST API, read from the translated template's ``AWS::ApiGateway::RestApi`` swagger Body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from local.aws.template import Stack

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
ANY_METHOD = "x-amazon-apigateway-any-method"
_FUNCTION_ARN = re.compile(r"functions/(arn:[^/]+)/invocations")


@dataclass(frozen=True)
class Route:
    """One method of one resource: ``GET /notifications/{id}`` -> a function, key required or not."""

    resource_path: str  # as declared, e.g. /notifications/{id}
    method: str  # upper case, or ANY
    function_arn: str
    api_key_required: bool
    pattern: re.Pattern[str]
    literal_segments: int  # more literal segments = more specific, tried first
    greedy: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``method path`` is this route, else None."""
        if self.method not in {method, "ANY"}:
            return None
        found = self.pattern.fullmatch(path)
        # Matched on the path as sent, so an encoded "/" (%2F) stays inside its parameter, as in API Gateway;
        # each parameter is then decoded.
        return None if found is None else {name: unquote(value) for name, value in found.groupdict().items()}


def _compile(resource_path: str) -> tuple[re.Pattern[str], int, bool]:
    parts: list[str] = []
    literal = 0
    greedy = False
    for segment in resource_path.strip("/").split("/"):
        if not segment:
            continue
        parameter = re.fullmatch(r"\{([A-Za-z0-9_.\-]+)(\+?)\}", segment)
        if parameter is None:
            parts.append(re.escape(segment))
            literal += 1
        elif parameter.group(2):
            parts.append(f"(?P<{_group(parameter.group(1))}>.+)")
            greedy = True
        else:
            parts.append(f"(?P<{_group(parameter.group(1))}>[^/]+)")
    return re.compile("/" + "/".join(parts)), literal, greedy


def _group(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"path parameter {name!r} is not supported locally (use letters, digits, _)")
    return name


def _key_schemes(body: dict[str, Any]) -> set[str]:
    """Names of the security definitions that are API Gateway API keys (``x-api-key`` header)."""
    return {
        name
        for name, scheme in body.get("securityDefinitions", {}).items()
        if scheme.get("type") == "apiKey" and str(scheme.get("name", "")).lower() == "x-api-key"
    }


def _requires_key(operation: dict[str, Any], body: dict[str, Any], key_schemes: set[str]) -> bool:
    security = operation.get("security", body.get("security", []))
    return any(key_schemes & set(requirement) for requirement in security or [])


def _function_arn(integration: dict[str, Any], stack: Stack) -> str:
    if integration.get("type") != "aws_proxy":
        raise ValueError(f"only aws_proxy (Lambda proxy) integrations run locally, not {integration.get('type')!r}")
    uri = str(stack.resolve(integration["uri"]))
    found = _FUNCTION_ARN.search(uri)
    if found is None:
        raise ValueError(f"integration uri {uri!r} does not name a Lambda function")
    return found.group(1)


def routes_from_body(body: dict[str, Any], stack: Stack) -> list[Route]:
    """Every route of a swagger Body, most specific first (how API Gateway picks among matches)."""
    key_schemes = _key_schemes(body)
    routes: list[Route] = []
    for resource_path, item in body.get("paths", {}).items():
        pattern, literal, greedy = _compile(resource_path)
        for method_key, operation in item.items():
            if method_key not in HTTP_METHODS and method_key != ANY_METHOD:
                continue
            routes.append(
                Route(
                    resource_path=resource_path,
                    method="ANY" if method_key == ANY_METHOD else method_key.upper(),
                    function_arn=_function_arn(operation["x-amazon-apigateway-integration"], stack),
                    api_key_required=_requires_key(operation, body, key_schemes),
                    pattern=pattern,
                    literal_segments=literal,
                    greedy=greedy,
                )
            )
    # Literal paths beat parameters, parameters beat greedy ones; an explicit method beats ANY.
    routes.sort(key=lambda route: (route.greedy, -route.literal_segments, route.method == "ANY"))
    return routes


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route serving ``method path`` and its path parameters, or None (API Gateway's 'missing token')."""
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None
