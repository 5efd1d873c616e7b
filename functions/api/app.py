"""API Lambda: thin routes over the notification domain; every error is JSON and no bad input yields a 5xx."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from pydantic import TypeAdapter, ValidationError

from api import http
from api.errors import error_body, error_response, install_error_handlers, item_error, json_response
from api.openapi import openapi_document
from api.receipts import router as receipts_router
from api.settings import ApiSettings
from notifications import aws, requests
from notifications.accept import ItemAccepted, NotificationAcceptor
from notifications.accept_settings import build_acceptor
from notifications.budget import TimeBudget
from notifications.clock import Clock, system_clock
from notifications.errors import (
    DependencyUnavailable,
    Forbidden,
    HeraldError,
    InvalidRequest,
    NotificationNotFound,
)
from notifications.health import ColdStart, HealthViews, build_health_views, plain_unavailable
from notifications.metric_catalog import count_accepted
from notifications.models import IdempotencyKey, NotificationRequest, NotificationView
from notifications.observability import logger, metrics, with_lambda_context, with_tracing
from notifications.receipts.intake import ReceiptIntake, build_receipt_intake
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from pydantic import BaseModel

    from notifications.accept import BatchOutcome
    from notifications.models import NotificationRecord
    from notifications.ports import StatusStore

app = APIGatewayRestResolver()
_IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(IdempotencyKey)
app.include_router(receipts_router)


@dataclass(frozen=True)
class Dependencies:
    settings: ApiSettings
    acceptor: NotificationAcceptor
    store: StatusStore
    health: HealthViews
    receipts: ReceiptIntake | None = None  # `POST /provider-events/{provider}` (api.receipts)
    cold_start: ColdStart = field(default_factory=ColdStart)  # one per execution environment, as these are


@cache
def default_dependencies() -> Dependencies:
    """Built once per execution environment, from the environment's settings."""
    return build_dependencies(load_settings(ApiSettings))


def build_dependencies(
    settings: ApiSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sqs: SQSClient | None = None,
    probe_dynamodb: DynamoDBClient | None = None,
    probe_sqs: SQSClient | None = None,
    secretsmanager: SecretsManagerClient | None = None,
    clock: Clock = system_clock,
) -> Dependencies:
    """Everything the routes use; clients default to real ones that fit the API's timeout (the health views'
    probe clients fail fast); `clock` is the health views' (snapshot age, cache periods)."""
    dynamodb = dynamodb or aws.client("dynamodb", api=True)
    sqs = sqs or aws.client("sqs", api=True)
    store = DynamoDBStatusStore(settings.notifications_table, client=dynamodb)
    health = build_health_views(
        settings.health,
        dynamodb=probe_dynamodb or aws.client("dynamodb", probe=True),
        sqs=probe_sqs or aws.client("sqs", probe=True),
        clock=clock,
    )
    receipts = build_receipt_intake(settings, sqs=sqs, secretsmanager=secretsmanager)
    acceptor = build_acceptor(settings, dynamodb=dynamodb, sqs=sqs, secretsmanager=secretsmanager)
    return Dependencies(settings, acceptor, store, health, receipts)


def _deps() -> Dependencies:
    deps: Dependencies = app.context["deps"]
    return deps


