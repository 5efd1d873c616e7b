"""Property: whatever body a client sends, the API answers 202 or a documented 4xx JSON error, never a 5xx.

Bodies include `data` nested past every limit, numbers beyond a 64-bit float, and subjects and bodies with
control, bidirectional and surrogate characters; what is accepted must then be fit to send.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import events

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

DOCUMENTED = {202, 400, 409, 413, 415, 422}
BATCH_DOCUMENTED = {202, 207, 400, 413, 415, 422}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Characters a hostile subject or body holds: controls, line separators, bidi and format controls, surrogates.
odd_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(["\r", "\n", "\t", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u202e", "\u200e"]),
        st.sampled_from(["\u2066", "\u061c", "\ufeff", "\u200d", "\U000e0067"]),
        st.characters(categories=["Cs"]),
    ),
    max_size=20,
)
# Numbers as JSON text, including those Python reads as infinity and the literals that are not JSON.
number_literals = st.one_of(
    st.sampled_from(["1e999", "-1e999", "1E400", "1e308", "-0.0", "1e-999", "123456789012345678901234567890"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
# Bodies near the real shape reach deeper validation than random JSON does.
near_valid = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["email", "webhook", "sms", "push", "fax", 1]),
        "body": st.one_of(st.text(max_size=30), odd_text, st.none(), st.integers()),
    },
    optional={
        "recipient": st.dictionaries(
            st.sampled_from(["email", "phone", "webhook_url", "device_token", "x"]),
            st.sampled_from(["ada@example.com", "+447700900123", "https://hooks.example.com/x", "", "nope", 5]),
            max_size=3,
        ),
        "subject": st.one_of(st.text(max_size=10), odd_text),
        "priority": st.sampled_from(["critical", "high", "normal", "low", "urgent"]),
        "fallback_channels": st.lists(st.sampled_from(["email", "sms", "webhook", "x"]), max_size=3),
        "metadata": st.dictionaries(st.text(max_size=70), json_values, max_size=3),
        "data": st.one_of(json_values, st.dictionaries(st.text(max_size=5), st.floats(), max_size=3)),
        "idempotency_key": st.one_of(st.text(max_size=10), st.integers()),
    },
)


@st.composite
def deep_data(draw: st.DrawFn) -> str:
    """`data` as JSON text nested up to 700 levels (past the parser's 512) of objects and arrays, written
    directly (json.dumps would recurse), around a number literal or odd text."""
    depth = draw(st.one_of(st.integers(0, 40), st.integers(0, 700)))
    shape = draw(st.sampled_from(["objects", "arrays", "alternating"]))
    kinds = [shape == "objects" or (shape == "alternating" and level % 2 == 0) for level in range(depth)]
    leaf = draw(st.one_of(number_literals, odd_text.map(json.dumps), st.just("{}")))
    opens = "".join('{"k":' if is_object else "[" for is_object in kinds)
    closes = "".join("}" if is_object else "]" for is_object in reversed(kinds))
    return opens + leaf + closes


# Notifications valid but for what is drawn into them, so that `data`, subject and body rules are reached.
valid_shaped = st.fixed_dictionaries(
    {
        "channel": st.just("email"),
        "recipient": st.just({"email": "ada@example.com"}),
        "subject": st.one_of(st.just("Your code"), odd_text),
        "body": st.one_of(st.just("Your code is 1"), odd_text),
    }
) | st.fixed_dictionaries(
    {
        "channel": st.just("webhook"),
        "recipient": st.just({"webhook_url": "https://hooks.example.com/x"}),
        "body": st.one_of(st.just("Hello"), odd_text),
    }
)


@st.composite
def raw_notifications(draw: st.DrawFn) -> str:
    """One notification as JSON text, near or at the real shape, with deep or odd `data` spelled as text."""
    payload = {key: value for key, value in draw(st.one_of(valid_shaped, near_valid)).items() if key != "data"}
    member = f'"data": {draw(deep_data())}'
    encoded = json.dumps(payload)
    return "{" + member + "}" if encoded == "{}" else encoded[:-1] + ", " + member + "}"


# What no accepted subject holds (an oracle apart from the model's own patterns): controls, line separators,
# unpaired surrogates, bidirectional controls and the byte order mark.
BIDI_CONTROLS = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def unfit_for_a_subject(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Cs", "Zl", "Zp"} or char in BIDI_CONTROLS or char == "\ufeff"


def unfit_for_a_body(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Cs"} and char not in "\n\t"


def assert_fit_to_send(herald: Herald, response: dict[str, Any]) -> None:
    """An accepted notification holds only what a receiver can read: finite JSON `data`, clean subject and body."""
    record = herald.store.get(json.loads(response["body"])["id"])
    assert record is not None
    json.dumps(record.data, allow_nan=False)  # ValueError on NaN or infinity
    assert not any(map(unfit_for_a_subject, record.subject or "")), ascii(record.subject)
    assert not any(map(unfit_for_a_body, record.body)), ascii(record.body)


def assert_error_shape(body: Any) -> None:
    """`{"error": {"code", "message", "details"?}}`, each detail an object naming its field."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if "details" in error:
        assert error["details"] and all(isinstance(detail, dict) for detail in error["details"])
        assert all(isinstance(detail.get("field"), str) for detail in error["details"]), error


def assert_documented(response: dict[str, Any]) -> None:
    assert response["statusCode"] in DOCUMENTED, response
    body = json.loads(response["body"])
    if response["statusCode"] != 202:
        assert_error_shape(body)


def assert_batch_documented(response: dict[str, Any], sent: int) -> None:
    assert response["statusCode"] in BATCH_DOCUMENTED, response
    body = json.loads(response["body"])
    if "error" in body and "results" not in body:  # the envelope was refused
        assert response["statusCode"] in {400, 413, 415, 422}
        assert_error_shape(body)
        return
    if "error" in body:  # none accepted: 422, the error beside the results
        assert (response["statusCode"], body["accepted"], body["error"]["code"]) == (422, 0, "batch_rejected")
        assert_error_shape({"error": body["error"]})
    assert body["accepted"] + body["rejected"] == len(body["results"]) == sent
    for index, result in enumerate(body["results"]):
        assert result["index"] == index
        if "error" in result:
            assert_error_shape({"error": result["error"]})
        else:
            assert isinstance(result["id"], str) and result["status"] == "queued"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(near_valid, json_values))
def test_any_json_body_gets_202_or_a_documented_4xx(herald: Herald, payload: Any) -> None:
    # When
    response = herald.api(events.post_notification(payload))

    # Then
    assert_documented(response)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_notifications())
def test_deep_or_odd_data_and_hostile_text_get_202_or_a_documented_4xx(herald: Herald, raw: str) -> None:
    # When: `data` nested past every limit, numbers beyond a float, controls and surrogates in subject and body
    response = herald.api(events.post_notification(raw=raw))

    # Then
    assert_documented(response)
    if response["statusCode"] == 202:
        assert_fit_to_send(herald, response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.one_of(raw_notifications(), json_values.map(json.dumps)), min_size=1, max_size=4))
def test_any_batch_gets_202_207_or_a_documented_4xx_with_each_error_in_shape(herald: Herald, items: list[str]) -> None:
    # When
    response = herald.api(events.post_batch(raw='{"notifications": [' + ",".join(items) + "]}"))

    # Then
    assert_batch_documented(response, sent=len(items))


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
