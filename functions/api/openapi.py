"""`GET /openapi.json`: the API's OpenAPI 3.1 document, built from the same pydantic models that validate requests.

The request and response bodies are the models' JSON schemas (`model_json_schema`), their nested models
hoisted into `components/schemas`; the error body, the batch result and the health bodies, which the
routes build as dicts, are described by the small models here. The document is a pure function of the
models, built once per execution environment.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from notifications.models import AcceptedView, IdempotencyKey, NotificationRequest, NotificationView
from notifications.receipts.events import ReceiptProvider
from notifications.requests import BatchRequest

OPENAPI_VERSION = "3.1.0"
API_KEY_SCHEME = "ApiKey"
_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    """One problem with a request: the field it names (a dotted path) and what is wrong with it."""

    model_config = ConfigDict(extra="allow")

    field: str | None = None
    message: str | None = None
    type: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class Error(BaseModel):
    """Every error Herald answers: `{"error": {"code", "message", "details"?}}`."""

    error: ErrorInfo


class BatchItemAccepted(BaseModel):
    index: int
    id: str
    status: str
    replayed: bool | None = None


class BatchItemRejected(BaseModel):
    index: int
    error: ErrorInfo


class BatchResult(BaseModel):
    """`POST /notifications/batch`: 202 all accepted, 207 some, 422 none; each result in request order."""

    accepted: int
    rejected: int
    results: list[BatchItemAccepted | BatchItemRejected]


class BatchRejected(BaseModel):
    """`POST /notifications/batch` when no notification was accepted: the error, and the results beside it."""

    error: ErrorInfo
    accepted: int
    rejected: int
    results: list[BatchItemAccepted | BatchItemRejected]


class Liveness(BaseModel):
    status: Literal["alive"]


class Health(BaseModel):
    status: Literal["healthy", "unhealthy"]
    mode: str


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    mode: str
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)


class QueuedReports(BaseModel):
    """`POST /provider-events/{provider}`: how many delivery reports were queued."""

    queued: int


_MODELS: tuple[type[BaseModel], ...] = (
    NotificationRequest,
    BatchRequest,
    AcceptedView,
    NotificationView,
    Error,
    BatchRejected,
    BatchResult,
    Liveness,
    Health,
    Readiness,
    QueuedReports,
)


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route (built once; callers must not change it)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Herald",
            "version": "1.0.0",
            "description": "Serverless notifications: email, SMS, push and webhooks behind one API.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{API_KEY_SCHEME: []}],
    }


def _schemas() -> dict[str, Any]:
    """Every model's JSON schema with the models it nests, side by side (the `$defs` hoisted)."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    # Each notification of a batch is a NotificationRequest, validated on its own (a bad one is rejected alone).
    notifications = schemas["BatchRequest"]["properties"]["notifications"]
    notifications["items"] = {"$ref": _REF.format(model="NotificationRequest")}
    return schemas


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(description: str, model: type[BaseModel], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(model)}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "The body is not valid JSON",
        401: "No valid x-api-key header",
        403: "A bad or stale signature",
        404: "No such notification, or no such route",
        409: "The idempotency key was used for a different request",
        413: "The body is too large",
        415: "The body is not application/json",
        422: "The request is not valid; `details` names the fields",
        429: "Throttled, or the usage plan's quota is exhausted",
    }
    responses = {str(status): _json(descriptions[status], Error) for status in statuses}
    responses["503"] = _json(
        "A dependency is unavailable; retry after the Retry-After header's seconds",
        Error,
        {"Retry-After": {"schema": {"type": "integer"}}},
    )
    return responses


def _paths() -> dict[str, Any]:
    keyless: list[dict[str, list[str]]] = []  # overrides the document's API key requirement
    json_body = {"required": True, "content": {"application/json": {"schema": _ref(NotificationRequest)}}}
    key_schema = TypeAdapter(IdempotencyKey).json_schema()
    idempotency_header = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The notification's idempotency key (or give `idempotency_key` in the body)",
        "schema": key_schema,
    }
    location = {"Location": {"schema": {"type": "string"}}, "Idempotent-Replayed": {"schema": {"type": "string"}}}
    return {
        "/notifications": {
            "post": {
                "operationId": "createNotification",
                "summary": "Accept a notification for delivery",
                "parameters": [idempotency_header],
                "requestBody": json_body,
                "responses": {
                    "202": _json("Accepted (or an idempotent replay)", AcceptedView, location),
                    **_errors(400, 401, 409, 413, 415, 422, 429),
                },
            },
            "get": {
                "operationId": "findNotification",
                "summary": "The notification an idempotency key made",
                "parameters": [{"name": "idempotency_key", "in": "query", "required": True, "schema": key_schema}],
                "responses": {"200": _json("The notification", NotificationView), **_errors(401, 404, 422, 429)},
            },
        },
        "/notifications/batch": {
            "post": {
                "operationId": "createNotificationBatch",
                "summary": "Accept up to 100 notifications, each on its own",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(BatchRequest)}}},
                "responses": {
                    "202": _json("Every notification was accepted", BatchResult),
                    "207": _json("Some notifications were accepted", BatchResult),
                    **_errors(400, 401, 413, 415, 422, 429),
                    "422": {
                        "description": "The batch is not valid (an error), or no notification was accepted (the"
                        " error, with the results beside it)",
                        "content": {"application/json": {"schema": {"anyOf": [_ref(Error), _ref(BatchRejected)]}}},
                    },
                },
            }
        },
        "/notifications/{id}": {
            "get": {
                "operationId": "getNotification",
                "summary": "A notification's status",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json("The notification", NotificationView), **_errors(401, 404, 429)},
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether Herald's dependencies answer",
                "security": keyless,
                "responses": {"200": _json("Health", Health)},
            }
        },
        "/health/live": {
            "get": {
                "operationId": "healthLive",
                "summary": "Whether the function runs",
                "security": keyless,
                "responses": {"200": _json("Alive", Liveness)},
            }
        },
        "/health/ready": {
            "get": {
                "operationId": "healthReady",
                "summary": "Whether Herald can take notifications",
                "security": keyless,
                "responses": {
                    "200": _json("Ready", Readiness),
                    "503": _json("Not ready", Readiness, {"Retry-After": {"schema": {"type": "integer"}}}),
                },
            }
        },
        "/provider-events/{provider}": {
            "post": {
                "operationId": "receiveProviderEvents",
                "summary": "Providers' delivery reports, authenticated by their signature (no API key)",
                "security": keyless,
                "parameters": [
                    {
                        "name": "provider",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": [ReceiptProvider.SENDGRID.value, ReceiptProvider.TWILIO.value],
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "200": _json("The reports are queued", QueuedReports),
                    **{str(s): _json(d, Error) for s, d in ((400, "Malformed"), (401, "No signature"))},
                    **_errors(403, 404),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": keyless,
                "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {}}}},
            }
        },
    }
