"""`herald breakers list|reset|open|disable NAME`: circuit breakers, with the admin key."""

import urllib.parse
from typing import Annotated, Any

import typer
from rich.text import Text

from cli import output
from cli.session import session
from cli.target import KeyRole

app = typer.Typer(
    help="Circuit breakers: list them, or force one's state (admin key).",
    no_args_is_help=True,
)

NameArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The breaker's name, e.g. provider:sendgrid or webhook:https://host:443.",
        show_default=False,
    ),
]
BREAKERS_PATH = "/admin/circuit-breakers"


@app.command("list")
def list_breakers(ctx: typer.Context, json_output: output.JsonFlag = False) -> None:
    """List the circuit breakers and their state (GET /admin/circuit-breakers)."""
    breakers: list[dict[str, Any]] = (session(ctx).call(KeyRole.ADMIN, "GET", BREAKERS_PATH).body or {}).get(
        "breakers", []
    )
    if json_output:
        output.print_json({"breakers": breakers})
        return
    output.stdout().print(
        output.table(
            "Circuit breakers",
            ["name", "state", "permits calls", "failure rate", "calls", "opened at", "open until"],
            (
                (
                    b.get("name"),
                    output.text(b.get("state"), output.state_style(b.get("state"))),
                    b.get("permits_calls"),
                    b.get("failure_rate"),
                    b.get("calls"),
                    output.show_time(b.get("opened_at")),
                    output.show_time(b.get("open_until")),
                )
                for b in breakers
            ),
        )
    )
    if not breakers:
        output.stdout().print(Text("No circuit breakers."))


def _act(ctx: typer.Context, name: str, action: str, json_output: bool) -> None:
    path = f"{BREAKERS_PATH}/{urllib.parse.quote(name, safe='')}/{action}"
    changed: dict[str, Any] = session(ctx).call(KeyRole.ADMIN, "POST", path).body or {}
    if json_output:
        output.print_json(changed)
        return
    line = Text(f"{changed.get('name', name)}: ")
    previous, state = changed.get("previous_state"), changed.get("state")
    line.append(output.show(previous), style=output.state_style(previous))
    line.append(" -> ")
    line.append(output.show(state), style=output.state_style(state))
    output.stdout().print(line)


@app.command("reset")
def reset(ctx: typer.Context, name: NameArgument, json_output: output.JsonFlag = False) -> None:
    """Close a breaker and clear its window: calls go through again at once."""
    _act(ctx, name, "reset", json_output)


@app.command("open")
def force_open(ctx: typer.Context, name: NameArgument, json_output: output.JsonFlag = False) -> None:
    """Force a breaker open (FORCED_OPEN): no call goes through until it is reset."""
    _act(ctx, name, "open", json_output)


@app.command("disable")
def disable(ctx: typer.Context, name: NameArgument, json_output: output.JsonFlag = False) -> None:
    """Disable a breaker (DISABLED): every call goes through, whatever fails, until it is reset."""
    _act(ctx, name, "disable", json_output)
