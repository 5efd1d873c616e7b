"""`herald send`, `status` and `watch`: the requests they make, what they print, and their exit codes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from cli.session import Dependencies

if TYPE_CHECKING:
    from pathlib import Path

    from tests.unit.cli.conftest import FakeHerald, Herald

ID = "0b9e5f1c-1111-2222-3333-444455556666"
ACCEPTED = {
    "id": ID,
    "status": "queued",
    "channel": "email",
    "priority": "high",
    "created_at": "2026-11-29T10:00:00.000Z",
}


def notification(status: str, *history: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": ID,
        "status": status,
        "channel": "email",
        "provider": "ses" if status != "queued" else None,
        "history": [
            {"status": s, "at": f"2026-11-29T10:00:0{n}.000Z", "detail": d} for n, (s, d) in enumerate(history)
        ],
        **extra,
    }


QUEUED = ("queued", "accepted")
SENT = ("sent", "delivered by ses via email (skipped: provider:sendgrid [OPEN])")
DELIVERED = ("delivered", "ses reported delivered")


class FakeClock:
    """A monotonic clock that moves only when the command sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# ---------------------------------------------------------------------- send
def test_send_posts_the_notification_and_prints_the_answer_with_its_notice(herald: Herald, fake: FakeHerald) -> None:
    # Given: Herald accepts, with a notice while SMS is degraded
    fake.answer(
        "POST",
        "/notifications",
        202,
        {**ACCEPTED, "notice": "SMS delivery is delayed"},
        headers={"Location": f"/notifications/{ID}"},
    )

    # When
    result = herald(
        "send", "email", "--email", "ada@example.com", "--phone", "+447700900123", "--subject", "Your code",
        "--body", "Your code is 123456", "--priority", "high", "--fallback", "sms", "--idempotency-key", "order-42",
        "--data", '{"order": 42}', "--metadata", "order_id=42", "--metadata", "source=cli",
    )  # fmt: skip

    # Then: one request with every field, the key and the idempotency header; the answer and notice printed
    assert result.exit_code == 0, result.output
    [request] = fake.seen("POST", "/notifications")
    assert request.body == {
        "channel": "email",
        "recipient": {"email": "ada@example.com", "phone": "+447700900123"},
        "body": "Your code is 123456",
        "subject": "Your code",
        "priority": "high",
        "fallback_channels": ["sms"],
        "data": {"order": 42},
        "metadata": {"order_id": "42", "source": "cli"},
    }
    assert request.headers["x-api-key"] == herald.client_key
    assert request.headers["idempotency-key"] == "order-42"
    assert f"Accepted: {ID}" in result.stdout
    assert f"/notifications/{ID}" in result.stdout
    assert "Notice: SMS delivery is delayed" in result.stdout


def test_send_json_prints_the_answer_as_json(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("POST", "/notifications", 202, ACCEPTED, headers={"Idempotent-Replayed": "true"})

    # When
    result = herald("send", "webhook", "--webhook-url", "https://hooks.example.com/x", "--body", "hi", "--json")

    # Then: stdout is exactly Herald's answer, as JSON
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ACCEPTED


def test_send_says_when_the_answer_is_an_idempotent_replay(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("POST", "/notifications", 202, ACCEPTED, headers={"Idempotent-Replayed": "true"})
    result = herald("send", "sms", "--phone", "+447700900123", "--body", "hi", "--idempotency-key", "k")
    assert result.exit_code == 0, result.output
    assert "Already accepted (idempotent replay)" in result.stdout


def test_send_reads_data_from_a_file(herald: Herald, fake: FakeHerald, tmp_path: Path) -> None:
    # Given: the data in a file
    data = tmp_path / "data.json"
    data.write_text('{"screen": "codes"}', encoding="utf-8")
    fake.answer("POST", "/notifications", 202, ACCEPTED)

    # When
    result = herald("send", "push", "--device-token", "device-1", "--body", "hi", "--data", f"@{data}")

    # Then
    assert result.exit_code == 0, result.output
    assert fake.seen("POST", "/notifications")[0].body["data"] == {"screen": "codes"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["send", "email", "--body", "hi"], "give the recipient"),
        (["send", "email", "--email", "a@example.com", "--body", "hi", "--data", "{not json"], "not valid JSON"),
        (["send", "email", "--email", "a@example.com", "--body", "hi", "--data", "@/no/such/file"], "cannot read"),
        (["send", "email", "--email", "a@example.com", "--body", "hi", "--metadata", "novalue"], "KEY=VALUE"),
        (["send", "fax", "--email", "a@example.com", "--body", "hi"], "fax"),
        (["send", "email", "--email", "a@example.com"], "--body"),
        (["send", "email", "--email", "a@example.com", "--body", "hi", "--priority", "urgent"], "urgent"),
    ],
)
def test_send_refuses_bad_usage_with_exit_2_and_sends_nothing(
    herald: Herald, fake: FakeHerald, args: list[str], says: str
) -> None:
    # When
    result = herald(*args)

    # Then
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert fake.requests == []


