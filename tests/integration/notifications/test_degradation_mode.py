"""The degradation mode seam: the mode stored in the resilience table decides what the sender attempts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from resilience.mode import MODE_ATTRIBUTE, MODE_PARTITION_KEY, MODE_SORT_KEY, Mode, ModeReader
from tests.support import events
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from local.receiver import WebhookReceiver
    from tests.integration.notifications.conftest import Herald


def store_mode(herald: Herald, mode: str) -> None:
    """What the health monitor will write."""
    herald.session.client("dynamodb").put_item(
        TableName=herald.env["RESILIENCE_TABLE"],
        Item={"pk": {"S": MODE_PARTITION_KEY}, "sk": {"S": MODE_SORT_KEY}, MODE_ATTRIBUTE: {"S": mode}},
    )


def accept(herald: Herald, receiver: WebhookReceiver, priority: str) -> str:
    body: dict[str, Any] = {
        "channel": "webhook",
        "recipient": {"webhook_url": receiver.url},
        "body": "b",
        "priority": priority,
    }
    response = herald.api(events.post_notification(body))
    assert response["statusCode"] == 202
    notification_id: str = json.loads(response["body"])["id"]
    return notification_id


def status(herald: Herald, notification_id: str) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(herald.api(events.get_notification(notification_id))["body"])
    return view


def test_in_degraded_mode_low_priority_waits_and_the_rest_goes(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given
    store_mode(herald, "DEGRADED")
    low, normal = accept(herald, receiver, "low"), accept(herald, receiver, "normal")

    # When
    herald.sender(events.sqs_batch([events.queue_message(low), events.queue_message(normal)]))

    # Then
    assert status(herald, low)["status"] == "deferred"
    assert status(herald, low)["reason"] == "service mode DEGRADED: low-priority notifications wait"
    assert status(herald, normal)["status"] == "sent"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(None, Mode.NORMAL), ("CRITICAL", Mode.CRITICAL), ("garbage", Mode.NORMAL)],
    ids=["none-stored", "critical", "unknown-value"],
)
def test_the_mode_reader_falls_back_to_normal(herald: Herald, stored: str | None, expected: Mode) -> None:
    # Given
    if stored is not None:
        store_mode(herald, stored)
    reader = ModeReader(herald.env["RESILIENCE_TABLE"], herald.session.client("dynamodb"))

    # When / Then
    assert reader.current() is expected


def test_the_mode_is_read_once_per_cache_lifetime_and_an_unreadable_table_means_normal(herald: Herald) -> None:
    # Given
    store_mode(herald, "DEGRADED")
    clock = FakeClock()
    reader = ModeReader(herald.env["RESILIENCE_TABLE"], herald.session.client("dynamodb"), clock=clock, ttl_seconds=10)
    assert reader.current() is Mode.DEGRADED

    # When: the mode changes, but the cache still holds
    store_mode(herald, "CRITICAL")
    cached = reader.current()
    clock.advance(10)
    refreshed = reader.current()
    missing = ModeReader("no-such-table", herald.session.client("dynamodb"), clock=clock).current()

    # Then
    assert (cached, refreshed, missing) == (Mode.DEGRADED, Mode.CRITICAL, Mode.NORMAL)
