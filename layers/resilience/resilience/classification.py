"""Error classification: is a failure transient (retry later), permanent (give up) or ignored?

A classifier is any callable ``(error) -> ErrorClass | None``; ``None`` means "not mine, ask the
next one". A :class:`ClassifierChain` asks its classifiers in order and falls back to a default.
:data:`default_classifier` knows network errors, HTTP statuses, botocore and DynamoDB errors,
database lock/connection errors and validation errors; a provider adapter extends it::

    def sendgrid_errors(error: BaseException) -> ErrorClass | None:
        if http_status(error) == 403:  # SendGrid: sender identity not verified, a config issue
            return ErrorClass.PERMANENT
        return None

    classifier = default_classifier.extended(sendgrid_errors)

The library recognises botocore's exceptions by class name and attributes, so this module imports
no AWS SDK.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

from resilience.backoff import parse_retry_after
from resilience.errors import CircuitOpenError, PermanentError, StoreUnavailableError, TransientError


class ErrorClass(StrEnum):
    """What a failure means for retries and for circuit breakers."""

    TRANSIENT = "transient"
    """The dependency failed or is overloaded: retry later; a breaker counts it as a failure."""
    PERMANENT = "permanent"
    """The request itself is wrong (invalid address, validation): never retry; a breaker ignores
    it, because the dependency answered correctly."""
    IGNORED = "ignored"
    """No verdict on the dependency nor the request (our own breaker rejecting a call,
    cancellation): not retried here, not counted by a breaker."""


Classifier = Callable[[BaseException], ErrorClass | None]
"""``(error) -> ErrorClass | None``; ``None`` passes the error to the next classifier."""

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "LimitExceededException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)
"""AWS error codes meaning "too much, too fast" or a lost lock race: always worth a retry."""

SERVICE_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "IDPCommunicationError",
    }
)
"""AWS error codes of a service-side failure."""

TRANSIENT_CANCELLATION_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
"""``TransactionCanceledException`` reasons that a retry can resolve (others, like
``ConditionalCheckFailed``, are a verdict on the request)."""

BOTOCORE_TRANSIENT = frozenset(
    {
        "ConnectionError",  # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError
        "HTTPClientError",  # ReadTimeoutError, ConnectionClosedError
        "IncompleteReadError",
        "ResponseStreamingError",
    }
)

DATABASE_TRANSIENT = frozenset(
    {
        "OperationalError",  # DB-API: lost connection, server gone away, database locked
        "InterfaceError",
        "DeadlockDetected",
        "LockNotAvailable",
        "SerializationFailure",
        "TransactionRollbackError",
        "QueryCanceled",
        "AdminShutdown",
        "CannotConnectNow",
    }
)
"""Exception class names of the database drivers' connection, lock and deadlock errors (psycopg,
sqlite3, DB-API), matched by name so no driver needs importing."""

NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EPIPE,
        errno.EAGAIN,
    }
)


def _class_names(error: BaseException, module_prefix: str | None = None) -> set[str]:
    return {
        cls.__name__ for cls in type(error).__mro__ if module_prefix is None or cls.__module__.startswith(module_prefix)
    }


def _aws_error(error: BaseException) -> tuple[str, int | None, Mapping[str, Any]] | None:
    """(code, HTTP status, response) of a botocore ``ClientError``-shaped exception, else ``None``."""
    response = getattr(error, "response", None)
    if not isinstance(response, Mapping) or not isinstance(response.get("Error"), Mapping):
        return None
    code = str(response["Error"].get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, int(status) if isinstance(status, int) else None, response


def http_status(error: BaseException) -> int | None:
    """The HTTP status an exception carries, if any.

    Looks at ``status_code`` / ``status`` / ``code`` attributes, a ``response.status_code``
    (requests, httpx) and botocore's ``ResponseMetadata.HTTPStatusCode``.

    Parameters
    ----------
    error : BaseException
        The exception.

    Returns
    -------
    int | None
        The status, or ``None``.
    """
    for attribute in ("status_code", "status", "code"):
        value = getattr(error, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    response = getattr(error, "response", None)
    for attribute in ("status_code", "status"):
        value = getattr(response, attribute, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    aws = _aws_error(error)
    return aws[1] if aws else None


def _headers(error: BaseException) -> Mapping[str, Any] | None:
    headers = getattr(error, "headers", None)
    if headers is None:
        headers = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        aws = _aws_error(error)
        headers = aws[2].get("ResponseMetadata", {}).get("HTTPHeaders") if aws else None
    return headers if isinstance(headers, Mapping) or hasattr(headers, "get") else None


def retry_after_of(error: BaseException, now: float) -> float | None:
    """Seconds the failed dependency asked us to wait, from the exception.

    Reads a ``retry_after`` attribute (e.g. :class:`TransientError`), else a ``Retry-After``
    header on the exception, its ``response`` or botocore's ``HTTPHeaders``.

    Parameters
    ----------
    error : BaseException
        The exception.
    now : float
        The current time (epoch seconds), for HTTP-date values.

    Returns
    -------
    float | None
        Seconds, or ``None`` when the dependency said nothing.
    """
    explicit = getattr(error, "retry_after", None)
    if isinstance(explicit, int | float | str) and not isinstance(explicit, bool):
        return parse_retry_after(explicit, now)
    headers = _headers(error)
    if headers is None:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    return parse_retry_after(str(value), now) if value is not None else None


def classify_resilience_errors(error: BaseException) -> ErrorClass | None:
    """This library's own exceptions: explicit transient/permanent markers and breaker rejections."""
    if isinstance(error, TransientError):
        return ErrorClass.TRANSIENT
    if isinstance(error, PermanentError):
        return ErrorClass.PERMANENT
    if isinstance(error, CircuitOpenError):
        return ErrorClass.IGNORED
    if isinstance(error, StoreUnavailableError):
        return ErrorClass.TRANSIENT
    return None