def test_a_validation_error_prints_the_message_and_each_detail_and_exits_1(herald: Herald, fake: FakeHerald) -> None:
    # Given: Herald refuses the request
    fake.answer(
        "POST",
        "/notifications",
        422,
        {
            "error": {
                "code": "validation_error",
                "message": "the request is not a valid notification",
                "details": [{"field": "subject", "message": "required for email"}],
            }
        },
    )

    # When
    result = herald("send", "email", "--email", "ada@example.com", "--body", "hi", "--json")

    # Then: the message and details plainly on stderr, nothing on stdout
    assert result.exit_code == 1
    assert "Error: the request is not a valid notification (HTTP 422 validation_error)" in result.stderr
    assert "  - subject: required for email" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------- status
def test_status_shows_the_notification_and_its_history(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("GET", f"/notifications/{ID}", body=notification("sent", QUEUED, SENT, reason="delivered by ses"))

    # When
    result = herald("status", ID)

    # Then: the fields and every history entry, details shown literally (not as markup)
    assert result.exit_code == 0, result.output
    assert "delivered by ses" in result.stdout
    assert "accepted" in result.stdout
    assert "(skipped: provider:sendgrid [OPEN])" in result.stdout


def test_status_json_is_the_notification_as_json(herald: Herald, fake: FakeHerald) -> None:
    body = notification("queued", QUEUED)
    fake.answer("GET", f"/notifications/{ID}", body=body)
    result = herald("status", ID, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == body


def test_status_percent_encodes_the_id_and_exits_1_when_unknown(herald: Herald, fake: FakeHerald) -> None:
    # Given: an id with a slash, unknown to Herald
    fake.answer(
        "GET",
        "/notifications/a%2Fb%3Fc",
        404,
        {"error": {"code": "not_found", "message": "no notification with this id"}},
    )

    # When
    result = herald("status", "a/b?c")

    # Then: it stays one path segment; the 404 is reported with exit 1
    assert result.exit_code == 1
    assert len(fake.seen("GET", "/notifications/a%2Fb%3Fc")) == 1
    assert "no notification with this id (HTTP 404 not_found)" in result.stderr


# ---------------------------------------------------------------------- watch
def test_watch_prints_each_new_history_entry_once_and_stops_at_sent(herald: Herald, fake: FakeHerald) -> None:
    # Given: queued for two looks, then sent
    path = f"/notifications/{ID}"
    fake.answer("GET", path, body=notification("queued", QUEUED))
    fake.answer("GET", path, body=notification("queued", QUEUED))
    fake.answer("GET", path, body=notification("sent", QUEUED, SENT, reason="delivered by ses via email"))
    clock = FakeClock()

    # When
    result = herald("watch", ID, "--interval", "2", deps=Dependencies(monotonic=clock.monotonic, sleep=clock.sleep))

    # Then: each entry printed once, exit 0 at sent, after three looks and two pauses of the interval
    assert result.exit_code == 0, result.output
    assert result.stdout.count("accepted") == 1
    assert result.stdout.count("delivered by ses via email (skipped") == 1
    assert f"{ID} is sent" in result.stdout
    assert len(fake.seen("GET", path)) == 3
    assert clock.sleeps == [2.0, 2.0]


def test_watch_until_delivered_goes_on_past_sent(herald: Herald, fake: FakeHerald) -> None:
    # Given: sent, then delivered
    path = f"/notifications/{ID}"
    fake.answer("GET", path, body=notification("sent", QUEUED, SENT))
    fake.answer("GET", path, body=notification("delivered", QUEUED, SENT, DELIVERED))
    clock = FakeClock()

    # When
    result = herald(
        "watch", ID, "--until", "delivered", deps=Dependencies(monotonic=clock.monotonic, sleep=clock.sleep)
    )

    # Then
    assert result.exit_code == 0, result.output
    assert "ses reported delivered" in result.stdout
    assert len(fake.seen("GET", path)) == 2


def test_watch_exits_1_when_the_notification_fails(herald: Herald, fake: FakeHerald) -> None:
    fake.answer(
        "GET", f"/notifications/{ID}", body=notification("failed", QUEUED, ("failed", "bounced"), error="bounce")
    )
    result = herald("watch", ID, deps=Dependencies(sleep=lambda seconds: None))
    assert result.exit_code == 1
    assert f"{ID} is failed" in result.stdout


def test_watch_gives_up_after_its_timeout_with_exit_1(herald: Herald, fake: FakeHerald) -> None:
    # Given: a notification that stays queued
    fake.answer("GET", f"/notifications/{ID}", body=notification("queued", QUEUED))
    clock = FakeClock()

    # When: watched for 5 s, looking every second (on the fake clock: no real waiting)
    result = herald(
        "watch",
        ID,
        "--timeout",
        "5",
        "--interval",
        "1",
        deps=Dependencies(monotonic=clock.monotonic, sleep=clock.sleep),
    )

    # Then
    assert result.exit_code == 1
    assert f"{ID} is still queued after 5 s (waiting for sent)" in result.stderr
    assert clock.now == 5.0
    assert len(fake.seen("GET", f"/notifications/{ID}")) == 6


def test_watch_json_prints_only_the_final_notification(herald: Herald, fake: FakeHerald) -> None:
    final = notification("sent", QUEUED, SENT)
    fake.answer("GET", f"/notifications/{ID}", body=notification("queued", QUEUED))
    fake.answer("GET", f"/notifications/{ID}", body=final)
    result = herald("watch", ID, "--json", deps=Dependencies(sleep=lambda seconds: None))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == final
