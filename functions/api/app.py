"""API Lambda: thin routes over the notification domain; every error is JSON and no bad input yields a 5xx."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from pydantic import TypeAdapter, ValidationError

from api import http
from api.errors import error_body, error_response, item_error, json_response
from api.openapi import openapi_document
from api.receipts import router as receipts_router
from api.settings import ApiSettings
from notifications import aws, requests
from notifications.accept import ItemAccepted, NotificationAcceptor
from notifications.accept_settings import build_acceptor
from notifications.budget import TimeBudget
from notifications.errors import (
    Forbidden,
    HeraldError,
    InvalidRequest,
    NotificationNotFound,
)
from notifications.health import DependencyProbe, mode_of
from notifications.models import IdempotencyKey, NotificationRequest, NotificationView
from notifications.observability import logger, metrics, with_lambda_context, with_tracing
from notifications.receipts.intake import ReceiptIntake, build_receipt_intake
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

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
    probe: DependencyProbe
    receipts: ReceiptIntake | None = None  # `POST /provider-events/{provider}` (api.receipts)


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
) -> Dependencies:
    """Everything the routes use; clients default to real ones that fit the API's timeout (the probe's fail fast)."""
    dynamodb = dynamodb or aws.client("dynamodb", api=True)
    sqs = sqs or aws.client("sqs", api=True)
    store = DynamoDBStatusStore(settings.notifications_table, client=dynamodb)
    probe = DependencyProbe(
        settings.notifications_table,
        {
            "priority": settings.priority_queue_url,
            "standard": settings.standard_queue_url,
            "batch": settings.batch_queue_url,
            "retry": settings.retry_queue_url,
            "dead_letter": settings.dead_letter_queue_url,
        },
        dynamodb=probe_dynamodb,
        sqs=probe_sqs,
    )
    receipts = build_receipt_intake(settings, sqs=sqs, secretsmanager=secretsmanager)
    acceptor = build_acceptor(settings, dynamodb=dynamodb, sqs=sqs, secretsmanager=secretsmanager)
    return Dependencies(settings, acceptor, store, probe, receipts)


def _deps() -> Dependencies:
    deps: Dependencies = app.context["deps"]
    return deps


# ---------------------------------------------------------------------- notifications
@app.post("/notifications")
def create_notification() -> Response[str]:
    deps = _deps()
    request = _parse_request(deps.settings.max_request_bytes)
    accepted = deps.acceptor.accept(request, scope=_caller_scope())
    headers = {"Location": f"/notifications/{accepted.view.id}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(202, accepted.view.model_dump(mode="json", exclude_none=True), headers)


@app.post("/notifications/batch")
def create_notification_batch() -> Response[str]:
    deps = _deps()
    items = _parse_batch(deps.settings.max_batch_request_bytes, deps.settings.max_request_bytes)
    # Each AWS call of the batch is made only while it and a take-back after it fit before Lambda's deadline.
    budget = TimeBudget(lambda: app.lambda_context.get_remaining_time_in_millis() / 1000)
    return _batch_response(deps.acceptor.accept_batch(items, scope=_caller_scope(), budget=budget))


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


# ---------------------------------------------------------------------- health
@app.get("/health/live")
def health_live() -> Response[str]:
    return json_response(200, {"status": "alive"})


@app.get("/health/ready")
def health_ready() -> Response[str]:
    checks = _deps().probe.run()
    mode = mode_of(checks)
    ready = all(check.ok for check in checks)
    body = {"status": "ready" if ready else "not_ready", "mode": mode, "checks": {c.name: c.as_dict() for c in checks}}
    return json_response(200 if ready else 503, body, None if ready else {"Retry-After": "5"})


@app.get("/health")
def health() -> Response[str]:
    checks = _deps().probe.run()
    healthy = all(check.ok for check in checks)
    return json_response(200, {"status": "healthy" if healthy else "unhealthy", "mode": mode_of(checks)})


@app.get("/openapi.json")
def openapi() -> Response[str]:
    return json_response(200, openapi_document())


# ---------------------------------------------------------------------- errors
@app.exception_handler(HeraldError)  # type: ignore[untyped-decorator]
def handle_herald_error(error: HeraldError) -> Response[str]:
    if error.code == "service_unavailable":
        logger.error("service unavailable", extra={"reason": error.message})
    return error_response(error)


@app.not_found
def handle_not_found(_: Exception) -> Response[str]:
    return json_response(404, error_body("not_found", "No such route"))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def handle_unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error", extra={"error_type": type(error).__name__})
    return json_response(500, error_body("internal_error", "An unexpected error occurred; it has been logged"))


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


def _batch_response(outcome: BatchOutcome) -> Response[str]:
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
    app.append_context(deps=chosen, receipts=chosen.receipts)  # type: ignore[no-untyped-call]
    return app.resolve(event, context)


@with_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
