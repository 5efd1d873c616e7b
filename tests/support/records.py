"""A status record for tests that need one without going through the API: change only what matters."""

from __future__ import annotations

from typing import Any

from notifications.models import Channel, NotificationRecord, Priority, Recipient, Status


def make_record(**overrides: Any) -> NotificationRecord:
    """A queued webhook notification; every field can be overridden by keyword."""
    fields: dict[str, Any] = {
        "id": "n-1",
        "status": Status.QUEUED,
        "channel": Channel.WEBHOOK,
        "recipient": Recipient(webhook_url="https://hooks.example.com/x"),
        "body": "hello",
        "priority": Priority.NORMAL,
        "fingerprint": "f",
        "queue": "standard",
        "created_at": "2026-11-29T03:00:00.000Z",
        "updated_at": "2026-11-29T03:00:00.000Z",
        "expires_at": 1_900_000_000,
    }
    fields.update(overrides)
    return NotificationRecord(**fields)
