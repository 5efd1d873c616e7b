"""`herald dlq list|redrive`: dead-lettered notifications, with the admin key."""

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from cli import output
from cli.errors import OperationFailed
from cli.session import Session, session
from cli.target import KeyRole
from cli.times import iso, parse_time

if TYPE_CHECKING:
    from datetime import datetime

app = typer.Typer(help="Dead-lettered notifications: list them, and redrive them (admin key).", no_args_is_help=True)

DEAD_LETTERS_PATH = "/admin/dead-letters"
REDRIVE_PATH = "/admin/dead-letters/redrive"
# A redrive is one request that may move many messages: API Gateway allows it 29 s.
REDRIVE_TIMEOUT_SECONDS = 60.0
SHOWN_IDS = 20
WIDE_TABLE_COLUMNS = 120  # narrower, `dlq list` prints a block per dead letter instead of a table

TIME_HELP = "an ISO 8601 time (UTC unless it says) or a duration ago: 30m, 2h, 1d"
ChannelOption = Annotated[str | None, typer.Option(help="Only this channel (email, sms, push, webhook).")]
ProviderOption = Annotated[str | None, typer.Option(help="Only this provider (e.g. sendgrid).")]
ErrorClassOption = Annotated[str | None, typer.Option(help="Only this error class (as `dlq list` shows it).")]
SinceOption = Annotated[str | None, typer.Option(help=f"Only those that failed at or after this: {TIME_HELP}.")]
UntilOption = Annotated[str | None, typer.Option(help=f"Only those that failed before this: {TIME_HELP}.")]


def _filters(
    current: Session,
    *,
    channel: str | None,
    provider: str | None,
    error_class: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, str]:
    """The filters given, times as ISO 8601 UTC; `BadParameter` (exit 2) for a time that names none."""
    now = current.deps.now()
    times: dict[str, datetime] = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                times[name] = parse_time(value, now=now)
            except ValueError as error:
                raise typer.BadParameter(str(error), param_hint=f"--{name}") from error
    if "since" in times and "until" in times and times["since"] >= times["until"]:
        raise typer.BadParameter("--since must be before --until", param_hint="--since")
    given = {"channel": channel, "provider": provider, "error_class": error_class}
    return {name: value for name, value in given.items() if value is not None} | {
        name: iso(moment) for name, moment in times.items()
    }


@app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    *,
    channel: ChannelOption = None,
    provider: ProviderOption = None,
    error_class: ErrorClassOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    json_output: output.JsonFlag = False,
) -> None:
    """List dead-lettered notifications (GET /admin/dead-letters), with their last error."""
    current = session(ctx)
    query: dict[str, str | int | None] = {
        **_filters(current, channel=channel, provider=provider, error_class=error_class, since=since, until=until),
        "limit": limit,
    }
    answer: dict[str, Any] = current.call(KeyRole.ADMIN, "GET", DEAD_LETTERS_PATH, query=query).body or {}
    if json_output:
        output.print_json(answer)
        return
    letters = answer.get("dead_letters") or []
    console = output.stdout()
    if not letters:
        console.print(Text("No dead letter matches."))
    elif console.width >= WIDE_TABLE_COLUMNS:
        console.print(_letters_table(letters))
    else:  # a narrow terminal: one block per dead letter, so ids and errors stay whole and readable
        for letter in letters:
            _print_letter(console, letter)
    scanned = answer.get("scanned")
    summary = f"Scanned {output.show(scanned)} message{'' if scanned == 1 else 's'}."
    if answer.get("truncated"):
        summary += " More match than shown: narrow the filters or raise --limit."
    console.print(Text(summary))


def _letters_table(letters: list[dict[str, Any]]) -> Any:
    return output.table(
        f"Dead letters ({len(letters)})",
        ["notification", "channel", "provider", "error class", "attempts", "last failure", "status", "error"],
        (
            (
                d.get("notification_id"),
                d.get("channel"),
                d.get("provider"),
                d.get("error_class"),
                d.get("attempts"),
                output.show_time(d.get("last_failure_at")),
                output.text(d.get("status"), output.state_style(d.get("status"))),
                d.get("error"),
            )
            for d in letters
        ),
    )


