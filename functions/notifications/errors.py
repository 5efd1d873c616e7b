"""One exception hierarchy for the domain; `api.errors` maps each to an HTTP status in one place."""

from __future__ import annotations

from typing import Any


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""

    code = "error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(HeraldError):
    """The request body failed validation (field paths in details)."""

    code = "validation_error"


class MalformedJson(HeraldError):
    code = "malformed_json"


class UnsupportedMediaType(HeraldError):
    code = "unsupported_media_type"


class PayloadTooLarge(HeraldError):
    code = "payload_too_large"


class NotificationNotFound(HeraldError):
    code = "not_found"


class IdempotencyConflict(HeraldError):
    """The idempotency key was used before with a different request."""

    code = "idempotency_conflict"


class ServiceUnavailable(HeraldError):
    """Herald cannot accept right now (queue or table unreachable); the client should retry later."""

    code = "service_unavailable"

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DeliveryError(HeraldError):
    """A provider could not deliver.

    `permanent` failures (invalid recipient, rejected content) are not retried; the others are, after
    `retry_after_seconds` when the provider said so.
    """

    code = "delivery_error"

    def __init__(self, message: str, *, permanent: bool, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_seconds = retry_after_seconds


class TargetRefused(DeliveryError):
    """A webhook target resolves to an address Herald must not call (SSRF guard)."""

    code = "target_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
