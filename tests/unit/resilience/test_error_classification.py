"""Error classification: transient, permanent, ignored, and provider extensions."""

from __future__ import annotations

import errno
import sqlite3
import urllib.error
from email.message import Message
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from resilience import (
    CircuitOpenError,
    ErrorClass,
    PermanentError,
    StoreUnavailableError,
    TransientError,
    default_classifier,
    http_status,
    retry_after_of,
)


def client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": extra.pop("headers", {})},
        **extra,
    }
    return ClientError(response, "Operation")  # type: ignore[arg-type]


class HttpError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class OperationalError(Exception):
    """Shaped like a DB-API driver's connection error (psycopg, sqlite3)."""


class DeadlockDetected(Exception):
    """Shaped like psycopg's deadlock error."""


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(),
        TimeoutError(),
        OSError(errno.ECONNREFUSED, "refused"),
        urllib.error.URLError("name resolution failed"),
        HttpError(500),
        HttpError(503),
        HttpError(429),
        HttpError(408),
        EndpointConnectionError(endpoint_url="https://dynamodb.example"),
        ConnectTimeoutError(endpoint_url="https://dynamodb.example"),
        ReadTimeoutError(endpoint_url="https://dynamodb.example"),
        client_error("ProvisionedThroughputExceededException"),
        client_error("RequestLimitExceeded"),
        client_error("ThrottlingException"),
        client_error("Throttling"),
        client_error("InternalServerError", 500),
        client_error("SomethingNew", 503),
        client_error(
            "TransactionCanceledException",
            CancellationReasons=[{"Code": "None"}, {"Code": "TransactionConflict"}],
        ),
        sqlite3.OperationalError("database is locked"),
        OperationalError("server closed the connection unexpectedly"),
        DeadlockDetected("deadlock detected"),
        TransientError("provider busy"),
        StoreUnavailableError("breaker store down"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_errors(error: BaseException) -> None:
    # Given an error a retry can fix
    # When it is classified
    verdict = default_classifier(error)

    # Then it is transient
    assert verdict is ErrorClass.TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        HttpError(400),
        HttpError(404),
        HttpError(422),
        client_error("ValidationException"),
        client_error("ConditionalCheckFailedException"),
        client_error("TransactionCanceledException", CancellationReasons=[{"Code": "ConditionalCheckFailed"}]),
        urllib.error.HTTPError("https://x", 410, "Gone", Message(), None),
        ValueError("not an email address"),
        PermanentError("invalid address"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent_errors(error: BaseException) -> None:
    # Given an error about the request itself
    # When it is classified
    verdict = default_classifier(error)

    # Then it is permanent
    assert verdict is ErrorClass.PERMANENT


@pytest.mark.parametrize("error", [CircuitOpenError("p", "OPEN", 3.0), KeyboardInterrupt(), SystemExit(1)])
def test_ignored_errors(error: BaseException) -> None:
    # Given our own rejection or an interruption
    # When it is classified
    verdict = default_classifier(error)

    # Then it is neither retried nor counted
    assert verdict is ErrorClass.IGNORED


def test_unknown_errors_default_to_transient() -> None:
    # Given an error nobody knows
    # When it is classified
    # Then the default applies: transient (retries are bounded and end in the dead-letter queue)
    assert default_classifier(RuntimeError("surprise")) is ErrorClass.TRANSIENT


def test_a_provider_extends_the_chain_without_changing_the_default() -> None:
    # Given a provider for which HTTP 403 means a misconfigured sender, worth retrying after a fix
    def provider_rules(error: BaseException) -> ErrorClass | None:
        return ErrorClass.TRANSIENT if http_status(error) == 403 else None

    extended = default_classifier.extended(provider_rules)

    # When a 403 is classified by both chains
    # Then the provider's rule wins in its chain only
    assert extended(HttpError(403)) is ErrorClass.TRANSIENT
    assert default_classifier(HttpError(403)) is ErrorClass.PERMANENT
    assert extended(HttpError(404)) is ErrorClass.PERMANENT


def test_retry_after_is_read_from_the_error_or_its_headers() -> None:
    # Given errors carrying a Retry-After in different places
    class WithResponse(Exception):
        def __init__(self) -> None:
            self.response = type("Response", (), {"headers": {"Retry-After": "12"}, "status_code": 429})()

    botocore_error = client_error("ThrottlingException", 400, headers={"retry-after": "3"})

    # When they are read
    explicit = retry_after_of(TransientError("busy", retry_after=4.5), 0.0)
    from_response = retry_after_of(WithResponse(), 0.0)
    from_botocore = retry_after_of(botocore_error, 0.0)
    nothing = retry_after_of(TimeoutError(), 0.0)

    # Then each gives the provider's delay, and none is None
    assert (explicit, from_response, from_botocore, nothing) == (4.5, 12.0, 3.0, None)
