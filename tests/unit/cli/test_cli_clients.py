"""`herald clients`: create and rotate print their secret once, whole; revoke asks first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.unit.cli.conftest import FakeHerald, Herald

SECRET = "whsec_" + "A" * 120  # longer than a terminal line: it must still print whole
CREATED = {
    "id": "3kq9w1x2ab",
    "name": "billing",
    "enabled": True,
    "created_at": "2026-11-29T10:00:00Z",
    "api_key": "0123456789abcdef0123456789abcdef01234567",
    "webhook_signing_secret": SECRET,
}


def test_create_prints_the_key_and_secret_whole_with_a_warning(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("POST", "/admin/clients", 201, CREATED)

    # When
    result = herald("clients", "create", "billing", env={"COLUMNS": "80"})

    # Then: the admin key sent the name; key and secret each on one line; the warning on stderr
    assert result.exit_code == 0, result.output
    [request] = fake.requests
    assert (request.body, request.headers["x-api-key"]) == ({"name": "billing"}, herald.admin_key)
    assert f"api_key: {CREATED['api_key']}" in result.stdout.splitlines()
    assert f"webhook_signing_secret: {SECRET}" in result.stdout.splitlines()
    assert "shown this once" in result.stderr


def test_create_json_is_the_answer(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("POST", "/admin/clients", 201, CREATED)
    result = herald("clients", "create", "billing", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == CREATED


def test_list_shows_every_client(herald: Herald, fake: FakeHerald) -> None:
    clients = {"clients": [{key: CREATED[key] for key in ("id", "name", "enabled", "created_at")}]}
    fake.answer("GET", "/admin/clients", body=clients)
    result = herald("clients", "list")
    assert result.exit_code == 0, result.output
    assert "3kq9w1x2ab" in result.stdout
    assert "billing" in result.stdout
    assert json.loads(herald("clients", "list", "--json").stdout) == clients


def test_rotate_sends_the_grace_period_and_prints_the_new_secret(herald: Herald, fake: FakeHerald) -> None:
    # Given
    rotation = {
        "id": "3kq9w1x2ab",
        "webhook_signing_secret": SECRET,
        "previous_secret_valid_until": "2026-11-30T10:00:00Z",
        "new_secret_in_use_within_seconds": 60,
    }
    fake.answer("POST", "/admin/clients/3kq9w1x2ab/rotate-signing-secret", body=rotation)

    # When: with a grace period, then without one
    with_grace = herald("clients", "rotate", "3kq9w1x2ab", "--grace", "3600")
    default = herald("clients", "rotate", "3kq9w1x2ab", "--json")

    # Then: the grace period only when given (Herald's default otherwise), the secret whole
    assert with_grace.exit_code == 0, with_grace.output
    assert [request.body for request in fake.requests] == [{"grace_period_seconds": 3600}, None]
    assert f"webhook_signing_secret: {SECRET}" in with_grace.stdout.splitlines()
    assert "previous_secret_valid_until: 2026-11-30T10:00:00Z" in with_grace.stdout
    assert json.loads(default.stdout) == rotation


def test_revoke_with_yes_deletes_the_client(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("DELETE", "/admin/clients/3kq9w1x2ab", body={**CREATED, "enabled": False})
    result = herald("clients", "revoke", "3kq9w1x2ab", "--yes")
    assert result.exit_code == 0, result.output
    assert len(fake.seen("DELETE", "/admin/clients/3kq9w1x2ab")) == 1
    assert "Revoked client 3kq9w1x2ab" in result.stdout


def test_revoke_asks_first_and_declining_deletes_nothing(herald: Herald, fake: FakeHerald) -> None:
    # When: the operator answers no
    result = herald("clients", "revoke", "3kq9w1x2ab", input="n\n")

    # Then
    assert result.exit_code == 1
    assert "Revoke client 3kq9w1x2ab?" in result.stderr
    assert fake.requests == []


def test_a_stack_owned_client_cannot_be_revoked(herald: Herald, fake: FakeHerald) -> None:
    fake.answer(
        "DELETE",
        "/admin/clients/admin1",
        409,
        {"error": {"code": "conflict", "message": "the stack's own keys cannot be revoked"}},
    )
    result = herald("clients", "revoke", "admin1", "--yes")
    assert result.exit_code == 1
    assert "the stack's own keys cannot be revoked (HTTP 409 conflict)" in result.stderr
