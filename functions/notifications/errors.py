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


class Forbidden(HeraldError):
    """A valid key that may not do this (a client's key on an admin route, the admin key sending)."""

    code = "forbidden"


class IdempotencyConflict(HeraldError):
    """The idempotency key was used before with a different request."""

    code = "idempotency_conflict"


class DependencyUnavailable(HeraldError):
    """A dependency cannot be reached now (the status table, a queue); retrying later can succeed.

    Adapters wrap every failure of their AWS client in a subclass, as Powertools' idempotency wraps
    every persistence failure in one error: callers never see a raw `ClientError`. The API answers
    503 with `Retry-After`; the sender keeps the message for a later attempt.
    """

    code = "service_unavailable"

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class StoreUnavailable(DependencyUnavailable):
    """The status store (DynamoDB) failed or could not be reached."""


class QueueUnavailable(DependencyUnavailable):
    """A queue (SQS) failed or could not be reached."""


class DeliveryError(HeraldError):
    """A provider could not deliver one notification.

    Providers describe what happened (the HTTP status, the provider's error code, its ``Retry-After``);
    they never decide whether it is worth retrying. That verdict is the classifier's, in one place:
    `notifications.failures.delivery_classifier`, which extends the resilience library's
    `default_classifier` (5xx, 408, 425 and 429 transient; other 4xx permanent; no status: transient).

    Parameters
    ----------
    message : str
        What failed, in plain words, with no personal data; it becomes the notification's `error`.
    status_code : int | None
        The HTTP status the provider answered, if it answered.
    retry_after : float | None
        Seconds the provider asked us to wait (its ``Retry-After``), if it said.
    provider_code : str | None
        The provider's own error code (for example SES's ``MessageRejected``).
    """

    code = "delivery_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.provider_code = provider_code


class NothingSent(DeliveryError):
    """A failure before any request reached the provider (its credentials or access token could not be had):
    nothing went out, so another provider may send the notification at once."""


class UndeliverableError(DeliveryError):
    """Nothing about the provider: this notification itself can never be delivered this way
    (no address for the channel, a refused webhook target). Permanent."""

    code = "undeliverable"


class TargetRefused(UndeliverableError):
    """A webhook target resolves to an address Herald must not call (SSRF guard)."""

    code = "target_refused"
