"""`herald clients create|list|rotate|revoke`: clients, their keys and signing secrets, with the admin key."""

import urllib.parse
from typing import Annotated, Any

import typer
from rich.text import Text

from cli import output
from cli.errors import OperationFailed
from cli.session import session
from cli.target import KeyRole

app = typer.Typer(help="Clients: their API keys and webhook signing secrets (admin key).", no_args_is_help=True)

CLIENTS_PATH = "/admin/clients"
IdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The client's id (see `clients list`).", show_default=False)
]


def client_path(client_id: str) -> str:
    return f"{CLIENTS_PATH}/{urllib.parse.quote(client_id, safe='')}"


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the client, e.g. billing.", show_default=False)],
    json_output: output.JsonFlag = False,
) -> None:
    """Create a client: prints its API key and webhook signing secret, this once."""
    created: dict[str, Any] = session(ctx).call(KeyRole.ADMIN, "POST", CLIENTS_PATH, body={"name": name}).body or {}
    output.warn("The API key and webhook signing secret below are shown this once: store them now.")
    if json_output:
        output.print_json(created)
        return
    output.lines(created.items())


@app.command("list")
def list_clients(ctx: typer.Context, json_output: output.JsonFlag = False) -> None:
    """List every client (no keys or secrets)."""
    clients: list[dict[str, Any]] = (session(ctx).call(KeyRole.ADMIN, "GET", CLIENTS_PATH).body or {}).get(
        "clients", []
    )
    if json_output:
        output.print_json({"clients": clients})
        return
    output.stdout().print(
        output.table(
            f"Clients ({len(clients)})",
            ["id", "name", "enabled", "created at"],
            ((c.get("id"), c.get("name"), c.get("enabled"), c.get("created_at")) for c in clients),
        )
    )


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    client_id: IdArgument,
    grace: Annotated[
        int | None,
        typer.Option(min=0, help="Seconds the previous secret keeps signing too (Herald's default: 86400, 24 h)."),
    ] = None,
    json_output: output.JsonFlag = False,
) -> None:
    """Rotate a client's webhook signing secret: prints the new secret, this once.

    During the grace period every webhook carries both signatures, so receivers can switch at any time after
    new_secret_in_use_within_seconds and before previous_secret_valid_until.
    """
    body = None if grace is None else {"grace_period_seconds": grace}
    rotation: dict[str, Any] = (
        session(ctx).call(KeyRole.ADMIN, "POST", f"{client_path(client_id)}/rotate-signing-secret", body=body).body
        or {}
    )
    output.warn("The new webhook signing secret below is shown this once: store it now.")
    if json_output:
        output.print_json(rotation)
        return
    output.lines(rotation.items())
    output.stdout().print(
        Text(
            "Receivers may switch to the new secret after new_secret_in_use_within_seconds and must before "
            "previous_secret_valid_until; until then webhooks carry both signatures."
        )
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    client_id: IdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    json_output: output.JsonFlag = False,
) -> None:
    """Revoke a client: its API key stops working at once (notifications it sent are still delivered)."""
    if not yes and not typer.confirm(f"Revoke client {client_id}? Its API key stops working at once.", err=True):
        raise OperationFailed("revoke cancelled: the client keeps its key")
    revoked: dict[str, Any] = session(ctx).call(KeyRole.ADMIN, "DELETE", client_path(client_id)).body or {}
    if json_output:
        output.print_json(revoked)
        return
    output.stdout().print(output.fields(f"Revoked client {revoked.get('id', client_id)}", list(revoked.items())))