# ---------------------------------------------------------------------- notifications
@app.post("/notifications")
def create_notification() -> Response[str]:
    deps = _deps()
    request = _parse_request(deps.settings.max_request_bytes)
    accepted = deps.acceptor.accept(request, scope=_caller_scope())
    count_accepted([accepted])
    headers = {"Location": f"/notifications/{accepted.view.id}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    # While a channel is not fully well the caller is told, in the monitor's words (a replay too: it is news).
    view = accepted.view.model_copy(update={"notice": _notices(deps).get(accepted.view.channel)})
    return json_response(202, view.model_dump(mode="json", exclude_none=True), headers)


@app.post("/notifications/batch")
def create_notification_batch() -> Response[str]:
    deps = _deps()
    items = _parse_batch(deps.settings.max_batch_request_bytes, deps.settings.max_request_bytes)
    # Each AWS call of the batch is made only while it and a take-back after it fit before Lambda's deadline.
    budget = TimeBudget(lambda: app.lambda_context.get_remaining_time_in_millis() / 1000)
    outcome = deps.acceptor.accept_batch(items, scope=_caller_scope(), budget=budget)
    count_accepted(result.accepted for result in outcome.results if isinstance(result, ItemAccepted))
    return _batch_response(outcome, _notices(deps) if outcome.accepted else {})


@app.get("/notifications")
def find_notification() -> Response[str]:
    """`GET /notifications?idempotency_key=...`: the notification that key made for the caller's client."""
    key = app.current_event.get_query_string_value("idempotency_key")
    try:
        _IDEMPOTENCY_KEY.validate_python(key)
    except ValidationError:
        raise InvalidRequest(
            "give the idempotency key to look up",
            details=[{"field": "idempotency_key", "message": "required: 1 to 255 printable ASCII characters"}],
        ) from None
    assert key is not None  # validated
    deps = _deps()
    record = _owned(deps.store.get(deps.acceptor.ids.for_key(_caller_scope(), key)))
    if record is None:
        raise NotificationNotFound("no notification was made with this idempotency key")
    return json_response(200, NotificationView.of(record).model_dump(mode="json"))


@app.get("/notifications/<notification_id>")
def get_notification(notification_id: str) -> Response[str]:
    record = _owned(_deps().store.get(notification_id)) if len(notification_id) <= 128 else None
    if record is None:
        raise NotificationNotFound("no notification with this id")
    return json_response(200, NotificationView.of(record).model_dump(mode="json"))


def _owned(record: NotificationRecord | None) -> NotificationRecord | None:
    """The record if the caller's client created it; another client's is as good as missing (404, never 403,
    so ids cannot be probed)."""
    return record if record is not None and record.client == _caller_scope() else None


# ---------------------------------------------------------------------- health (notifications.health)
# Keyless: /health, /health/live (no AWS call), /health/ready (a live check, kept a few seconds).
@app.get("/health")
def health() -> Response[str]:
    return _report(_deps().health.status("ok"))


@app.get("/health/live")
def health_live() -> Response[str]:
    return _report(_deps().health.status("alive"))


@app.get("/health/ready")
def health_ready() -> Response[str]:
    health = _deps().health
    report = health.ready()
    return _report(report, down=report.status != "ready", retry_after=health.ready_retry_after)


# Keyed: the monitor's snapshot (503 when there is no fresh one), or probed live on request.
@app.get("/health/detailed")
def health_detailed() -> Response[str]:
    return _report(_deps().health.detailed(admin=_is_admin()))


@app.get("/health/db")
def health_db() -> Response[str]:
    report = _deps().health.database(live=_live())
    return _report(report, down=report.status == "down")


@app.get("/health/queues")
def health_queues() -> Response[str]:
    report = _deps().health.queues(live=_live())
    return _report(report, down=report.status == "down")


@app.get("/health/providers")
def health_providers() -> Response[str]:
    return _report(_deps().health.providers())


@app.get("/health/circuit-breakers")
def health_circuit_breakers() -> Response[str]:
    return _report(_deps().health.breakers(admin=_is_admin()))


@app.get("/health/system")
def health_system() -> Response[str]:
    context = app.lambda_context
    report = _deps().health.system(
        memory_limit_mb=int(context.memory_limit_in_mb),
        cold_start=bool(app.context.get("cold_start", False)),
        function_name=context.function_name,
    )
    return _report(report)


def _report(report: BaseModel, *, down: bool = False, retry_after: int = 5) -> Response[str]:
    """200 with the report; 503 with it and `Retry-After` when what it watches is down."""
    body = report.model_dump(mode="json")
    return json_response(503, body, {"Retry-After": str(retry_after)}) if down else json_response(200, body)


def _live() -> bool:
    """`?live=true` probes now instead of serving the snapshot."""
    value = app.current_event.get_query_string_value("live")
    if value is None or value.lower() in {"true", "false"}:
        return value is not None and value.lower() == "true"
    raise InvalidRequest("live is true or false", details=[{"field": "live", "message": "must be true or false"}])


def _is_admin() -> bool:
    admin = _deps().settings.admin_client_id
    return bool(admin) and http.caller_key_id(app) == admin


def _notices(deps: Dependencies) -> Mapping[str, str]:
    """Channel -> the monitor's plain sentence, while the mode is not NORMAL (read only if time allows)."""
    return deps.health.notices(time_left_seconds=app.lambda_context.get_remaining_time_in_millis() / 1000)


@app.get("/openapi.json")
def openapi() -> Response[str]:
    return json_response(200, openapi_document())


# ---------------------------------------------------------------------- errors
def _log_unavailable(error: HeraldError) -> None:
    if error.code == "service_unavailable":
        logger.error("service unavailable", extra={"reason": error.message})


install_error_handlers(app, _log_unavailable)


@app.exception_handler(DependencyUnavailable)  # type: ignore[untyped-decorator]
def handle_unavailable(error: DependencyUnavailable) -> Response[str]:
    """503: what Herald cannot reach and when to retry, in plain words (the log keeps the technical reason)."""
    _log_unavailable(error)
    reading = app.current_event.http_method == "GET"
    outcome = "it could not be read" if reading else "nothing was accepted"
    return error_response(plain_unavailable(error, outcome=outcome))


# ---------------------------------------------------------------------- request parsing
def _parse_request(max_bytes: int) -> NotificationRequest:
    payload = _json_object(max_bytes)
    header_key = _header("idempotency-key")
    if header_key is not None:
        body_key = payload.get("idempotency_key")
        if body_key is not None and body_key != header_key:
            raise InvalidRequest(
                "the Idempotency-Key header and the body's idempotency_key differ",
                details=[{"field": "idempotency_key", "message": "differs from the Idempotency-Key header"}],
            )
        payload["idempotency_key"] = header_key
    return requests.notification(payload)


def _parse_batch(max_bytes: int, max_item_bytes: int) -> list[NotificationRequest | HeraldError]:
    """The batch's envelope (errors fail the whole request), then each notification on its own."""
    payload = _json_object(max_bytes)
    if _header("idempotency-key") is not None:
        raise InvalidRequest(
            "a batch takes no Idempotency-Key header: give each notification its own idempotency_key",
            details=[{"field": "Idempotency-Key", "message": "not accepted on a batch"}],
        )
    return requests.batch(payload, max_item_bytes)


def _batch_response(outcome: BatchOutcome, notices: Mapping[str, str]) -> Response[str]:
    """202 when every notification was accepted, 207 when some were not, 422 when none was (then the body is
    also the error shape, its details every rejected notification's)."""
    results: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for result in outcome.results:
        if isinstance(result, ItemAccepted):
            view = result.accepted.view
            accepted: dict[str, Any] = {"index": result.index, "id": view.id, "status": view.status.value}
            if result.accepted.replayed:
                accepted["replayed"] = True
            if view.channel in notices:
                accepted["notice"] = notices[view.channel]
            results.append(accepted)
        else:
            rejected = item_error(result.index, result.error)
            results.append(rejected)
            details.extend(rejected["error"].get("details", [{"field": f"notifications[{result.index}]"}]))
    body: dict[str, Any] = {"accepted": outcome.accepted, "rejected": outcome.rejected, "results": results}
    if not outcome.accepted:
        message = "no notification of the batch was accepted"
        return json_response(422, {**error_body("batch_rejected", message, details), **body})
    return json_response(202 if not outcome.rejected else 207, body)


def _json_object(max_bytes: int) -> dict[str, Any]:
    return http.json_object(app, max_bytes)


def _header(name: str) -> str | None:
    return http.header(app, name)


def _caller_scope() -> str:
    """Idempotency keys and notifications are per client: the caller's API key id. The admin key manages
    clients and sends nothing (403)."""
    scope = http.caller_key_id(app)
    if scope == _deps().settings.admin_client_id:
        raise Forbidden("the admin key manages clients and sends nothing: use a client's API key")
    return scope


# ---------------------------------------------------------------------- entry point
def handle(event: dict[str, Any], context: LambdaContext, deps: Dependencies | None = None) -> dict[str, Any]:
    chosen = deps or default_dependencies()
    cold_start = chosen.cold_start.take()
    app.append_context(deps=chosen, receipts=chosen.receipts, cold_start=cold_start)  # type: ignore[no-untyped-call]
    return app.resolve(event, context)


@with_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
