"""`herald breakers`: the admin routes it calls (names percent-encoded) and what it prints."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.unit.cli.conftest import FakeHerald, Herald

BREAKERS = {
    "breakers": [
        {
            "name": "provider:sendgrid",
            "kind": "provider",
            "state": "OPEN",
            "permits_calls": False,
            "failure_rate": 0.85,
            "calls": 40,
            "opened_at": 1795971530.0,
            "open_until": 1795971560.0,
        }
    ]
}


def test_list_shows_every_breaker_with_the_admin_key(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("GET", "/admin/circuit-breakers", body=BREAKERS)

    # When
    result = herald("breakers", "list")

    # Then
    assert result.exit_code == 0, result.output
    assert fake.seen("GET", "/admin/circuit-breakers")[0].headers["x-api-key"] == herald.admin_key
    for expected in ["provider:sendgrid", "OPEN", "0.85", "40", "2026-11-29T16:58:50Z", "2026-11-29T16:59:20Z"]:
        assert expected in result.stdout


def test_list_json_is_the_answer(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("GET", "/admin/circuit-breakers", body=BREAKERS)
    result = herald("breakers", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == BREAKERS


@pytest.mark.parametrize("action", ["reset", "open", "disable"])
def test_an_action_posts_to_the_encoded_name_and_prints_the_transition(
    herald: Herald, fake: FakeHerald, action: str
) -> None:
    # Given: a webhook breaker, whose name holds ':' and '/'
    name = "webhook:https://hooks.example.com:443"
    path = f"/admin/circuit-breakers/webhook%3Ahttps%3A%2F%2Fhooks.example.com%3A443/{action}"
    fake.answer("POST", path, body={"name": name, "state": "FORCED_OPEN", "previous_state": "CLOSED"})

    # When
    result = herald("breakers", action, name)

    # Then: one POST to the name as one path segment, and the transition printed
    assert result.exit_code == 0, result.output
    assert len(fake.seen("POST", path)) == 1
    assert f"{name}: CLOSED -> FORCED_OPEN" in result.stdout


def test_an_action_json_is_the_answer(herald: Herald, fake: FakeHerald) -> None:
    answer = {"name": "provider:sendgrid", "state": "CLOSED", "previous_state": "OPEN"}
    fake.answer("POST", "/admin/circuit-breakers/provider%3Asendgrid/reset", body=answer)
    result = herald("breakers", "reset", "provider:sendgrid", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == answer


def test_an_unknown_breaker_exits_1_with_herald_s_message(herald: Herald, fake: FakeHerald) -> None:
    fake.answer(
        "POST",
        "/admin/circuit-breakers/provider%3Anope/open",
        404,
        {"error": {"code": "not_found", "message": "no circuit breaker named provider:nope"}},
    )
    result = herald("breakers", "open", "provider:nope")
    assert result.exit_code == 1
    assert "no circuit breaker named provider:nope" in result.stderr


def test_a_herald_without_the_route_says_so(herald: Herald, fake: FakeHerald) -> None:
    # Given: no route scripted: the fake answers as API Gateway does for a route it does not have
    # When
    result = herald("breakers", "list")

    # Then: exit 1, and a hint that the target may be an older Herald
    assert result.exit_code == 1
    assert "No such route (HTTP 404 not_found)" in result.stderr
    assert "does not serve GET /admin/circuit-breakers" in result.stderr


def test_a_breaker_name_is_required(herald: Herald, fake: FakeHerald) -> None:
    result = herald("breakers", "reset")
    assert result.exit_code == 2
    assert fake.requests == []
