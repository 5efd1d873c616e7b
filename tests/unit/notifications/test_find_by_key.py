"""`GET /notifications?idempotency_key=...`: a client finds what its key made, without knowing the id."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.support import events

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code"}


def test_a_client_finds_the_notification_its_key_made(herald: FakeHerald) -> None:
    # Given: a client lost the 202 of a keyed request
    accepted = json.loads(herald.api(events.post_notification({**EMAIL, "idempotency_key": "order-42"}))["body"])

    # When
    found = herald.api(events.find_notification("order-42"))

    # Then
    assert found["statusCode"] == 200
    view = json.loads(found["body"])
    assert (view["id"], view["status"]) == (accepted["id"], "queued")
    assert "recipient" not in view  # the view carries no personal data


def test_another_client_with_the_same_key_finds_nothing(herald: FakeHerald) -> None:
    # Given: client A's key
    herald.api(events.post_notification({**EMAIL, "idempotency_key": "order-42"}, key_id="client-a"))

    # When: client B asks for the same key
    found = herald.api(events.find_notification("order-42", key_id="client-b"))

    # Then: keys are per client
    assert found["statusCode"] == 404
    assert json.loads(found["body"])["error"]["code"] == "not_found"


@pytest.mark.parametrize("key", [None, "", "with space", "x" * 256, "naïve"])
def test_a_missing_or_malformed_key_is_422(herald: FakeHerald, key: str | None) -> None:
    # When
    answer = herald.api(events.find_notification(key))

    # Then
    assert answer["statusCode"] == 422
    assert json.loads(answer["body"])["error"]["details"][0]["field"] == "idempotency_key"
