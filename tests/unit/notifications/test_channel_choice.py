"""The one rule that picks a delivery channel: the primary, else the fallbacks in order."""

from __future__ import annotations

from typing import Any

from notifications.delivery import choose_channel
from notifications.models import Channel, NotificationRecord, Recipient
from tests.support.records import make_record


def record(channel: Channel, fallbacks: list[Channel]) -> NotificationRecord:
    every_address = Recipient(email="ada@example.com", phone="+447700900123", webhook_url="https://hooks.example.com/x")
    return make_record(channel=channel, fallback_channels=fallbacks, recipient=every_address, subject="s")


PROVIDER: Any = object()


def test_the_primary_channel_wins_when_it_has_a_provider() -> None:
    # Given / When
    chosen = choose_channel(
        record(Channel.EMAIL, [Channel.WEBHOOK]), {Channel.EMAIL: PROVIDER, Channel.WEBHOOK: PROVIDER}
    )

    # Then
    assert chosen is Channel.EMAIL


def test_the_first_fallback_with_a_provider_is_taken_in_order() -> None:
    # Given: no sms provider, so the request's order decides between the rest
    request = record(Channel.SMS, [Channel.WEBHOOK, Channel.EMAIL])

    # When
    chosen = choose_channel(request, {Channel.EMAIL: PROVIDER, Channel.WEBHOOK: PROVIDER})

    # Then
    assert chosen is Channel.WEBHOOK


def test_no_channel_with_a_provider_gives_none() -> None:
    # When / Then
    assert choose_channel(record(Channel.SMS, [Channel.PUSH]), {Channel.EMAIL: PROVIDER}) is None
