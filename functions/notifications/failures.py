"""One failure model: every exception a provider call raises is judged here, and only here.

The verdict (`ErrorClass`) decides both what the breaker counts and what happens to the notification:

* TRANSIENT: the provider failed or is overloaded. The breaker counts a failure; the notification is
  retried with backoff, and ends `dead_lettered` once its receives are used up.
* PERMANENT: this notification cannot be delivered this way (no address, a refused target, a 4xx
  about the request). The breaker ignores it (the provider answered correctly); the notification
  ends `failed`, not retried.
* IGNORED: no verdict (our own breaker refusing the call). Not counted; retried later.

`delivery_classifier` is the resilience library's `default_classifier` (network errors, HTTP
statuses, AWS errors) extended with the domain's rules and each provider's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifications.errors import DeliveryError, HeraldError, NothingSent, UndeliverableError
from notifications.providers.fcm import classify_fcm_error
from notifications.providers.sendgrid import classify_sendgrid_error
from notifications.providers.ses import classify_ses_error
from notifications.providers.sns import classify_sns_error
from notifications.providers.twilio import classify_twilio_error
from resilience import ErrorClass, default_classifier

if TYPE_CHECKING:
    from resilience import ClassifierChain


def classify_undeliverable(error: BaseException) -> ErrorClass | None:
    """No address for the channel, a refused webhook target: permanent."""
    return ErrorClass.PERMANENT if isinstance(error, UndeliverableError) else None


def classify_unexpected(error: BaseException) -> ErrorClass | None:
    """A `ValueError` nobody raised on purpose (a bad port in a URL, an IDNA error, a bug) is transient.

    The library's default calls every `ValueError` a permanent validation error, which is right for
    input we validated; inside a provider call it is more likely our own bug or a provider quirk, so it
    is retried, and once the receives are used up the notification ends `dead_lettered`, redrivable
    after a fix, rather than `failed` for good.
    """
    if isinstance(error, ValueError) and not isinstance(error, HeraldError):
        return ErrorClass.TRANSIENT
    return None


delivery_classifier: ClassifierChain = default_classifier.extended(
    classify_undeliverable,
    classify_ses_error,
    classify_sendgrid_error,
    classify_twilio_error,
    classify_fcm_error,
    classify_sns_error,
    classify_unexpected,
)
"""The classifier of every delivery breaker and of every delivery outcome."""


# Failures that happen before a request reaches the provider: it cannot have delivered anything.
_NOTHING_SENT = frozenset(
    {
        "NewConnectionError",  # urllib3: connection refused, unreachable
        "NameResolutionError",  # urllib3: the host name did not resolve
        "ConnectTimeoutError",  # urllib3 and botocore: no connection within the timeout
        "EndpointConnectionError",  # botocore: could not connect
        "ConnectionRefusedError",
    }
)


def surely_not_delivered(error: BaseException) -> bool:
    """Whether the provider certainly did not take the notification, so another may send it at once.

    True when the provider answered with an error status (it refused the request) or no request
    reached it (no connection, no credentials). False after a timeout or a connection lost mid-answer:
    the provider may have accepted it, and a second provider would send a second copy.
    """
    if isinstance(error, UndeliverableError):
        return False  # nothing to do with the provider: no other provider helps
    if isinstance(error, NothingSent) or (isinstance(error, DeliveryError) and error.status_code is not None):
        return True
    seen: BaseException | None = error
    while seen is not None:
        if type(seen).__name__ in _NOTHING_SENT:
            return True
        seen = seen.__cause__
    return False
