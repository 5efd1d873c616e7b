"""Gateway responses (errors API Gateway answers itself) from ``x-amazon-apigateway-gateway-responses``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Built-in status and message of each response type we raise, as API Gateway documents them.
_DEFAULTS: dict[str, tuple[int, str]] = {
    "API_KEY": (403, "Forbidden"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "THROTTLED": (429, "Too Many Requests"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
}
_BUILT_IN_TEMPLATE = '{"message":$context.error.messageString}'


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class GatewayResponses:
    """The API's customised gateway responses; render one by type as API Gateway would."""

    customised: dict[str, dict[str, Any]]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> GatewayResponses:
        return cls(customised=dict(body.get("x-amazon-apigateway-gateway-responses", {})))

    def render(
        self, response_type: str, request_id: str, request_headers: dict[str, str] | None = None
    ) -> GatewayResponse:
        """The HTTP response for ``response_type`` (e.g. ``API_KEY``), falling back to DEFAULT_4XX/5XX."""
        status, message = _DEFAULTS[response_type]
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        specific = self.customised.get(response_type, {})
        default = self.customised.get(family, {})
        if "statusCode" in specific:
            status = int(specific["statusCode"])
        templates = specific.get("responseTemplates") or default.get("responseTemplates") or {}
        template = templates.get("application/json", _BUILT_IN_TEMPLATE)
        body = (
            template.replace("$context.error.messageString", json.dumps(message))
            .replace("$context.error.message", message)
            .replace("$context.requestId", request_id)
        )
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id}
        parameters = {**default.get("responseParameters", {}), **specific.get("responseParameters", {})}
        headers.update(_response_headers(parameters, request_headers or {}))
        return GatewayResponse(status=status, headers=headers, body=body.encode())


def _response_headers(parameters: dict[str, str], request_headers: dict[str, str]) -> dict[str, str]:
    """``gatewayresponse.header.X`` parameters: a quoted literal or a request header's value."""
    lowered = {name.lower(): value for name, value in request_headers.items()}
    headers: dict[str, str] = {}
    prefix = "gatewayresponse.header."
    for target, source in parameters.items():
        if not target.startswith(prefix):
            continue
        if source.startswith("'") and source.endswith("'"):
            headers[target[len(prefix) :]] = source[1:-1]
        elif source.startswith("method.request.header."):
            value = lowered.get(source[len("method.request.header.") :].lower())
            if value is not None:
                headers[target[len(prefix) :]] = value
    return headers
