"""Property: whatever body a client sends, the API answers 202 or a documented 4xx JSON error, never a 5xx."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import events

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

DOCUMENTED = {202, 400, 409, 413, 415, 422}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Bodies near the real shape reach deeper validation than random JSON does.
near_valid = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["email", "webhook", "sms", "push", "fax", 1]),
        "body": st.one_of(st.text(max_size=30), st.none(), st.integers()),
    },
    optional={
        "recipient": st.dictionaries(
            st.sampled_from(["email", "phone", "webhook_url", "device_token", "x"]),
            st.sampled_from(["ada@example.com", "+447700900123", "https://hooks.example.com/x", "", "nope", 5]),
            max_size=3,
        ),
        "subject": st.text(max_size=10),
        "priority": st.sampled_from(["critical", "high", "normal", "low", "urgent"]),
        "fallback_channels": st.lists(st.sampled_from(["email", "sms", "webhook", "x"]), max_size=3),
        "metadata": st.dictionaries(st.text(max_size=70), json_values, max_size=3),
        "data": json_values,
        "idempotency_key": st.one_of(st.text(max_size=10), st.integers()),
    },
)


def assert_documented(response: dict[str, Any]) -> None:
    assert response["statusCode"] in DOCUMENTED, response
    body = json.loads(response["body"])
    if response["statusCode"] != 202:
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(near_valid, json_values))
def test_any_json_body_gets_202_or_a_documented_4xx(herald: Herald, payload: Any) -> None:
    # When
    response = herald.api(events.post_notification(payload))

    # Then
    assert_documented(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_documented_4xx(herald: Herald, raw: bytes) -> None:
    # Given: arbitrary bytes, as API Gateway passes a binary body (base64)
    event = events.post_notification(raw="")
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True

    # When
    response = herald.api(event)

    # Then
    assert_documented(response)


@pytest.mark.parametrize(
    "raw",
    ["[" * 100_000 + "]" * 100_000, '{"channel": "email", "body": "x", "data": {"x": NaN}}', '{"body": Infinity}'],
    ids=["deep-nesting", "nan", "infinity"],
)
def test_deep_nesting_and_non_json_numbers_are_400(herald: Herald, raw: str) -> None:
    # When
    response = herald.api(events.post_notification(raw=raw))

    # Then
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "malformed_json"
