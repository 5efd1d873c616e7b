"""Input limits through the real API handler (and the ingest function): what a hostile body gets instead of a 500.

Found in a security review: `data` nested 256 levels passed validation and made the fingerprint raise (a 500);
`1e999` was read as infinity and sent on to webhook receivers as the non-JSON `Infinity`; subjects took
`\\r\\nBcc:`, NUL, ESC and U+202E.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.errors import MalformedJson
from notifications.ingest import Ingested, Ingestor
from notifications.models import MAX_DATA_DEPTH, Channel, NotificationRequest
from notifications.requests import MAX_JSON_DEPTH, SQS_MAX_MESSAGE_BYTES, json_object, nesting_depth
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.fakes import TEST_IDS, FakeEnqueuer, FakeStatusStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.unit.notifications.conftest import FakeHerald as Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hello"}


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def nested(depth: int, leaf: Any = 1) -> Any:
    """`depth` levels of objects and arrays, alternating, around `leaf` (built without recursion)."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def nested_object(depth: int) -> dict[str, Any]:
    """`depth` levels with an object outermost, as `data` must be."""
    return {"k": nested(depth - 1)}


def nested_text(depth: int, leaf: str = "1") -> str:
    """The JSON text of `depth` alternating levels, written directly (json.dumps would recurse)."""
    opens = ['{"k":' if level % 2 else "[" for level in range(depth)]
    closes = ["}" if level % 2 else "]" for level in range(depth)]
    return "".join(reversed(opens)) + leaf + "".join(closes)


def data_text(depth: int) -> str:
    """A `data` object nesting `depth` levels in all, itself the first, as JSON text."""
    return '{"k":' + nested_text(depth - 1) + "}"


def raw_with_data(base: dict[str, Any], data_text: str) -> str:
    """`base` as JSON with a `data` member spelled exactly as given (a literal such as 1e999 survives)."""
    return json.dumps(base)[:-1] + f', "data": {data_text}}}'


def error_fields(response: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in body_of(response)["error"].get("details", [])}


def nothing_queued(herald: Herald) -> bool:
    return herald.enqueuer.sent == [] and herald.store.count() == 0


# ---------------------------------------------------------------------- nesting
@pytest.mark.parametrize("depth", [MAX_DATA_DEPTH + 1, 256, MAX_JSON_DEPTH - 2], ids=["33", "256-as-reported", "510"])
def test_data_nested_deeper_than_32_levels_is_a_422_naming_data(herald: Herald, depth: int) -> None:
    # Given `data` nested `depth` levels (the body one more), within what the parser reads
    event = events.post_notification(raw=raw_with_data(WEBHOOK, data_text(depth)))
    assert nesting_depth(event["body"]) == depth + 1

    # When
    response = herald.api(event)

    # Then a 422 that names `data` (it was a 500: the fingerprint raised), and nothing is kept or queued
    assert response["statusCode"] == 422
    assert error_fields(response) == {"data"}
    assert "at most 32 levels" in response["body"]
    assert nothing_queued(herald)


def test_data_nested_exactly_32_levels_is_accepted_and_kept_whole(herald: Herald) -> None:
    # Given `data` at the limit: 32 levels of objects and arrays, `data` itself the first
    data = nested_object(MAX_DATA_DEPTH)

    # When
    response = herald.api(events.post_notification({**WEBHOOK, "data": data}))

    # Then
    assert response["statusCode"] == 202
    record = herald.store.get(body_of(response)["id"])
    assert record is not None and record.data == data


