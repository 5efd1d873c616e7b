"""Over the local runtime: clients made with the admin API are isolated from each other: neither reads the
other's notifications, and each one's webhooks verify only with its own secret (with the Standard Webhooks
library a receiver uses); a rotation signs with both secrets, a revoked key is refused."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from local.receiver import WebhookReceiver
from notifications import signing
from tests.e2e.test_notification_flow import call

if TYPE_CHECKING:
    from collections.abc import Iterator

    from local.receiver import ReceivedWebhook
    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def create_client(herald: RunningHerald, name: str) -> dict[str, Any]:
    status, _, created = call(herald, "POST", "/admin/clients", {"name": name}, {"x-api-key": herald.admin_api_key})
    assert status == 201, created
    # A new key works once the gateway has read it (within about a second, as API Gateway propagates keys)
    deadline = time.monotonic() + 5
    while call(herald, "GET", "/notifications?idempotency_key=probe", headers=as_client(created))[0] == 401:
        assert time.monotonic() < deadline, "the new client's key was not honoured within 5 s"
        time.sleep(0.1)
    return dict(created)


def as_client(client: dict[str, Any]) -> dict[str, str]:
    return {"x-api-key": client["api_key"]}


def verifies(secret: str, webhook: ReceivedWebhook) -> bool:
    try:
        Webhook(secret).verify(webhook.body, webhook.headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    unrelated = signing.SECRET_PREFIX + signing.new_secret_value()["key"]
    with WebhookReceiver(secret=unrelated) as running:  # records every delivery; the test verifies them itself
        yield running


def send_webhook(herald: RunningHerald, client: dict[str, Any], receiver: WebhookReceiver, text: str) -> str:
    body = {"channel": "webhook", "recipient": {"webhook_url": receiver.url}, "body": text}
    status, _, accepted = call(herald, "POST", "/notifications", body, as_client(client))
    assert status == 202, accepted
    return str(accepted["id"])


def delivered(receiver: WebhookReceiver, notification_id: str, timeout: float = 20.0) -> ReceivedWebhook:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [hook for hook in receiver.received if hook.headers.get("webhook-id") == notification_id]
        if found:
            return found[-1]
        time.sleep(0.1)
    pytest.fail(f"no webhook for {notification_id} within {timeout} s")


def test_two_clients_cannot_read_each_others_notifications(herald: RunningHerald) -> None:
    # Given: two clients made by the admin, one of whom sends a keyed notification
    first, second = create_client(herald, "first"), create_client(herald, "second")
    body = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Hi", "body": "Hello"}
    status, _, accepted = call(
        herald, "POST", "/notifications", {**body, "idempotency_key": "isolation-1"}, as_client(first)
    )
    assert status == 202

    # When: the other client looks for it by id and by key, and the owner by id
    by_id = call(herald, "GET", f"/notifications/{accepted['id']}", headers=as_client(second))
    by_key = call(herald, "GET", "/notifications?idempotency_key=isolation-1", headers=as_client(second))
    own = call(herald, "GET", f"/notifications/{accepted['id']}", headers=as_client(first))
    # ... and the second client uses the same idempotency key for its own notification
    theirs = call(herald, "POST", "/notifications", {**body, "idempotency_key": "isolation-1"}, as_client(second))

    # Then: 404 both ways for the other; the owner reads it; the same key is a new notification for the other
    assert (by_id[0], by_key[0], own[0]) == (404, 404, 200)
    assert theirs[0] == 202 and theirs[2]["id"] != accepted["id"]
    assert "Idempotent-Replayed" not in theirs[1]


def test_each_clients_webhooks_verify_only_with_its_own_secret(
    herald: RunningHerald, receiver: WebhookReceiver
) -> None:
    # Given: two clients
    first, second = create_client(herald, "first"), create_client(herald, "second")

    # When: each sends a webhook to the same receiver
    from_first = send_webhook(herald, first, receiver, "from the first")
    from_second = send_webhook(herald, second, receiver, "from the second")
    first_hook, second_hook = delivered(receiver, from_first), delivered(receiver, from_second)

    # Then: each verifies with its client's secret and not with the other's
    assert verifies(first["webhook_signing_secret"], first_hook)
    assert not verifies(second["webhook_signing_secret"], first_hook)
    assert verifies(second["webhook_signing_secret"], second_hook)
    assert not verifies(first["webhook_signing_secret"], second_hook)


def test_a_rotation_signs_with_both_secrets_and_a_revoked_key_is_refused(
    herald: RunningHerald, receiver: WebhookReceiver
) -> None:
    # Given: a client whose secret is rotated
    client = create_client(herald, "rotating")
    admin = {"x-api-key": herald.admin_api_key}
    status, _, rotation = call(herald, "POST", f"/admin/clients/{client['id']}/rotate-signing-secret", None, admin)
    assert status == 200, rotation
    # The runtime's senders keep a client's key for CLIENT_KEY_MAX_AGE_SECONDS (1 s in these tests)
    time.sleep(1.5)

    # When: it sends a webhook, and is then revoked
    hook = delivered(receiver, send_webhook(herald, client, receiver, "after the rotation"))
    revoked = call(herald, "DELETE", f"/admin/clients/{client['id']}", None, admin)
    time.sleep(1.5)  # the gateway reads keys again within a second, as API Gateway propagates them
    refused = call(herald, "GET", "/notifications?idempotency_key=x", headers=as_client(client))

    # Then: the webhook verifies with the old secret and with the new one; the revoked key gets 401
    assert hook.headers["webhook-signature"].count("v1,") == 2
    assert verifies(client["webhook_signing_secret"], hook)
    assert verifies(rotation["webhook_signing_secret"], hook)
    assert revoked[0] == 200
    assert refused[0] == 401


def test_a_client_key_cannot_use_the_admin_api_and_the_admin_key_cannot_send(herald: RunningHerald) -> None:
    # Given
    client = create_client(herald, "plain")
    body = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Hi", "body": "Hello"}

    # When
    listing = call(herald, "GET", "/admin/clients", headers=as_client(client))
    sending = call(herald, "POST", "/notifications", body, {"x-api-key": herald.admin_api_key})

    # Then
    assert (listing[0], sending[0]) == (403, 403)


def test_the_ready_client_still_works_with_the_readme_key(herald: RunningHerald) -> None:
    # Given: the README's first curl, with the runtime's ready key
    body = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Hi", "body": "Hello"}

    # When
    status, _, accepted = call(herald, "POST", "/notifications", body)

    # Then: accepted, and readable by the same key
    assert status == 202
    assert call(herald, "GET", f"/notifications/{accepted['id']}")[0] == 200
