"""Over the local runtime: the `herald` command, run in-process with Typer's CliRunner, against every route it
uses. The breaker and dead-letter routes run only once the template declares them (they are being built)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from cli.errors import ExitCode
from cli.main import app

if TYPE_CHECKING:
    from typer.testing import Result

    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e

SENDGRID = "provider:sendgrid"
# The developer's own targeting variables must not steer these tests; wide output, so nothing folds.
ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "HERALD_API_URL": None,
    "HERALD_API_KEY": None,
    "HERALD_ADMIN_API_KEY": None,
    "HERALD_STACK": None,
}


def herald_cli(herald: RunningHerald, *args: str, api_key: str | None = None, input: str | None = None) -> Result:  # noqa: A002
    """`herald --url ... --api-key ... --admin-key ... ARGS` against the shared local runtime."""
    target = ["--url", herald.base_url, "--api-key", api_key or herald.api_key, "--admin-key", herald.admin_api_key]
    return CliRunner().invoke(app, [*target, *args], env=ENV, input=input)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def test_send_then_status_then_watch_until_sent(herald: RunningHerald) -> None:
    # Given: an email sent with the CLI
    accepted = json_of(
        herald_cli(
            herald,
            "send",
            "email",
            "--email",
            "ada@example.com",
            "--subject",
            "Your code",
            "--body",
            "123456",
            "--idempotency-key",
            f"cli-e2e-{time.time_ns()}",
            "--metadata",
            "source=cli",
            "--json",
        )  # fmt: skip
    )
    assert accepted["status"] == "queued"

    # When: it is watched until sent (or later)
    watched = herald_cli(herald, "watch", accepted["id"], "--timeout", "30", "--interval", "0.5")

    # Then: each history entry was printed, and its status shows it sent (or delivered, by SendGrid's receipt)
    assert watched.exit_code == 0, watched.output
    assert "queued" in watched.stdout
    assert "sent" in watched.stdout
    shown = json_of(herald_cli(herald, "status", accepted["id"], "--json"))
    assert shown["status"] in {"sent", "delivered"}
    assert shown["metadata"] == {"source": "cli"}
    assert [entry["status"] for entry in shown["history"]][:2] == ["queued", "sent"]
    human = herald_cli(herald, "status", accepted["id"])
    assert human.exit_code == 0
    assert accepted["id"] in human.stdout


def test_status_of_an_unknown_id_exits_1(herald: RunningHerald) -> None:
    result = herald_cli(herald, "status", "no-such-notification")
    assert result.exit_code == ExitCode.FAILED
    assert "HTTP 404" in result.stderr


def test_health_shows_the_monitors_snapshot(herald: RunningHerald) -> None:
    # When
    report = json_of(herald_cli(herald, "health", "--json"))
    human = herald_cli(herald, "health")

    # Then: the detailed view, with its checks, providers and queues
    assert report["mode"] in {"NORMAL", "PARTIAL", "DEGRADED", "CRITICAL"}
    assert {check["name"] for check in report["checks"]} >= {"dynamodb:notifications", "sqs:standard"}
    assert human.exit_code == 0, human.output
    assert f"Mode: {report['mode']}" in human.stdout
    assert "sendgrid" in human.stdout
    assert "dead_letter" in human.stdout


def test_clients_create_list_rotate_revoke(herald: RunningHerald) -> None:
    # Given: a client made with the CLI, its key and secret printed once
    created = json_of(herald_cli(herald, "clients", "create", "cli-e2e", "--json"))
    assert created["webhook_signing_secret"].startswith("whsec_")

    # When / Then: it is listed
    listed = json_of(herald_cli(herald, "clients", "list", "--json"))
    assert created["id"] in {client["id"] for client in listed["clients"]}

    # When / Then: a rotation with a grace period gives a new secret
    rotation = json_of(herald_cli(herald, "clients", "rotate", created["id"], "--grace", "60", "--json"))
    assert rotation["id"] == created["id"]
    assert rotation["webhook_signing_secret"].startswith("whsec_")
    assert rotation["webhook_signing_secret"] != created["webhook_signing_secret"]

    # When: it is revoked
    revoked = json_of(herald_cli(herald, "clients", "revoke", created["id"], "--yes", "--json"))

    # Then: disabled, and its key refused (401: exit 1) once the gateway has dropped it
    assert revoked["enabled"] is False
    deadline = time.monotonic() + 5
    while (refused := herald_cli(herald, "status", "any", api_key=created["api_key"])).exit_code != ExitCode.FAILED or (
        "HTTP 401" not in refused.stderr
    ):
        assert time.monotonic() < deadline, refused.output
        time.sleep(0.1)


def test_the_stacks_own_admin_client_cannot_be_revoked(herald: RunningHerald) -> None:
    # Given: the admin key's own client
    clients = json_of(herald_cli(herald, "clients", "list", "--json"))["clients"]
    admin = next(client for client in clients if client["name"].startswith("Herald admin key"))

    # When
    result = herald_cli(herald, "clients", "revoke", admin["id"], "--yes")

    # Then: Herald's 409, plainly, exit 1
    assert result.exit_code == ExitCode.FAILED
    assert "HTTP 409" in result.stderr


def test_breakers_list_open_and_reset_sendgrid(herald: RunningHerald) -> None:
    # Given: the breakers as they are
    json_of(herald_cli(herald, "breakers", "list", "--json"))
    try:
        # When: SendGrid's breaker is forced open
        opened = json_of(herald_cli(herald, "breakers", "open", SENDGRID, "--json"))

        # Then: it says so, and the list shows it
        assert opened["name"] == SENDGRID
        assert opened["state"] == "FORCED_OPEN"
        states = {b["name"]: b["state"] for b in json_of(herald_cli(herald, "breakers", "list", "--json"))["breakers"]}
        assert states[SENDGRID] == "FORCED_OPEN"
        assert SENDGRID in herald_cli(herald, "breakers", "list").stdout
    finally:
        # When: it is reset (always, so no other test finds SendGrid off)
        reset = json_of(herald_cli(herald, "breakers", "reset", SENDGRID, "--json"))

    # Then
    assert reset["previous_state"] == "FORCED_OPEN"
    assert reset["state"] == "CLOSED"


def test_dlq_list(herald: RunningHerald) -> None:
    # When
    listed = json_of(herald_cli(herald, "dlq", "list", "--since", "1h", "--limit", "10", "--json"))
    human = herald_cli(herald, "dlq", "list", "--channel", "email")

    # Then: the contract's shape, and a table
    assert isinstance(listed["dead_letters"], list)
    assert isinstance(listed["scanned"], int)
    assert len(listed["dead_letters"]) <= 10
    assert human.exit_code == 0, human.output
    assert "Scanned" in human.stdout
    assert ("Dead letters" in human.stdout) or ("No dead letter matches." in human.stdout)


def test_dlq_redrive_dry_run_moves_nothing(herald: RunningHerald) -> None:
    # When
    result = json_of(herald_cli(herald, "dlq", "redrive", "--since", "1h", "--dry-run", "--json"))
    human = herald_cli(herald, "dlq", "redrive", "--dry-run")

    # Then
    assert result["dry_run"] is True
    assert result["moved"] == 0
    assert isinstance(result["matched"], int)
    assert isinstance(result["notification_ids"], list)
    assert human.exit_code == 0, human.output
    assert "Dry run: nothing was moved" in human.stdout
