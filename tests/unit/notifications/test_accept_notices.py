"""What a caller is told beside a 202 while a channel is not fully well (the monitor's notice), and what a 503
says when Herald cannot reach its store or queues: plain words, and when to retry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import events
from tests.support.fakes import health_snapshot

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hello"}
EMAIL_NOTICE = (
    "Email is delayed: both email providers are failing; your message is queued and will be sent when one recovers"
)


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def store_snapshot(herald: Herald, *, mode: str, age: float = 20.0) -> None:
    herald.health.snapshots.stored = health_snapshot(
        herald.health.clock() - age, mode=mode, reason="email has no provider left", notices={"email": EMAIL_NOTICE}
    )


def test_an_accepted_notification_carries_its_channels_notice_while_the_mode_is_not_normal(herald: Herald) -> None:
    # Given a degraded snapshot with a notice for email
    store_snapshot(herald, mode="DEGRADED")

    # When an email and a webhook notification are accepted
    email = herald.api(events.post_notification(EMAIL))
    webhook = herald.api(events.post_notification(WEBHOOK))

    # Then the email's 202 says what its delay means; the webhook's, whose channel has no notice, says nothing
    assert email["statusCode"] == webhook["statusCode"] == 202
    assert body_of(email)["notice"] == EMAIL_NOTICE
    assert "notice" not in body_of(webhook)


def test_a_replay_carries_the_notice_too(herald: Herald) -> None:
    # Given a notification accepted while all was well
    keyed = events.post_notification({**EMAIL, "idempotency_key": "order-1"})
    first = body_of(herald.api(keyed))

    # When the same request is sent again once email is degraded
    store_snapshot(herald, mode="DEGRADED")
    again = herald.api(keyed)

    # Then the replay is the same notification, with the notice of how things stand now
    assert body_of(again) == {**first, "notice": EMAIL_NOTICE}
    assert again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]


@pytest.mark.parametrize(("mode", "age"), [("NORMAL", 20.0), ("DEGRADED", 181.0)], ids=["normal", "stale"])
def test_no_notice_in_normal_mode_or_from_a_stale_snapshot(herald: Herald, mode: str, age: float) -> None:
    # Given a snapshot with a notice for email, but NORMAL, or older than it is trusted for
    store_snapshot(herald, mode=mode, age=age)

    # When
    response = herald.api(events.post_notification(EMAIL))

    # Then
    assert response["statusCode"] == 202
    assert "notice" not in body_of(response)


def test_each_accepted_item_of_a_batch_whose_channel_has_a_notice_carries_it(herald: Herald) -> None:
    # Given a partial snapshot with a notice for email
    store_snapshot(herald, mode="PARTIAL")

    # When a batch of an email, a webhook and an invalid notification is sent
    response = herald.api(events.post_batch([EMAIL, WEBHOOK, {"channel": "email"}]))

    # Then the email's result carries the notice, the webhook's and the rejected one's do not; one read served all
    assert response["statusCode"] == 207
    results = body_of(response)["results"]
    assert results[0]["notice"] == EMAIL_NOTICE
    assert "notice" not in results[1] and "notice" not in results[2]
    assert herald.health.snapshots.reads == 1


@pytest.mark.parametrize(
    ("down", "words"),
    [
        (
            "queues",
            "Herald cannot reach its delivery queues (SQS) right now, so nothing was accepted; retry in 5 seconds.",
        ),
        (
            "store",
            "Herald cannot reach its notification store (DynamoDB) right now, so nothing was accepted;"
            " retry in 5 seconds.",
        ),
    ],
)
def test_a_503_says_what_herald_cannot_reach_and_when_to_retry(herald: Herald, down: str, words: str) -> None:
    # Given the queues, or the store, unreachable
    if down == "queues":
        herald.enqueuer.unavailable = True
    else:
        herald.store.unavailable = True

    # When a notification and a batch are sent
    single = herald.api(events.post_notification(EMAIL))
    batch = herald.api(events.post_batch([EMAIL]))

    # Then both are 503 with Retry-After, saying so in plain words
    for response in (single, batch):
        assert response["statusCode"] == 503
        assert response["multiValueHeaders"]["Retry-After"] == ["5"]
        assert body_of(response)["error"] == {"code": "service_unavailable", "message": words}
