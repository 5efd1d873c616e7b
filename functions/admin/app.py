"""Admin Lambda: clients (create, list, read, rotate their signing secret, revoke), for the admin key only.

Every action writes one audit line (`"audit": true`: who, what, on what, how it ended, when), with no
personal data and never a key or a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationError, model_validator

from admin.settings import AdminSettings
from api import http
from api.errors import install_error_handlers, json_response
from notifications import aws
from notifications.clients import ClientRegistry
from notifications.clock import Clock, system_clock
from notifications.erasure import RecipientEraser
from notifications.errors import Forbidden, HeraldError, InvalidRequest
from notifications.ids import KeyedIds
from notifications.models import ERASABLE_ADDRESSES, PhoneNumber
from notifications.observability import logger, metrics, with_lambda_context, with_tracing
from notifications.providers.secrets import ProviderSecrets
from notifications.requests import validation_details
from notifications.settings import load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

app = APIGatewayRestResolver()


def _admin_only(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every admin route: the admin key only (403 for a client's key; API Gateway refuses no key with 401)."""
    if http.caller_key_id(resolver) != _deps().settings.admin_client_id:
        raise Forbidden("only the admin key may use the admin API")
    return next_middleware(resolver)


app.use(middlewares=[_admin_only])


class CreateClientRequest(BaseModel):
    """`POST /admin/clients`: a label for the client (shown in lists; not a secret, not personal data)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w .@:/+-]+$")]


class EraseRequest(BaseModel):
    """`POST /admin/erasure`: exactly one address whose notifications are all deleted."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = None
    phone: PhoneNumber | None = None
    device_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None

    @model_validator(mode="after")
    def _one_address(self) -> EraseRequest:
        if sum(value is not None for value in (self.email, self.phone, self.device_token)) != 1:
            raise ValueError("give exactly one of email, phone or device_token")
        return self

    def address(self) -> tuple[str, str]:
        kind = next(kind for kind in ERASABLE_ADDRESSES if getattr(self, kind) is not None)
        return kind, str(getattr(self, kind))


class RotateRequest(BaseModel):
    """`POST /admin/clients/{id}/rotate-signing-secret`: how long the previous secret still signs."""

    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int | None = Field(default=None, ge=0, le=30 * 86_400)


@dataclass(frozen=True)
class Dependencies:
    settings: AdminSettings
    clients: ClientRegistry
    eraser: RecipientEraser


@cache
def default_dependencies() -> Dependencies:
    """Built once per execution environment, from the environment's settings."""
    return build_dependencies(load_settings(AdminSettings))


def build_dependencies(
    settings: AdminSettings,
    *,
    apigateway: APIGatewayClient | None = None,
    secretsmanager: SecretsManagerClient | None = None,
    dynamodb: DynamoDBClient | None = None,
    clock: Clock = system_clock,
) -> Dependencies:
    """The registry and the eraser over real clients that fit the API's timeout, unless given others."""
    secretsmanager = secretsmanager or aws.client("secretsmanager", api=True)
    secrets_cache = ProviderSecrets(settings.secrets_max_age_seconds, client=secretsmanager)
    clients = ClientRegistry(
        settings.usage_plan_id,
        apigateway=apigateway or aws.client("apigateway", api=True),
        secretsmanager=secretsmanager,
        clock=clock,
        protected=frozenset({settings.admin_client_id, settings.default_client_id}),
    )
    ids = KeyedIds.from_secret(secrets_cache.json(settings.idempotency_secret_name)())
    eraser = RecipientEraser(settings.notifications_table, client=dynamodb or aws.client("dynamodb", api=True), ids=ids)
    return Dependencies(settings, clients, eraser)


def _deps() -> Dependencies:
    deps: Dependencies = app.context["deps"]
    return deps


# ---------------------------------------------------------------------- clients
@app.post("/admin/clients")
def create_client() -> Response[str]:
    request = _body(CreateClientRequest)
    created = _deps().clients.create(request.name)
    _audit("client.create", created.id)
    body = created.model_dump(mode="json")
    return json_response(201, body, {"Location": f"/admin/clients/{created.id}", "Cache-Control": "no-store"})


@app.get("/admin/clients")
def list_clients() -> Response[str]:
    clients = _deps().clients.list()
    _audit("client.list", None)
    return json_response(200, {"clients": [client.model_dump(mode="json") for client in clients]})


@app.get("/admin/clients/<client_id>")
def get_client(client_id: str) -> Response[str]:
    client = _deps().clients.get(client_id)
    _audit("client.read", client_id)
    return json_response(200, client.model_dump(mode="json"))


@app.post("/admin/clients/<client_id>/rotate-signing-secret")
def rotate_signing_secret(client_id: str) -> Response[str]:
    deps = _deps()
    request = _body(RotateRequest) if http.has_body(app) else RotateRequest()
    grace = (
        deps.settings.rotation_grace_seconds if request.grace_period_seconds is None else request.grace_period_seconds
    )
    rotation = deps.clients.rotate(client_id, grace_seconds=grace)
    _audit("client.rotate_signing_secret", client_id, grace_period_seconds=grace)
    return json_response(200, rotation.model_dump(mode="json"), {"Cache-Control": "no-store"})


@app.delete("/admin/clients/<client_id>")
def revoke_client(client_id: str) -> Response[str]:
    client = _deps().clients.revoke(client_id)
    _audit("client.revoke", client_id)
    return json_response(200, client.model_dump(mode="json"))


# ---------------------------------------------------------------------- erasure
@app.post("/admin/erasure")
def erase_recipient() -> Response[str]:
    kind, address = _body(EraseRequest).address()
    removed = _deps().eraser.erase(kind, address)
    _audit("recipient.erase", None, address_kind=kind, removed=removed)  # never the address
    return json_response(200, {"removed": removed, "address_kind": kind})


# ---------------------------------------------------------------------- helpers
def _body(model: type[Any]) -> Any:
    payload = http.json_object(app, _deps().settings.max_request_bytes)
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidRequest("the request body is not valid", details=validation_details(error)) from error


def _audit(action: str, target: str | None, **fields: Any) -> None:
    """One line per admin action: who (the admin key's id), what, on what; never a key, secret or address."""
    logger.info(
        "admin action",
        extra={"audit": True, "actor": http.caller_key_id(app), "action": action, "target": target, **fields},
    )


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
