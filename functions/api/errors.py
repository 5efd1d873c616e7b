"""The one place where errors become HTTP responses: `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types

from notifications.errors import (
    DependencyUnavailable,
    HeraldError,
    IdempotencyConflict,
    InvalidRequest,
    MalformedJson,
    NotificationNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    from pydantic import ValidationError

STATUS_BY_ERROR: dict[type[HeraldError], int] = {
    MalformedJson: 400,
    NotificationNotFound: 404,
    IdempotencyConflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidRequest: 422,
    DependencyUnavailable: 503,
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":"), default=str),
        headers=headers,
    )


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(error: HeraldError) -> Response[str]:
    status = next((code for kind, code in STATUS_BY_ERROR.items() if isinstance(error, kind)), 500)
    headers = {}
    if isinstance(error, DependencyUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return json_response(status, error_body(error.code, error.message, error.details), headers)


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `{"field": "recipient.email", "message": ..., "type": ...}` without echoing input."""
    details = []
    for problem in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        details.append(
            {"field": field, "message": problem["msg"].removeprefix("Value error, "), "type": problem["type"]}
        )
    return details