def test_a_batch_notification_with_data_too_deep_is_rejected_alone_with_its_field_path(herald: Herald) -> None:
    # Given a batch whose second notification's `data` nests as deep as a batch body lets it (512 levels in all)
    deep = data_text(MAX_JSON_DEPTH - 3)
    raw = '{"notifications": [' + json.dumps(WEBHOOK) + "," + raw_with_data(WEBHOOK, deep) + "]}"
    assert nesting_depth(raw) == MAX_JSON_DEPTH

    # When
    response = herald.api(events.post_batch(raw=raw))

    # Then the first is accepted, the second refused on its own (not a 500 from re-encoding it)
    assert response["statusCode"] == 207
    results = body_of(response)["results"]
    assert "id" in results[0]
    assert {d["field"] for d in results[1]["error"]["details"]} == {"notifications[1].data"}


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        "[" * 100_000,
        '{"a":' * 20_000 + "1" + "}" * 20_000,
        nested_text(MAX_JSON_DEPTH + 1),
        '{"channel": "email", "data": ' + nested_text(MAX_JSON_DEPTH) + "}",
    ],
    ids=["arrays-100k", "unclosed-100k", "objects-20k", "513", "data-inside-513"],
)
def test_a_body_nested_beyond_the_parsers_limit_is_a_400_before_it_is_parsed(herald: Herald, raw: str) -> None:
    # When
    response = herald.api(events.post_notification(raw=raw))

    # Then refused by the scan that runs before the (recursive) parser, never a RecursionError's 500
    assert response["statusCode"] == 400
    error = body_of(response)["error"]
    assert error == {"code": "malformed_json", "message": error["message"]}
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def test_a_body_nested_to_the_parsers_limit_is_read_and_judged_by_its_fields(herald: Herald) -> None:
    # Given a body exactly as deep as the parser reads, the depth in a field that is not a notification's
    raw = json.dumps(EMAIL)[:-1] + ', "extra": ' + nested_text(MAX_JSON_DEPTH - 1) + "}"

    # When
    response = herald.api(events.post_notification(raw=raw))

    # Then validated like any other body: a 422 naming the field
    assert response["statusCode"] == 422
    assert error_fields(response) == {"extra"}


