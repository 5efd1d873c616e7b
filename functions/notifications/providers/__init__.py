"""Provider adapters: each speaks to one provider for one channel.

An adapter describes a failure (`notifications.errors.DeliveryError` with the HTTP status, the
provider's code and its Retry-After, or `UndeliverableError` when the notification itself cannot go
this way) and never judges it: `notifications.failures.delivery_classifier` does, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from notifications.models import Channel, NotificationRecord


@dataclass(frozen=True)
class ProviderReceipt:
    """What a provider answered for an accepted delivery."""

    provider: str
    message_id: str | None


class Provider(Protocol):
    """Delivers one notification on one channel, through one circuit breaker per destination."""

    name: str
    channel: Channel

    def breaker_name(self, record: NotificationRecord) -> str:
        """The breaker that guards calls for this record: `provider:<name>`, or one per webhook origin."""
        ...

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        """Deliver, taking at most `timeout` seconds for the whole call, or raise an exception."""
        ...
