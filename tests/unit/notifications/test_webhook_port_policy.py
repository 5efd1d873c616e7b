"""Which ports a webhook URL may use: 443, plus WEBHOOK_ALLOWED_PORTS; checked when the request is accepted."""

from __future__ import annotations

import pytest

from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.accept_settings import AcceptSettings
from notifications.errors import InvalidRequest
from notifications.models import Channel, NotificationRequest
from tests.support.clock import FakeClock
from tests.support.fakes import TEST_IDS, FakeEnqueuer, FakeStatusStore

SETTINGS = {
    "NOTIFICATIONS_TABLE": "t",
    "PRIORITY_QUEUE_URL": "q",
    "STANDARD_QUEUE_URL": "q",
    "BATCH_QUEUE_URL": "q",
    "ENABLED_CHANNELS": "webhook",
    "IDEMPOTENCY_SECRET_NAME": "idempotency",
}


def acceptor(ports: frozenset[int]) -> NotificationAcceptor:
    policy = AcceptPolicy(
        enabled_channels=frozenset({Channel.WEBHOOK}),
        allow_private_webhook_targets=False,
        retention_seconds=86_400,
        allowed_webhook_ports=ports,
    )
    return NotificationAcceptor(FakeStatusStore(FakeClock()), FakeEnqueuer(), policy, clock=FakeClock(), ids=TEST_IDS)


def webhook(url: str) -> NotificationRequest:
    return NotificationRequest.model_validate({"channel": "webhook", "recipient": {"webhook_url": url}, "body": "b"})


def test_the_setting_always_holds_443_and_adds_the_ports_it_lists() -> None:
    # When / Then
    assert AcceptSettings.model_validate(SETTINGS).webhook_allowed_ports == {443}
    assert AcceptSettings.model_validate(SETTINGS | {"WEBHOOK_ALLOWED_PORTS": "8443"}).webhook_allowed_ports == {
        443,
        8443,
    }


@pytest.mark.parametrize("value", ["0", "65536", "http"])
def test_a_port_that_is_no_port_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_PORTS"):
        AcceptSettings.model_validate(SETTINGS | {"WEBHOOK_ALLOWED_PORTS": value})


def test_a_webhook_on_a_port_not_allowed_is_refused_when_accepted() -> None:
    # Given: 8443 allowed besides 443
    herald = acceptor(frozenset({443, 8443}))

    # When / Then
    assert herald.accept(webhook("https://hooks.example.com:8443/x"), scope="c").view.status == "queued"
    assert herald.accept(webhook("https://hooks.example.com/x"), scope="c").view.status == "queued"
    with pytest.raises(InvalidRequest) as refused:
        herald.accept(webhook("https://hooks.example.com:8080/x"), scope="c")
    assert refused.value.details == [
        {"field": "recipient.webhook_url", "message": "webhook URL port 8080 is not allowed (allowed: 443, 8443)"}
    ]
