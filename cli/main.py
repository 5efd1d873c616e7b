"""The `herald` command: the root, its targeting options, and the one place errors become exit codes."""

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli import breakers, clients, dead_letters, health, notifications
from cli.errors import CliError, ExitCode
from cli.output import stderr
from cli.session import DEFAULT_TIMEOUT_SECONDS, Dependencies, Session
from cli.target import TargetOptions

HELP = """\
Operate and use Herald over its HTTP API: send and follow notifications, read health, force circuit breakers,
redrive dead letters, and manage clients.

Target: --url/--api-key/--admin-key (or HERALD_API_URL, HERALD_API_KEY, HERALD_ADMIN_API_KEY), or --stack NAME (the
stack's outputs ApiUrl, ApiKeyId, AdminApiKeyId, read with your AWS credentials); by default the local runtime of
`make run` at http://127.0.0.1:$HERALD_API_PORT (3000) with its keys. Admin commands (breakers, dlq, clients) send
the admin key, the others the client key.

Exit codes: 0 ok; 1 the operation failed or Herald answered an error; 2 bad usage; 3 cannot reach the target.
"""


class HeraldGroup(TyperGroup):
    """Reports a `CliError` from any command plainly on stderr and exits with its code (see `cli.errors`)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            console = stderr()
            console.print(f"Error: {error.headline()}", markup=False, style="red", soft_wrap=True)
            for detail in error.details:
                console.print(f"  - {detail}", markup=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None


app = typer.Typer(
    name="herald",
    cls=HeraldGroup,
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # locals would include keys
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    *,
    url: Annotated[
        str | None, typer.Option(envvar="HERALD_API_URL", help="The API's base URL (a stage URL for AWS).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="HERALD_API_KEY", help="A client's API key (send, status, watch, health).")
    ] = None,
    admin_key: Annotated[
        str | None, typer.Option(envvar="HERALD_ADMIN_API_KEY", help="The admin key (breakers, dlq, clients).")
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(envvar="HERALD_STACK", help="A deployed stack's name: its outputs give the URL and keys."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region of --stack (default: your AWS configuration).")] = None,
    profile: Annotated[
        str | None, typer.Option(help="AWS profile for --stack (default: your AWS configuration).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for each HTTP answer.")
    ] = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    deps = ctx.obj if isinstance(ctx.obj, Dependencies) else Dependencies()
    options = TargetOptions(url=url, api_key=api_key, admin_key=admin_key, stack=stack, region=region, profile=profile)
    ctx.obj = Session.start(options, deps, timeout=timeout)


app.command("send", no_args_is_help=True)(notifications.send)
app.command("status", no_args_is_help=True)(notifications.status)
app.command("watch", no_args_is_help=True)(notifications.watch)
app.command("health")(health.health)
app.add_typer(breakers.app, name="breakers")
app.add_typer(dead_letters.app, name="dlq")
app.add_typer(clients.app, name="clients")

__all__ = ["ExitCode", "app"]
