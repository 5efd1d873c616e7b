"""Provider adapters: each speaks to one provider and raises DeliveryError(permanent=...) on failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from notifications.models import NotificationRecord


@dataclass(frozen=True)
class ProviderReceipt:
    """What a provider answered for an accepted delivery."""

    provider: str
    message_id: str | None


class Provider(Protocol):
    """Delivers one notification on one channel."""

    name: str

    def send(self, record: NotificationRecord) -> ProviderReceipt:
        """Deliver or raise `notifications.errors.DeliveryError`."""
        ...
