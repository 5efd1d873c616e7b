"""The messages the sandbox's providers accepted, as `GET /_messages` lists them."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class SentMessage:
    """One accepted message: who it went to, what it said, the provider's id for it and what was answered."""

    provider: str
    notification_id: str | None
    message_id: str
    to: str
    subject: str | None
    body: str | None
    at: str  # ISO 8601, UTC
    status: int


def iso_time(epoch_seconds: float) -> str:
    """`2026-11-29T10:00:00.000Z`."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MessageLog:
    """Every accepted message in order, under a lock."""

    def __init__(self) -> None:
        self._messages: list[SentMessage] = []
        self._lock = threading.Lock()

    def add(self, message: SentMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def matching(self, provider: str | None = None, notification_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            messages = list(self._messages)
        return [
            asdict(message)
            for message in messages
            if (provider is None or message.provider == provider)
            and (notification_id is None or message.notification_id == notification_id)
        ]

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._messages)
            self._messages.clear()
            return cleared