def classify_interruptions(error: BaseException) -> ErrorClass | None:
    """``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``: never retried nor counted."""
    return None if isinstance(error, Exception) else ErrorClass.IGNORED


def classify_aws_errors(error: BaseException) -> ErrorClass | None:
    """botocore errors: throttling, service and connection errors are transient; other 4xx permanent."""
    botocore_names = _class_names(error, "botocore.")
    if botocore_names & BOTOCORE_TRANSIENT:
        return ErrorClass.TRANSIENT
    aws = _aws_error(error)
    if aws is None:
        return None
    code, status, response = aws
    if code in THROTTLING_CODES or code in SERVICE_ERROR_CODES:
        return ErrorClass.TRANSIENT
    if code == "TransactionCanceledException":
        reasons = {str(r.get("Code", "")) for r in response.get("CancellationReasons", []) if isinstance(r, Mapping)}
        return ErrorClass.TRANSIENT if reasons & TRANSIENT_CANCELLATION_REASONS else ErrorClass.PERMANENT
    if status is not None:
        return _classify_status(status)
    return None


def classify_http_status(error: BaseException) -> ErrorClass | None:
    """Any exception carrying an HTTP status: 408, 425, 429 and 5xx transient; other 4xx permanent."""
    status = http_status(error)
    return _classify_status(status) if status is not None else None


def _classify_status(status: int) -> ErrorClass | None:
    if status in (408, 425, 429) or status >= 500:
        return ErrorClass.TRANSIENT
    if 400 <= status < 500:
        return ErrorClass.PERMANENT
    return None


def classify_database_errors(error: BaseException) -> ErrorClass | None:
    """Database connection, lock and deadlock errors (by class name): transient."""
    return ErrorClass.TRANSIENT if _class_names(error) & DATABASE_TRANSIENT else None


def classify_network_errors(error: BaseException) -> ErrorClass | None:
    """Timeouts, connection resets/refusals and other socket errors: transient."""
    if isinstance(error, TimeoutError | ConnectionError):
        return ErrorClass.TRANSIENT
    if isinstance(error, OSError) and error.errno in NETWORK_ERRNOS:
        return ErrorClass.TRANSIENT
    names = _class_names(error)
    if names & {"URLError", "RemoteDisconnected", "IncompleteRead", "ConnectError", "ReadTimeout", "Timeout"}:
        return ErrorClass.TRANSIENT
    return None


def classify_validation_errors(error: BaseException) -> ErrorClass | None:
    """``ValueError`` (pydantic's ``ValidationError`` included) and ``UnicodeError``: permanent."""
    return ErrorClass.PERMANENT if isinstance(error, ValueError) else None


class ClassifierChain:
    """Classifiers asked in order; the first answer wins, else the default.

    Parameters
    ----------
    classifiers : Iterable[Classifier]
        The classifiers, most specific first.
    default : ErrorClass
        The answer when none of them knows the error (default TRANSIENT: retrying an
        idempotent call is safe, retries are bounded, and a dead-letter queue catches the rest).
    """

    def __init__(self, classifiers: Iterable[Classifier], default: ErrorClass = ErrorClass.TRANSIENT) -> None:
        self.classifiers: tuple[Classifier, ...] = tuple(classifiers)
        self.default = default

    def classify(self, error: BaseException) -> ErrorClass:
        """Classify ``error``.

        Parameters
        ----------
        error : BaseException
            The failure.

        Returns
        -------
        ErrorClass
            The first classifier's answer, or the default.
        """
        for classifier in self.classifiers:
            verdict = classifier(error)
            if verdict is not None:
                return verdict
        return self.default

    __call__ = classify

    def extended(self, *classifiers: Classifier) -> ClassifierChain:
        """A new chain that asks ``classifiers`` first, then this chain's.

        Parameters
        ----------
        *classifiers : Classifier
            Provider-specific classifiers.

        Returns
        -------
        ClassifierChain
            The extended chain (this one is unchanged).
        """
        return ClassifierChain((*classifiers, *self.classifiers), self.default)


default_classifier = ClassifierChain(
    (
        classify_interruptions,
        classify_resilience_errors,
        classify_aws_errors,
        classify_http_status,
        classify_database_errors,
        classify_network_errors,
        classify_validation_errors,
    )
)
"""The library's classifier: extend it per provider with :meth:`ClassifierChain.extended`."""
