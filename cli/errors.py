"""The CLI's exit codes and its one exception hierarchy; `cli.main.HeraldGroup` maps them to exit codes."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """What `herald` exits with (documented in `herald --help`)."""

    OK = 0
    FAILED = 1  # the operation failed, or the target answered an error
    USAGE = 2  # bad usage: an unknown option, a bad value, no key to send
    UNREACHABLE = 3  # the target (or, with --stack, AWS) could not be reached


class CliError(Exception):
    """A failure to report plainly on stderr, ending the command with `exit_code`."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def headline(self) -> str:
        """The one line printed after `Error: `."""
        return self.message


class OperationFailed(CliError):
    """The operation ran but did not succeed (a watch timed out, a notification failed, the user declined)."""


class UsageProblem(CliError):
    """The command cannot be carried out as given (no key, a bad target); exit 2 like a click usage error."""

    exit_code = ExitCode.USAGE


class Unreachable(CliError):
    """The target did not answer: refused, timed out, no route, or AWS out of reach for --stack."""

    exit_code = ExitCode.UNREACHABLE


class ApiError(CliError):
    """The target answered an error: `{"error": {"code", "message", "details"?}}`, or anything else >= 400."""

    def __init__(self, status: int, code: str | None, message: str, details: Any = None) -> None:
        super().__init__(message, details=_detail_lines(details))
        self.status = status
        self.code = code

    def headline(self) -> str:
        where = f"HTTP {self.status}" + (f" {self.code}" if self.code else "")
        return f"{self.message} ({where})"


def _detail_lines(details: Any) -> list[str]:
    """Each detail as one line: `field: message` for Herald's validation details, else the item as text."""
    if details is None:
        return []
    items = details if isinstance(details, list) else [details]
    lines = []
    for item in items:
        if isinstance(item, dict) and "message" in item:
            field = item.get("field")
            lines.append(f"{field}: {item['message']}" if field else str(item["message"]))
        else:
            lines.append(str(item))
    return lines
