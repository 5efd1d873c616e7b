"""Validation at the edge: what a notification request must hold, and how bad input is described."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from notifications.models import MAX_DATA_DEPTH, Channel, NotificationRequest, Priority


def valid(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "email",
        "recipient": {"email": "ada@example.com"},
        "subject": "Your code",
        "body": "Your code is 123456",
    }
    body.update(overrides)
    return body


def test_a_minimal_email_request_is_valid_with_defaults() -> None:
    # Given / When
    request = NotificationRequest.model_validate(valid())

    # Then
    assert request.channel is Channel.EMAIL
    assert request.priority is Priority.NORMAL
    assert request.channels == [Channel.EMAIL]


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"channel": "pigeon"}, "channel", "Input should be"),
        ({"recipient": {"email": "not-an-address"}}, "recipient.email", "email"),
        ({"subject": None}, "", "subject is required for channel 'email'"),
        ({"body": "   "}, "body", "at least 1 character"),
        ({"channel": "sms", "recipient": {"phone": "07700900123"}}, "recipient.phone", "E.164"),
        ({"fallback_channels": ["sms"]}, "", "recipient.phone is required for channel 'sms'"),
        ({"fallback_channels": ["email"]}, "", "must not repeat the primary channel"),
        ({"priority": "urgent"}, "priority", "Input should be"),
        ({"metadata": {"order": 42}}, "metadata.order", "string"),
        ({"unexpected": 1}, "unexpected", "Extra inputs"),
        ({"channel": "webhook", "recipient": {"webhook_url": "ftp://x.example/"}}, "recipient.webhook_url", "https"),
        ({"metadata": {"order": {"id": "42"}}}, "metadata.order", "string"),
        ({"data": {"x": float("inf")}}, "data", "finite"),
        ({"data": {"x": [1, {"y": float("-inf")}]}}, "data", "finite"),
        ({"data": {"x": float("nan")}}, "data", "finite"),
        ({"data": {"x": {1: "a"}}}, "data", "keys must be strings"),
        ({"data": {"x": (1, 2)}}, "data", "only JSON values"),
        ({"data": {"x": b"bytes"}}, "data", "only JSON values"),
        ({"data": {"x": "\ud800"}}, "data", "unpaired surrogates"),
        ({"data": {"\udfff": 1}}, "data", "unpaired surrogates"),
        ({"subject": "Hi\r\nBcc: eve@example.com"}, "subject", "no control characters"),
        ({"subject": "\u202eevil"}, "subject", "bidirectional controls"),
        ({"body": "a\x1bb"}, "body", "other than newline and tab"),
    ],
)
def test_invalid_requests_name_the_field_and_the_problem(overrides: dict[str, Any], field: str, fragment: str) -> None:
    # Given
    body = valid(**overrides)

    # When
    with pytest.raises(ValidationError) as caught:
        NotificationRequest.model_validate(body)

    # Then
    problems = {(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()}
    assert any(loc == field and fragment in message for loc, message in problems), problems


def test_fingerprint_ignores_the_idempotency_key_but_not_the_content() -> None:
    # Given
    first = NotificationRequest.model_validate(valid(idempotency_key="a"))
    same_content_other_key = NotificationRequest.model_validate(valid(idempotency_key="b"))
    other_content = NotificationRequest.model_validate(valid(idempotency_key="a", body="Another code"))

    # When / Then
    assert first.fingerprint() == same_content_other_key.fingerprint()
    assert first.fingerprint() != other_content.fingerprint()


def test_data_larger_than_the_limit_is_refused() -> None:
    # Given
    body = valid(data={"blob": "x" * 70_000})

    # When / Then
    with pytest.raises(ValidationError, match="at most 65536 bytes"):
        NotificationRequest.model_validate(body)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://h:99999/x", "port outside 1-65535"),
        ("https://h:0/x", "port outside 1-65535"),
        (f"https://{'a' * 64}.example.com/x", "invalid host name"),
        ("https://exa mple.com/x", "invalid host name"),
    ],
)
def test_a_webhook_url_that_could_never_be_called_is_refused_at_the_edge(url: str, fragment: str) -> None:
    # When
    with pytest.raises(ValidationError) as refused:
        NotificationRequest.model_validate({"channel": "webhook", "recipient": {"webhook_url": url}, "body": "b"})

    # Then: the same rule the sender uses to name the destination's breaker, as a 422 the caller can read
    [error] = refused.value.errors()
    assert error["loc"] == ("recipient", "webhook_url")
    assert fragment in error["msg"]


def nested_data(depth: int) -> dict[str, Any]:
    """`data` nesting `depth` levels of objects and arrays in all (built without recursion)."""
    value: Any = "leaf"
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return {"k": value}


def test_data_may_nest_32_levels_and_its_fingerprint_is_computed() -> None:
    # Given
    at_limit = NotificationRequest.model_validate(valid(data=nested_data(MAX_DATA_DEPTH)))

    # When / Then: the walk the fingerprint makes succeeds, and tells the depth apart
    shallower = NotificationRequest.model_validate(valid(data=nested_data(MAX_DATA_DEPTH - 1)))
    assert at_limit.fingerprint() != shallower.fingerprint()


@pytest.mark.parametrize("depth", [MAX_DATA_DEPTH + 1, 300, 100_000])
def test_data_deeper_than_32_levels_is_refused_without_recursion(depth: int) -> None:
    # Given `data` deeper than any recursive walk could follow (100,000 levels)
    body = valid(data=nested_data(depth))

    # When
    with pytest.raises(ValidationError) as refused:
        NotificationRequest.model_validate(body)

    # Then a validation error naming `data`, not a RecursionError
    [error] = refused.value.errors()
    assert error["loc"] == ("data",)
    assert "at most 32 levels" in error["msg"]


def test_data_that_contains_itself_is_refused_rather_than_walked_forever() -> None:
    # Given
    data: dict[str, Any] = {}
    data["self"] = data

    # When / Then
    with pytest.raises(ValidationError, match="at most 32 levels"):
        NotificationRequest.model_validate(valid(data=data))


def test_subject_and_body_errors_name_the_rule_without_echoing_the_input() -> None:
    # Given
    body = valid(subject="Secret\r\nBcc: eve@example.com", body="Token 9f8e\x00")

    # When
    with pytest.raises(ValidationError) as refused:
        NotificationRequest.model_validate(body)

    # Then
    problems = refused.value.errors(include_input=False)
    assert {error["loc"] for error in problems} == {("subject",), ("body",)}
    messages = " ".join(error["msg"] for error in problems)
    assert "Secret" not in messages and "eve@" not in messages and "9f8e" not in messages
