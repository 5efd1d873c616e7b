"""How the CLI prints: Rich tables for people, JSON for scripts, and plain lines on stderr for problems.

Every value from the API is printed as plain text (`rich.text.Text`), never as Rich markup, so a detail such as
`[OPEN]` is shown as it is.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the answer as JSON, for scripts.")]

OK_STYLE = "green"
BAD_STYLE = "red"
WARN_STYLE = "yellow"


def stdout() -> Console:
    """A console on the current stdout (looked up at each call, so test runners can capture it)."""
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def warn(message: str) -> None:
    stderr().print(Text(message, style=WARN_STYLE), soft_wrap=True)


def text(value: Any, style: str = "") -> Text:
    """A table cell or line: None as '-', booleans as yes/no, epoch seconds as UTC times, the rest as text."""
    return Text(show(value), style=style)


def show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def show_time(value: Any) -> str:
    """An API time as UTC: epoch seconds (health, breakers) converted, ISO strings shown as they come."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return show(value)


def state_style(state: Any) -> str:
    """Green for a healthy state, red for a failing one, yellow in between."""
    name = str(state).upper()
    if name in {"CLOSED", "NORMAL", "READY", "OK", "TRUE", "SENT", "DELIVERED"}:
        return OK_STYLE
    if name in {"OPEN", "FORCED_OPEN", "CRITICAL", "DEGRADED", "DOWN", "NOT_READY", "FALSE", "FAILED", "DEAD_LETTERED"}:
        return BAD_STYLE
    return WARN_STYLE


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table whose cells are plain text (a `Text` cell keeps its own style), its first column never wrapped."""
    result = Table(title=title, title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        # The first column names the row (a breaker, a notification): kept whole; a narrow terminal folds the
        # others, and never cuts a value short.
        result.add_column(column, no_wrap=index == 0, overflow="fold")
    for row in rows:
        result.add_row(*(cell if isinstance(cell, Text) else text(cell) for cell in row))
    return result


def fields(title: str | None, pairs: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of name -> value."""
    result = Table(title=title, title_justify="left", show_header=False)
    result.add_column("field", style="bold", no_wrap=True)
    result.add_column("value", overflow="fold")
    for name, value in pairs:
        result.add_row(Text(name), value if isinstance(value, Text) else text(value))
    return result


def lines(pairs: Iterable[tuple[str, Any]]) -> None:
    """`name: value` lines on stdout, never wrapped: for keys and secrets, which must copy whole."""
    console = stdout()
    for name, value in pairs:
        console.print(Text(f"{name}: {show(value)}"), soft_wrap=True)