def _print_letter(console: Any, letter: dict[str, Any]) -> None:
    head = Text(output.show(letter.get("notification_id")), style="bold")
    head.append(f"  {output.show(letter.get('status'))}", style=output.state_style(letter.get("status")))
    console.print(head, soft_wrap=True)
    facts = (
        f"channel {output.show(letter.get('channel'))}, provider {output.show(letter.get('provider'))}, "
        f"{output.show(letter.get('error_class'))}, {output.show(letter.get('attempts'))} attempt(s), "
        f"last failed {output.show_time(letter.get('last_failure_at'))}"
    )
    console.print(Text(f"  {facts}"))
    console.print(Text(f"  {output.show(letter.get('error'))}"))


@app.command("redrive")
def redrive(
    ctx: typer.Context,
    *,
    channel: ChannelOption = None,
    provider: ProviderOption = None,
    error_class: ErrorClassOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    max_count: Annotated[
        int | None, typer.Option("--max", min=1, help="Move at most this many (Herald's default: 1000).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would move; move nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before moving.")] = False,
    json_output: output.JsonFlag = False,
) -> None:
    """Put dead-lettered notifications back on their queues (POST /admin/dead-letters/redrive).

    Without --dry-run and --yes, it first asks Herald what matches (a dry run), shows how many, and asks before
    moving them. Exits 1 when you decline.
    """
    current = session(ctx)
    request: dict[str, Any] = dict(
        _filters(current, channel=channel, provider=provider, error_class=error_class, since=since, until=until)
    )
    if max_count is not None:
        request["max"] = max_count
    if not dry_run and not yes:
        preview = _redrive(current, {**request, "dry_run": True}, "Finding matching dead letters", quiet=json_output)
        matched = int(preview.get("matched") or 0)
        if matched == 0:
            if json_output:
                output.print_json(preview)
            else:
                output.stdout().print(Text("No dead letter matches: nothing to move."))
            return
        if not typer.confirm(f"Move {matched} dead-lettered notification(s) back to their queues?", err=True):
            raise OperationFailed("redrive cancelled: nothing was moved")
    result = _redrive(
        current, {**request, "dry_run": dry_run}, "Dry run" if dry_run else "Redriving dead letters", quiet=json_output
    )
    _report(result, json_output)


def _redrive(current: Session, request: dict[str, Any], what: str, *, quiet: bool) -> dict[str, Any]:
    """One redrive request, with a spinner on stderr while Herald works, then a bar of moved out of matched."""
    if quiet:
        return (
            current.call(KeyRole.ADMIN, "POST", REDRIVE_PATH, body=request, timeout=REDRIVE_TIMEOUT_SECONDS).body or {}
        )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.stderr(),
    )
    with progress:
        task = progress.add_task(what, total=None)  # no total yet: a pulsing bar until Herald answers
        result: dict[str, Any] = (
            current.call(KeyRole.ADMIN, "POST", REDRIVE_PATH, body=request, timeout=REDRIVE_TIMEOUT_SECONDS).body or {}
        )
        matched = int(result.get("matched") or 0)
        done = matched if result.get("dry_run") else int(result.get("moved") or 0)
        progress.update(task, total=matched, completed=done, description=f"{what}: done")
    return result


def _report(result: dict[str, Any], json_output: bool) -> None:
    if json_output:
        output.print_json(result)
        return
    console = output.stdout()
    ids = result.get("notification_ids") or []
    rows: list[tuple[str, Any]] = [
        ("dry run", result.get("dry_run")),
        ("matched", result.get("matched")),
        ("moved", result.get("moved")),
        ("method", result.get("method")),
    ]
    if result.get("task_handle"):
        rows.append(("task handle", result["task_handle"]))
    if "truncated" in result:
        rows.append(("truncated", result.get("truncated")))
    shown = ", ".join(str(item) for item in ids[:SHOWN_IDS]) + (
        f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    )
    rows.append(("notifications", shown or None))
    console.print(output.fields("Redrive", rows))
    if result.get("dry_run"):
        hint = " Run it again without --dry-run to move them." if result.get("matched") else ""
        console.print(Text(f"Dry run: nothing was moved.{hint}"))
    if result.get("truncated"):
        console.print(
            Text("More match than were handled: run it again, or narrow the filters.", style=output.WARN_STYLE)
        )
