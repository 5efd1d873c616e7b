"""Admin Lambda, for the admin key only: clients and erasure (`admin.clients`), circuit breakers
(`admin.breakers`) and dead letters (`admin.dead_letters`), each a Powertools router.

Every action writes one audit line (`"audit": true`: who, what, on what, how it ended, when), with no
personal data and never a key or a secret (`admin.common.audit`); refusals are audited too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths

from admin import breakers, clients, dead_letters
from admin.dependencies import Dependencies, build_dependencies, default_dependencies
from api import http
from api.errors import install_error_handlers
from notifications.errors import Forbidden, HeraldError
from notifications.observability import logger, metrics, with_lambda_context, with_tracing

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["Dependencies", "app", "build_dependencies", "default_dependencies", "handle", "lambda_handler"]

app = APIGatewayRestResolver()


def _admin_only(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every admin route: the admin key only (403 for a client's key; API Gateway refuses no key with 401)."""
    deps: Dependencies = resolver.context["deps"]
    if http.caller_key_id(resolver) != deps.settings.admin_client_id:
        raise Forbidden("only the admin key may use the admin API")
    return next_middleware(resolver)


app.use(middlewares=[_admin_only])
for _router in (clients.router, breakers.router, dead_letters.router):
    app.include_router(_router)


def _audit_refusal(error: HeraldError) -> None:
    event = app.current_event
    logger.info(
        "admin action refused",
        extra={
            "audit": True,
            "actor": http.caller_key_id(app),
            "action": f"{event.http_method} {event.resource}",
            "outcome": error.code,
        },
    )


install_error_handlers(app, _audit_refusal)  # every error as JSON; refusals audited too


# ---------------------------------------------------------------------- entry point
def handle(event: dict[str, Any], context: LambdaContext, deps: Dependencies | None = None) -> dict[str, Any]:
    app.append_context(deps=deps or default_dependencies())  # type: ignore[no-untyped-call]
    return app.resolve(event, context)


@with_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
