"""`herald send`, `herald status ID` and `herald watch ID`: notifications, with the client key."""

import json
import urllib.parse
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cli import output
from cli.errors import OperationFailed
from cli.session import session
from cli.target import KeyRole

TERMINAL_FAILURES = frozenset({"failed", "dead_lettered"})


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Until(StrEnum):
    """Where `watch` stops: `sent` (or any later end), or only `delivered` (or a failure)."""

    SENT = "sent"
    DELIVERED = "delivered"

    def reached(self) -> frozenset[str]:
        """The statuses that end a watch successfully."""
        return frozenset({"delivered"} if self is Until.DELIVERED else {"sent", "delivered"})


def notification_path(notification_id: str) -> str:
    return f"/notifications/{urllib.parse.quote(notification_id, safe='')}"


# ---------------------------------------------------------------------- send
def send(
    ctx: typer.Context,
    *,
    channel: Annotated[
        Channel,
        typer.Argument(
            metavar="CHANNEL", help="The channel to deliver on: email, sms, push or webhook.", show_default=False
        ),
    ],
    body: Annotated[str, typer.Option("--body", "-b", help="The text to send.", show_default=False)],
    email: Annotated[str | None, typer.Option(help="Recipient's email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Recipient's phone number (E.164, e.g. +447700900123).")] = None,
    device_token: Annotated[str | None, typer.Option(help="Recipient's push device token.")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Recipient's webhook URL.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", "-s", help="Subject (required for email).")] = None,
    priority: Annotated[Priority | None, typer.Option(help="Priority (Herald's default: normal).")] = None,
    fallback: Annotated[
        list[Channel] | None, typer.Option(help="A fallback channel, tried in order; repeat for more.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Sent as Idempotency-Key: the same key and request never send twice.")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="JSON data (webhook payload, push data), or @FILE to read it from a file.")
    ] = None,
    metadata: Annotated[list[str] | None, typer.Option(help="KEY=VALUE metadata; repeat for more.")] = None,
    json_output: output.JsonFlag = False,
) -> None:
    """Send one notification (POST /notifications) and print Herald's 202 answer, with any notice."""
    recipient = {
        name: value
        for name, value in (
            ("email", email),
            ("phone", phone),
            ("device_token", device_token),
            ("webhook_url", webhook_url),
        )
        if value is not None
    }
    if not recipient:
        raise typer.BadParameter("give the recipient: --email, --phone, --device-token and/or --webhook-url")
    request: dict[str, Any] = {"channel": channel.value, "recipient": recipient, "body": body}
    if subject is not None:
        request["subject"] = subject
    if priority is not None:
        request["priority"] = priority.value
    if fallback:
        request["fallback_channels"] = [item.value for item in fallback]
    if data is not None:
        request["data"] = _json_data(data)
    if metadata:
        request["metadata"] = _metadata(metadata)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None

    answer = session(ctx).call(KeyRole.CLIENT, "POST", "/notifications", body=request, headers=headers)
    accepted: dict[str, Any] = answer.body or {}
    replayed = (answer.header("Idempotent-Replayed") or "").lower() == "true"
    if json_output:
        output.print_json(accepted)
        return
    console = output.stdout()
    verb = "Already accepted (idempotent replay)" if replayed else "Accepted"
    console.print(Text(f"{verb}: {accepted.get('id')}", style="bold"))
    rows = [(name, value) for name, value in accepted.items() if name != "notice"]
    rows.append(("location", answer.header("Location")))
    console.print(output.fields(None, rows))
    if accepted.get("notice"):
        console.print(Text(f"Notice: {accepted['notice']}", style=output.WARN_STYLE))


def _json_data(raw: str) -> Any:
    source = "--data"
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as error:
            raise typer.BadParameter(f"cannot read {path}: {error.strerror}", param_hint="--data") from error
        source = str(path)
    try:
        return json.loads(raw)
    except ValueError as error:
        raise typer.BadParameter(f"{source} is not valid JSON: {error}", param_hint="--data") from error


def _metadata(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--metadata")
        result[name] = value
    return result


# ---------------------------------------------------------------------- status
def status(
    ctx: typer.Context,
    notification_id: Annotated[str, typer.Argument(metavar="ID", help="The notification's id.", show_default=False)],
    json_output: output.JsonFlag = False,
) -> None:
    """Show a notification (GET /notifications/{id}): its status, why, and its history."""
    notification = session(ctx).call(KeyRole.CLIENT, "GET", notification_path(notification_id)).body or {}
    if json_output:
        output.print_json(notification)
        return
    console = output.stdout()
    rows: list[tuple[str, Any]] = [
        (name, output.text(value, output.state_style(value)) if name == "status" else value)
        for name, value in notification.items()
        if name != "history"
    ]
    console.print(output.fields(f"Notification {notification.get('id', notification_id)}", rows))
    console.print(_history_table(notification.get("history") or []))


def _history_table(history: list[dict[str, Any]]) -> Any:
    return output.table(
        "History",
        ["at", "status", "detail"],
        (
            (
                entry.get("at"),
                output.text(entry.get("status"), output.state_style(entry.get("status"))),
                entry.get("detail"),
            )
            for entry in history
        ),
    )


# ---------------------------------------------------------------------- watch
def watch(
    ctx: typer.Context,
    *,
    notification_id: Annotated[str, typer.Argument(metavar="ID", help="The notification's id.", show_default=False)],
    until: Annotated[
        Until, typer.Option(help="Stop at sent (or later), or wait for delivered (a provider's receipt).")
    ] = Until.SENT,
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds (exit 1).")] = 120.0,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between two looks.")] = 1.0,
    json_output: output.JsonFlag = False,
) -> None:
    """Follow a notification's history until it ends: sent, delivered, failed or dead_lettered.

    Prints each new history entry as it appears. Exits 0 when the notification reached --until, 1 when it failed,
    was dead-lettered, or the timeout passed first.
    """
    current = session(ctx)
    clock, sleep = current.deps.monotonic, current.deps.sleep
    console = output.stdout()
    goal = until.reached()
    done = goal | TERMINAL_FAILURES
    deadline = clock() + timeout
    printed = 0
    while True:
        notification: dict[str, Any] = (
            current.call(KeyRole.CLIENT, "GET", notification_path(notification_id)).body or {}
        )
        history = notification.get("history") or []
        if not json_output:
            for entry in history[printed:]:
                console.print(_history_line(entry), soft_wrap=True)
        printed = max(printed, len(history))
        state = str(notification.get("status"))
        if state in done:
            break
        left = deadline - clock()
        if left <= 0:
            if json_output:
                output.print_json(notification)
            raise OperationFailed(f"{notification_id} is still {state} after {timeout:g} s (waiting for {until.value})")
        sleep(min(interval, left))
    if json_output:
        output.print_json(notification)
    else:
        console.print(Text(_ending(notification), style=output.state_style(state)), soft_wrap=True)
    if state not in goal:
        raise typer.Exit(1)


def _history_line(entry: dict[str, Any]) -> Text:
    line = Text(f"{output.show(entry.get('at'))}  ")
    line.append(f"{output.show(entry.get('status')):<14}", style=output.state_style(entry.get("status")))
    if entry.get("detail"):
        line.append(f"  {entry['detail']}")
    return line


def _ending(notification: dict[str, Any]) -> str:
    state = notification.get("status")
    how = notification.get("reason") or notification.get("error")
    return f"{notification.get('id')} is {state}" + (f" ({how})" if how else "")
