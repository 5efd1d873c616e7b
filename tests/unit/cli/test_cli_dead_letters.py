"""`herald dlq list|redrive`: filters and times sent, the confirmation, the dry run, and the summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from cli.session import Dependencies

if TYPE_CHECKING:
    from tests.unit.cli.conftest import FakeHerald, Herald

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
AT_NOON = Dependencies(now=lambda: NOW)
LETTERS = {
    "dead_letters": [
        {
            "notification_id": "n-1",
            "message_id": "m-1",
            "channel": "email",
            "provider": "sendgrid",
            "error_class": "provider_unavailable",
            "error": "sendgrid answered HTTP 503",
            "attempts": 5,
            "first_failure_at": "2026-11-29T10:00:00Z",
            "last_failure_at": "2026-11-29T10:05:00Z",
            "status": "dead_lettered",
        }
    ],
    "scanned": 12,
    "truncated": True,
}


def redrive_answer(*, dry_run: bool, matched: int, moved: int, **extra: Any) -> dict[str, Any]:
    ids = [f"n-{n}" for n in range(matched)]
    return {
        "dry_run": dry_run,
        "matched": matched,
        "moved": moved,
        "method": "requeue",
        "notification_ids": ids,
        **extra,
    }


def test_list_sends_the_filters_with_times_in_utc(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("GET", "/admin/dead-letters", body=LETTERS)

    # When: a relative --since (at a fixed now) and an ISO --until with an offset
    result = herald(
        "dlq", "list", "--channel", "email", "--provider", "sendgrid", "--error-class", "provider_unavailable",
        "--since", "2h", "--until", "2026-11-29T13:30:00+02:00", "--limit", "50", deps=AT_NOON,
    )  # fmt: skip

    # Then: one GET with the admin key and every filter, times as ISO 8601 UTC
    assert result.exit_code == 0, result.output
    [request] = fake.seen("GET", "/admin/dead-letters")
    assert request.headers["x-api-key"] == herald.admin_key
    assert request.query == {
        "channel": "email",
        "provider": "sendgrid",
        "error_class": "provider_unavailable",
        "since": "2026-11-29T10:00:00Z",
        "until": "2026-11-29T11:30:00Z",
        "limit": "50",
    }
    for expected in ["n-1", "sendgrid answered HTTP 503", "provider_unavailable", "Scanned 12 messages", "More match"]:
        assert expected in result.stdout


def test_list_without_filters_sends_none(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("GET", "/admin/dead-letters", body={"dead_letters": [], "scanned": 0, "truncated": False})
    result = herald("dlq", "list", "--json")
    assert result.exit_code == 0, result.output
    assert fake.requests[0].query == {}
    assert json.loads(result.stdout) == {"dead_letters": [], "scanned": 0, "truncated": False}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "yesterday"], "neither an ISO 8601 time"),
        (["--since", "1h", "--until", "2h"], "--since must be before --until"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_filters_are_bad_usage(herald: Herald, fake: FakeHerald, args: list[str], says: str) -> None:
    result = herald("dlq", "list", *args, deps=AT_NOON)
    assert result.exit_code == 2
    assert says in result.stderr
    assert fake.requests == []


def test_a_dry_run_asks_nothing_and_moves_nothing(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("POST", "/admin/dead-letters/redrive", body=redrive_answer(dry_run=True, matched=3, moved=0))

    # When
    result = herald(
        "dlq", "redrive", "--since", "1d", "--provider", "sendgrid", "--max", "10", "--dry-run", deps=AT_NOON
    )

    # Then: one dry-run request with the filters and max, and the summary
    assert result.exit_code == 0, result.output
    [request] = fake.requests
    assert request.body == {"provider": "sendgrid", "since": "2026-11-28T12:00:00Z", "max": 10, "dry_run": True}
    assert "Dry run: nothing was moved" in result.stdout
    assert "n-0, n-1, n-2" in result.stdout


def test_a_redrive_previews_then_asks_then_moves(herald: Herald, fake: FakeHerald) -> None:
    # Given: three match; the operator answers yes
    fake.answer("POST", "/admin/dead-letters/redrive", body=redrive_answer(dry_run=True, matched=3, moved=0))
    fake.answer("POST", "/admin/dead-letters/redrive", body=redrive_answer(dry_run=False, matched=3, moved=3))

    # When
    result = herald("dlq", "redrive", "--channel", "email", input="y\n")

    # Then: a dry run first, the question with its count, then the real redrive and its summary
    assert result.exit_code == 0, result.output
    assert [request.body for request in fake.requests] == [
        {"channel": "email", "dry_run": True},
        {"channel": "email", "dry_run": False},
    ]
    assert "Move 3 dead-lettered notification(s) back to their queues?" in result.stderr
    assert "Redriving dead letters: done" in result.stderr  # the progress bar, on stderr
    assert "moved" in result.stdout


def test_declining_moves_nothing_and_exits_1(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("POST", "/admin/dead-letters/redrive", body=redrive_answer(dry_run=True, matched=2, moved=0))
    result = herald("dlq", "redrive", input="n\n")
    assert result.exit_code == 1
    assert [request.body["dry_run"] for request in fake.requests] == [True]
    assert "nothing was moved" in result.stderr


def test_nothing_to_redrive_asks_nothing(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("POST", "/admin/dead-letters/redrive", body=redrive_answer(dry_run=True, matched=0, moved=0))
    result = herald("dlq", "redrive")
    assert result.exit_code == 0, result.output
    assert len(fake.requests) == 1
    assert "?" not in result.stderr
    assert "No dead letter matches: nothing to move." in result.stdout


def test_yes_moves_at_once_and_json_prints_only_the_answer(herald: Herald, fake: FakeHerald) -> None:
    # Given: a move task that runs on in SQS
    answer = redrive_answer(dry_run=False, matched=25, moved=25, method="message_move_task", task_handle="t-1")
    fake.answer("POST", "/admin/dead-letters/redrive", body=answer)

    # When
    result = herald("dlq", "redrive", "--yes", "--max", "25", "--json")

    # Then: one request, no question, and stdout is exactly the answer
    assert result.exit_code == 0, result.output
    assert [request.body for request in fake.requests] == [{"max": 25, "dry_run": False}]
    assert json.loads(result.stdout) == answer


def test_the_summary_lists_at_most_twenty_ids(herald: Herald, fake: FakeHerald) -> None:
    fake.answer(
        "POST", "/admin/dead-letters/redrive", body=redrive_answer(dry_run=False, matched=25, moved=25, truncated=True)
    )
    result = herald("dlq", "redrive", "--yes")
    assert result.exit_code == 0, result.output
    assert "n-19 and 5 more" in result.stdout
    assert "More match than were handled" in result.stdout


def test_a_narrow_terminal_gets_one_block_per_dead_letter_with_ids_and_errors_whole(
    herald: Herald, fake: FakeHerald
) -> None:
    # Given: an 80-column terminal
    fake.answer("GET", "/admin/dead-letters", body=LETTERS)

    # When
    result = herald("dlq", "list", env={"COLUMNS": "80"})

    # Then: the id, its facts and its error each on a line of their own, nothing folded
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "n-1  dead_lettered" in lines
    assert "  sendgrid answered HTTP 503" in lines
    assert any("provider sendgrid, provider_unavailable, 5 attempt(s)" in line for line in lines)