def test_brackets_inside_strings_are_text_not_nesting(herald: Herald) -> None:
    # Given a body whose text holds 1,200 opening brackets between escaped quotes and backslashes
    text = '[{"\\' * 600
    assert nesting_depth(json.dumps({**EMAIL, "body": text})) == 2  # the body and its recipient

    # When
    response = herald.api(events.post_notification({**EMAIL, "body": text}))

    # Then
    assert response["statusCode"] == 202


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[{{{{", "b": ["\\"]]]"]}', 2),
        ('["\\\\", [[]]]', 3),
        ('"unterminated [[[[', 0),
        ("[[[", 3),
    ],
)
def test_nesting_depth_counts_only_structure(text: str, depth: int) -> None:
    # When / Then
    assert nesting_depth(text) == depth


def test_nesting_depth_takes_linear_time_on_an_unterminated_string_of_escaped_quotes() -> None:
    # Given the largest inbound message: one unterminated string of escaped quotes, where a string pattern that
    # retried from every quote would take minutes
    text = '"' + '\\"' * (SQS_MAX_MESSAGE_BYTES // 2 - 1)

    # When
    started = time.perf_counter()
    depth = nesting_depth(text)
    elapsed = time.perf_counter() - started

    # Then
    assert depth == 0
    assert elapsed < 2.0


# ---------------------------------------------------------------------- numbers
@pytest.mark.parametrize("literal", ["1e999", "-1e999", "1E400", "-2.5e+309", "1" + "0" * 400 + ".0"])
def test_a_number_beyond_a_64_bit_float_is_a_400_and_never_reaches_a_receiver(herald: Herald, literal: str) -> None:
    # Given a number that Python reads as infinity (and would write back as the non-JSON `Infinity`)
    raw = raw_with_data(WEBHOOK, '{"amount": ' + literal + "}")

    # When
    response = herald.api(events.post_notification(raw=raw))

    # Then refused as the body's text, like the NaN and Infinity literals, without echoing the number
    assert response["statusCode"] == 400
    error = body_of(response)["error"]
    assert error["code"] == "malformed_json"
    assert "64-bit float" in error["message"] and literal not in error["message"]
    assert nothing_queued(herald)


def test_a_batch_holding_an_infinite_number_is_refused_whole(herald: Herald) -> None:
    # Given
    raw = '{"notifications": [' + json.dumps(WEBHOOK) + "," + raw_with_data(WEBHOOK, '{"x": -1e999}') + "]}"

    # When
    response = herald.api(events.post_batch(raw=raw))

    # Then
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "malformed_json"
    assert nothing_queued(herald)


@pytest.mark.parametrize(
    ("literal", "value"), [("1.7976931348623157e308", 1.7976931348623157e308), ("1e-999", 0.0), ("-0.0", -0.0)]
)
def test_finite_extremes_are_accepted_as_numbers(herald: Herald, literal: str, value: float) -> None:
    # When
    response = herald.api(events.post_notification(raw=raw_with_data(WEBHOOK, '{"x": ' + literal + "}")))

    # Then
    assert response["statusCode"] == 202
    record = herald.store.get(body_of(response)["id"])
    assert record is not None and record.data == {"x": value}


# ---------------------------------------------------------------------- subject and body
# One example of each subject rule: an error body that is the same for any subject breaking the rule echoes none.
SUBJECT_RULES = {"control": ("x\x00", "no control characters"), "format": ("x\u202e", "bidirectional controls")}


@pytest.mark.parametrize(
    ("subject", "rule"),
    [
        ("Hi\r\nBcc: eve@example.com", "control"),
        ("Hi\nBcc: eve@example.com", "control"),
        ("Hi\r\n", "control"),  # trailing: refused, not silently stripped
        ("Tab\there", "control"),
        ("Nul\x00here", "control"),
        ("Esc\x1b[31mred", "control"),
        ("Del\x7fhere", "control"),
        ("Next\x85row", "control"),
        ("Csi\x9b31m", "control"),
        ("Para\u2028graph", "control"),
        ("Invoice \u202efdp.exe", "format"),
        ("Left\u200eright", "format"),
        ("Right\u200fleft", "format"),
        ("Arabic\u061cmark", "format"),
        ("Embed\u202aded", "format"),
        ("Isolate\u2066d\u2069", "format"),
        ("Bom\ufeffhere", "format"),
    ],
    ids=ascii,
)
def test_a_subject_with_control_or_bidi_characters_is_a_422_naming_subject(
    herald: Herald, subject: str, rule: str
) -> None:
    # Given
    example, fragment = SUBJECT_RULES[rule]
    example_response = herald.api(events.post_notification({**EMAIL, "subject": example}))

    # When
    response = herald.api(events.post_notification({**EMAIL, "subject": subject}))

    # Then the rule is named, nothing of the input is echoed, and nothing is sent
    assert response["statusCode"] == 422
    assert error_fields(response) == {"subject"}
    assert fragment in body_of(response)["error"]["details"][0]["message"]
    assert response["body"] == example_response["body"]
    assert nothing_queued(herald)


@pytest.mark.parametrize(
    "subject",
    [
        "Café résumé naïve",
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467",  # zero-width joiners
        "Flag \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tag characters
        "می\u200cخواهم",  # Persian with a zero-width non-joiner
        "שלום עולם",  # right-to-left text needs no control characters
        "soft\u00adhyphen",
    ],
)
def test_a_subject_in_any_script_with_emoji_is_accepted(herald: Herald, subject: str) -> None:
    # When
    response = herald.api(events.post_notification({**EMAIL, "subject": subject}))

    # Then
    assert response["statusCode"] == 202
    record = herald.store.get(body_of(response)["id"])
    assert record is not None and record.subject == subject


@pytest.mark.parametrize(
    "body", ["a\rb", "a\r\nb", "a\x00b", "a\x1b[2Jb", "a\x7fb", "a\x85b", "a\x0bb", "a\x0cb"], ids=ascii
)
def test_a_body_with_control_characters_other_than_newline_and_tab_is_a_422_naming_body(
    herald: Herald, body: str
) -> None:
    # When
    response = herald.api(events.post_notification({**EMAIL, "body": body}))

    # Then
    assert response["statusCode"] == 422
    assert error_fields(response) == {"body"}
    assert "other than newline and tab" in response["body"]
    assert nothing_queued(herald)


def test_a_body_keeps_its_newlines_tabs_and_bidi_marks(herald: Herald) -> None:
    # Given multi-line text with a tab and right-to-left marks, as a body may hold
    body = "Line one\n\tindented\nمرحبا \u200fworld"

    # When
    response = herald.api(events.post_notification({**EMAIL, "body": body}))

    # Then
    assert response["statusCode"] == 202
    record = herald.store.get(body_of(response)["id"])
    assert record is not None and record.body == body


@pytest.mark.parametrize("field_name", ["subject", "body", "data"])
def test_an_unpaired_surrogate_is_a_422_naming_its_field(herald: Herald, field_name: str) -> None:
    # Given JSON that spells an unpaired surrogate (valid JSON text, but not Unicode that UTF-8 can carry)
    value = '{"note": "x\\ud800y"}' if field_name == "data" else '"x\\ud800y"'
    base = {k: v for k, v in EMAIL.items() if k != field_name}
    raw = json.dumps(base)[:-1] + f', "{field_name}": {value}}}'

    # When
    response = herald.api(events.post_notification(raw=raw))

    # Then
    assert response["statusCode"] == 422
    assert error_fields(response) == {field_name}
    assert "unpaired surrogates" in response["body"]


# ---------------------------------------------------------------------- the shared parser, and the ingest function
def test_the_parser_refuses_depth_and_infinity_with_malformed_json() -> None:
    # When / Then: the one parser the API and the ingest function share
    with pytest.raises(MalformedJson, match="deeper than"):
        json_object("[" * 100_000, SQS_MAX_MESSAGE_BYTES)
    with pytest.raises(MalformedJson, match="64-bit float"):
        json_object('{"x": 1e999}', SQS_MAX_MESSAGE_BYTES)
    assert json_object('{"x": 1e308}', SQS_MAX_MESSAGE_BYTES) == {"x": 1e308}


@dataclass
class RecordedRejects:
    """The inbound dead-letter queue in memory: what was rejected, and why."""

    reasons: list[str] = field(default_factory=list)
    fields: list[tuple[str, ...]] = field(default_factory=list)

    def reject(self, body: str, *, reason: str, fields: Sequence[str], source_message_id: str) -> None:
        self.reasons.append(reason)
        self.fields.append(tuple(fields))


@pytest.mark.parametrize(
    ("message", "reason", "fields"),
    [
        (raw_with_data(WEBHOOK, data_text(256)), "the request is not a valid notification", ("data",)),
        (raw_with_data(WEBHOOK, '{"x": 1e999}'), "beyond the range of a 64-bit float", ()),
        (json.dumps({**EMAIL, "subject": "Hi\r\nBcc: eve@example.com"}), "not a valid notification", ("subject",)),
    ],
    ids=["deep-data", "infinity", "header-injection"],
)
def test_the_ingest_function_dead_letters_such_a_message_at_once(message: str, reason: str, fields: tuple[str]) -> None:
    # Given the ingest function over fakes
    clock = FakeClock()
    store, enqueuer, rejects = FakeStatusStore(clock), FakeEnqueuer(), RecordedRejects()
    policy = AcceptPolicy(
        enabled_channels=frozenset({Channel.EMAIL, Channel.WEBHOOK}),
        allow_private_webhook_targets=False,
        retention_seconds=86_400,
    )
    ingestor = Ingestor(
        NotificationAcceptor(store, enqueuer, policy, clock=clock, ids=TEST_IDS),
        rejects,
        scope="c",
        max_item_bytes=SQS_MAX_MESSAGE_BYTES,
    )

    # When
    ingested = ingestor.ingest("m-1", message)

    # Then rejected for good (not an exception that SQS would hand out again and again), nothing kept
    assert ingested == Ingested(rejected=1)
    assert len(rejects.reasons) == 1 and reason in rejects.reasons[0]
    assert rejects.fields == [fields]
    assert store.count() == 0 and enqueuer.sent == []


@pytest.mark.parametrize(
    "metadata",
    [{"order": "42\r\nX-Injected: 1"}, {"order": "4\x002"}, {"order\x1b": "42"}, {"order": "\u202e24"}],
    ids=["crlf-value", "nul-value", "esc-key", "bidi-value"],
)
def test_metadata_takes_one_line_of_text_like_a_subject(metadata: dict[str, str]) -> None:
    # Given: metadata that would reach statuses and webhook receivers with control or bidi characters
    body = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "hi"}

    # When / Then
    with pytest.raises(ValidationError) as refused:
        NotificationRequest.model_validate({**body, "metadata": metadata})
    assert refused.value.errors()[0]["loc"][0] == "metadata"
