"""The `herald` command as a whole: its help, and exit codes that mean something (0, 1, 2, 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cli.errors import ExitCode

if TYPE_CHECKING:
    from tests.unit.cli.conftest import FakeHerald, Herald

COMMANDS = [
    ["send"],
    ["status"],
    ["watch"],
    ["health"],
    ["breakers"],
    ["breakers", "list"],
    ["breakers", "reset"],
    ["breakers", "open"],
    ["breakers", "disable"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "redrive"],
    ["clients"],
    ["clients", "create"],
    ["clients", "list"],
    ["clients", "rotate"],
    ["clients", "revoke"],
]


def test_the_help_lists_every_command_and_the_exit_codes(herald: Herald) -> None:
    # When
    result = herald("--help", target=[])

    # Then
    assert result.exit_code == 0
    for command in ["send", "status", "watch", "health", "breakers", "dlq", "clients"]:
        assert command in result.stdout
    assert "Exit codes: 0 ok; 1 the operation failed or Herald answered an error; 2 bad usage; 3 cannot reach" in (
        " ".join(result.stdout.split())
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(herald: Herald, fake: FakeHerald, command: list[str]) -> None:
    result = herald(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert fake.requests == []


def test_the_json_flag_is_on_every_command_that_prints(herald: Herald) -> None:
    for command in COMMANDS:
        if command in (["breakers"], ["dlq"], ["clients"]):
            continue
        assert "--json" in herald(*command, "--help").stdout, command


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3]


def test_an_unknown_command_is_bad_usage(herald: Herald) -> None:
    assert herald("frobnicate").exit_code == ExitCode.USAGE


def test_a_target_that_refuses_the_connection_exits_3(herald: Herald, closed_port: int) -> None:
    # Given: nothing listens on the port
    url = f"http://127.0.0.1:{closed_port}"

    # When
    result = herald("status", "n-1", target=["--url", url, "--api-key", "k"])

    # Then
    assert result.exit_code == ExitCode.UNREACHABLE
    assert f"cannot reach {url}" in result.stderr


def test_a_target_that_does_not_answer_in_time_exits_3(herald: Herald, fake: FakeHerald) -> None:
    # Given: an answer slower than the timeout
    fake.answer("GET", "/notifications/n-1", body={}, delay=2.0)

    # When
    result = herald("--timeout", "0.2", "status", "n-1")

    # Then
    assert result.exit_code == ExitCode.UNREACHABLE
    assert "did not answer within 0.2 s" in result.stderr


def test_an_error_answer_that_is_not_json_exits_1_with_a_snippet(herald: Herald, fake: FakeHerald) -> None:
    # Given: a proxy in front of Herald answering HTML
    fake.answer("GET", "/notifications/n-1", 502, raw=b"<html>Bad Gateway</html>")

    # When
    result = herald("status", "n-1")

    # Then
    assert result.exit_code == ExitCode.FAILED
    assert "the target answered HTTP 502: <html>Bad Gateway</html>" in result.stderr


def test_an_api_gateway_message_is_shown_as_the_error(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("GET", "/health/detailed", 403, {"message": "Forbidden"})
    result = herald("health")
    assert result.exit_code == ExitCode.FAILED
    assert "Forbidden (HTTP 403)" in result.stderr
