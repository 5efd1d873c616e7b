"""The delivery engine over the local runtime: an endpoint outage, isolation of endpoints, channel fallback.

The runtime runs with short breaker waits (see conftest.E2E_ENVIRONMENT) so an outage and its recovery
play out in seconds; the rules are the same as with the defaults.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from local.receiver import WebhookReceiver
from local.settings import DEFAULT_WEBHOOK_SIGNING_SECRET
from resilience import BreakerRegistry, BreakerState, DynamoDBBreakerStore, ResilienceSettings
from tests.e2e.test_notification_flow import call, wait_for_status

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def breakers(herald: RunningHerald) -> BreakerRegistry:
    """The fleet's breakers as an operator sees them: the items in the embedded AWS's resilience table."""
    table = herald.table_name("ResilienceTable")
    return BreakerRegistry(
        settings=ResilienceSettings(table_name=table),
        store=DynamoDBBreakerStore(table, client=herald.client("dynamodb")),
    )


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"channel": "webhook", "recipient": {"webhook_url": url}, "body": "Build 7 passed", **extra}


def accept(herald: RunningHerald, body: dict[str, Any]) -> str:
    status, _, answer = call(herald, "POST", "/notifications", body)
    assert status == 202, answer
    notification_id: str = answer["id"]
    return notification_id


def statuses(herald: RunningHerald, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {notification_id: call(herald, "GET", f"/notifications/{notification_id}")[2] for notification_id in ids}


def wait_until_all(herald: RunningHerald, ids: list[str], wanted: str, timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    views: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        views = statuses(herald, ids)
        if all(view["status"] == wanted for view in views.values()):
            return views
        time.sleep(0.25)
    counts = Counter(view["status"] for view in views.values())
    raise AssertionError(f"not all {wanted} within {timeout} s: {dict(counts)}")


@pytest.fixture
def secret() -> str:
    return DEFAULT_WEBHOOK_SIGNING_SECRET  # the local runtime's ready client signs with it


@pytest.fixture
def failing(secret: str) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=secret) as receiver:
        receiver.status = 503
        yield receiver


@pytest.fixture
def healthy(secret: str) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=secret) as receiver:
        yield receiver


def test_an_endpoint_outage_is_queued_for_later_and_delivered_once_after_recovery(
    herald: RunningHerald, failing: WebhookReceiver, healthy: WebhookReceiver
) -> None:
    # Given: 20 webhooks to an endpoint answering 503
    ids = [accept(herald, webhook(failing.url)) for _ in range(20)]

    # When: the breaker opens and the notifications are deferred
    views = wait_until_all(herald, ids, "deferred", timeout=30)

    # Then: each says why and when it is tried next; the endpoint saw at most 1.5 requests per notification
    assert all(view["reason"].startswith("webhook endpoint unavailable") for view in views.values())
    assert all(view["next_attempt_at"] for view in views.values())
    assert breakers(herald).describe([f"webhook:{failing.url.rsplit('/', 1)[0]}"])[0].state is not BreakerState.CLOSED

    # And while it is down, a second, healthy endpoint keeps getting its notifications within 5 s
    started = time.monotonic()
    other = accept(herald, webhook(healthy.url))
    wait_for_status(herald, other, "sent", timeout=5)
    assert time.monotonic() - started <= 5
    assert len(failing.received) <= 1.5 * len(ids)

    # When: the endpoint recovers
    recovered_at = time.time()
    failing.status = 200
    [status] = breakers(herald).describe([f"webhook:{failing.url.rsplit('/', 1)[0]}"])
    open_left = max((status.next_probe_at or recovered_at) - recovered_at, 0.0)

    # Then: every one is sent within the breaker's remaining open period plus 30 s, each delivered once
    wait_until_all(herald, ids, "sent", timeout=open_left + 30)
    delivered = Counter(r.headers["webhook-id"] for r in failing.received if r.status == 200)
    assert set(delivered) == set(ids)
    assert max(delivered.values()) == 1


def test_a_fallback_channel_takes_over_while_every_email_provider_is_open(
    herald: RunningHerald, healthy: WebhookReceiver
) -> None:
    # Given: both email providers' breakers are open (an operator forced them; the sender sees it within its
    # cache TTL)
    registry = breakers(herald)
    registry.force_open("provider:sendgrid")
    registry.force_open("provider:ses")
    try:
        # The sender trusts its cached breaker state for RESILIENCE_BREAKER_CACHE_TTL_SECONDS (1 s here); an
        # operator's action reaches it after that, and nothing in the runtime can be told to drop the cache.
        time.sleep(1.5)

        # When
        notification_id = accept(
            herald,
            {
                "channel": "email",
                "fallback_channels": ["webhook"],
                "recipient": {"email": "ada@example.com", "webhook_url": healthy.url},
                "subject": "Your code",
                "body": "Your code is 123456",
            },
        )
        view = wait_for_status(herald, notification_id, "sent", timeout=10)
    finally:
        registry.reset("provider:sendgrid")
        registry.reset("provider:ses")

    # Then: it went by webhook, and the status says which channel and why
    assert (view["channel_used"], view["provider"]) == ("webhook", "webhook")
    assert (
        "fallback: email provider unavailable (provider:sendgrid FORCED_OPEN, provider:ses FORCED_OPEN)"
        in view["reason"]
    )
    assert [r.headers["webhook-id"] for r in healthy.received] == [notification_id]
