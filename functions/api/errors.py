"""The one place where errors become HTTP responses: `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types

from notifications.clients import ClientConflict, ClientNotFound
from notifications.errors import (
    DependencyUnavailable,
    Forbidden,
    HeraldError,
    IdempotencyConflict,
    InvalidRequest,
    MalformedJson,
    NotificationNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from notifications.observability import logger
from notifications.requests import item_details

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

STATUS_BY_ERROR: dict[type[HeraldError], int] = {
    MalformedJson: 400,
    Forbidden: 403,
    NotificationNotFound: 404,
    ClientNotFound: 404,
    IdempotencyConflict: 409,
    ClientConflict: 409,
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


def item_error(index: int, error: HeraldError) -> dict[str, Any]:
    """A rejected notification of a batch: `{"index", "error"}`, the single path's error with field paths
    prefixed by the notification's place in the batch (`recipient.email` -> `notifications[3].recipient.email`;
    an empty field, the whole notification, -> `notifications[3]`)."""
    return {"index": index, **error_body(error.code, error.message, item_details(index, error))}


def install_error_handlers(app: APIGatewayRestResolver, on_error: Callable[[HeraldError], None] | None = None) -> None:
    """Every route's errors as JSON: a Herald error its status (`on_error` sees it first), an unknown route 404,
    anything else 500 with its type logged (never its message, which may hold input)."""

    @app.exception_handler(HeraldError)  # type: ignore[untyped-decorator]
    def handle_herald_error(error: HeraldError) -> Response[str]:
        if on_error is not None:
            on_error(error)
        return error_response(error)

    @app.not_found
    def handle_not_found(_: Exception) -> Response[str]:
        return json_response(404, error_body("not_found", "No such route"))

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def handle_unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error", extra={"error_type": type(error).__name__})
        return json_response(500, error_body("internal_error", "An unexpected error occurred; it has been logged"))
