"""`herald health`: the health monitor's whole picture (GET /health/detailed), or readiness without a key."""

from typing import Any

import typer
from rich.text import Text

from cli import output
from cli.errors import ExitCode
from cli.session import session
from cli.target import KeyRole


def health(ctx: typer.Context, json_output: output.JsonFlag = False) -> None:
    """Show Herald's health: the mode and why, every check, providers, queues and breakers.

    Reads GET /health/detailed with the client key; with no key for the target, GET /health/ready (keyless: the
    mode and the live checks of the table and queues). Exits 1 when Herald answers 503 (not ready, or no fresh
    snapshot).
    """
    current = session(ctx)
    key = current.target.key(KeyRole.CLIENT)
    if key:
        report = current.call(KeyRole.CLIENT, "GET", "/health/detailed").body or {}
        source = "/health/detailed"
    else:
        answer = current.http.request("GET", "/health/ready", key=None)
        if answer.status != 503 or not isinstance(answer.body, dict) or "mode" not in answer.body:
            answer.ok_or_raise()  # a 503 with the readiness report is shown below, then exit 1
        report = answer.body or {}
        source = "/health/ready"
        output.warn("No API key for this target: showing /health/ready. Pass --api-key for the detailed view.")
    ready = report.get("status") != "not_ready"
    if json_output:
        output.print_json(report)
    else:
        _render(report, source)
    if not ready:
        raise typer.Exit(ExitCode.FAILED)


def _render(report: dict[str, Any], source: str) -> None:
    console = output.stdout()
    mode = report.get("mode")
    line = Text("Mode: ", style="bold")
    line.append(output.show(mode), style=output.state_style(mode))
    line.append(f"  {output.show(report.get('reason'))}")
    console.print(line)
    facts = [("source", source), ("snapshot age (s)", report.get("snapshot_age_seconds"))]
    if "taken_at" in report:
        facts.append(("taken at", output.show_time(report.get("taken_at"))))
    if "status" in report:
        facts.append(("status", output.text(report["status"], output.state_style(report["status"]))))
    if report.get("version"):
        facts.append(("version", report["version"]))
    console.print(output.fields(None, facts))
    console.print(_checks(report.get("checks")))
    if report.get("providers"):
        console.print(
            output.table(
                "Providers",
                ["channel", "provider", "breaker", "up"],
                (
                    (p.get("channel"), p.get("name"), _styled(p.get("state")), _styled_flag(p.get("up")))
                    for p in report["providers"]
                ),
            )
        )
    if report.get("queues"):
        console.print(
            output.table(
                "Queues",
                ["queue", "visible", "in flight", "delayed", "oldest (s)", "DLQ"],
                (
                    (
                        q.get("name"),
                        q.get("visible"),
                        q.get("in_flight"),
                        q.get("delayed"),
                        q.get("oldest_age_seconds"),
                        q.get("dead_letter"),
                    )
                    for q in report["queues"]
                ),
            )
        )
    if report.get("breakers"):
        console.print(
            output.table(
                "Breakers that stored a state",
                ["breaker", "state", "permits calls", "failure rate", "calls", "open until"],
                (
                    (
                        b.get("name"),
                        _styled(b.get("state")),
                        b.get("permits_calls"),
                        b.get("failure_rate"),
                        b.get("calls"),
                        output.show_time(b.get("open_until")),
                    )
                    for b in report["breakers"]
                ),
            )
        )
    if report.get("webhook_breakers_open"):
        console.print(Text(f"Webhook breakers open: {report['webhook_breakers_open']}", style=output.WARN_STYLE))
    for channel, notice in (report.get("notices") or {}).items():
        console.print(Text(f"Notice for {channel}: {notice}", style=output.WARN_STYLE))


def _checks(checks: Any) -> Any:
    """Both shapes: a list of `{name, ok, latency_ms, error}` (detailed) or a name -> check mapping (ready)."""
    if isinstance(checks, dict):
        rows = [{"name": name, **(check if isinstance(check, dict) else {})} for name, check in checks.items()]
    else:
        rows = [check for check in checks or [] if isinstance(check, dict)]
    return output.table(
        "Checks",
        ["check", "ok", "latency (ms)", "error"],
        ((c.get("name"), _styled_flag(c.get("ok")), c.get("latency_ms"), c.get("error")) for c in rows),
    )


def _styled(state: Any) -> Text:
    return output.text(state, output.state_style(state))


def _styled_flag(flag: Any) -> Text:
    return output.text(flag, output.OK_STYLE if flag is True else output.BAD_STYLE)
