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

from notifications.errors import HeraldError, UndeliverableError
from notifications.providers.ses import classify_ses_error
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
    classify_undeliverable, classify_ses_error, classify_unexpected
)
"""The classifier of every delivery breaker and of every delivery outcome."""
