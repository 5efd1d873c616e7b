"""Over the local runtime: two API keys are two clients, and neither can read the other's notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_notification_flow import call

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def test_a_client_cannot_read_another_clients_notification(herald: RunningHerald) -> None:
    # Given: the ready client's keyed notification (the runtime's second key, the admin's, is another client)
    body = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Hi", "body": "Hello"}
    status, _, accepted = call(herald, "POST", "/notifications", {**body, "idempotency_key": "isolation-1"})
    assert status == 202
    other = {"x-api-key": herald.admin_api_key}

    # When
    by_id = call(herald, "GET", f"/notifications/{accepted['id']}", headers=other)
    by_key = call(herald, "GET", "/notifications?idempotency_key=isolation-1", headers=other)
    own = call(herald, "GET", f"/notifications/{accepted['id']}")

    # Then: the other client gets 404 both ways; the owner reads it
    assert (by_id[0], by_key[0], own[0]) == (404, 404, 200)
