"""A notification belongs to the client that created it: another client cannot read it, even knowing its id."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.support import events
from tests.support.fakes import TEST_IDS
from tests.support.records import make_record

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code"}


def test_another_client_gets_404_for_an_id_it_computed(herald: FakeHerald) -> None:
    # Given: client A's keyed notification, whose id client B has somehow learned
    created = herald.api(events.post_notification({**EMAIL, "idempotency_key": "order-42"}, key_id="client-a"))
    notification_id = json.loads(created["body"])["id"]
    assert notification_id == TEST_IDS.for_key("client-a", "order-42")

    # When
    as_b = herald.api(_get(notification_id, key_id="client-b"))
    as_a = herald.api(_get(notification_id, key_id="client-a"))

    # Then: B learns nothing, not even that it exists; A reads it
    assert as_b["statusCode"] == 404
    assert json.loads(as_b["body"]) == {"error": {"code": "not_found", "message": "no notification with this id"}}
    assert as_a["statusCode"] == 200


def test_a_record_without_an_owner_is_readable_by_no_client(herald: FakeHerald) -> None:
    # Given: a record stored before records had owners
    herald.store.put(make_record(id="n-old"))

    # When / Then
    assert herald.api(_get("n-old", key_id="k7v2n4p8q1"))["statusCode"] == 404


def test_the_created_record_names_its_client(herald: FakeHerald) -> None:
    # When
    created = herald.api(events.post_notification(EMAIL, key_id="client-a"))

    # Then
    record = herald.store.get(json.loads(created["body"])["id"])
    assert record is not None
    assert record.client == "client-a"


def _get(notification_id: str, *, key_id: str) -> dict[str, object]:
    event = events.get_notification(notification_id)
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    return event
