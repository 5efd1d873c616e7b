"""`GET /openapi.json`: the API's OpenAPI 3.1 document, built from the same pydantic models that validate requests.

The request and response bodies are the models' JSON schemas (`model_json_schema`), their nested models
hoisted into `components/schemas`; the error body, the batch result and the health bodies, which the
routes build as dicts, are described by the small models here. The document is a pure function of the
models, built once per execution environment.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from notifications.health_reports import (
    BreakersReport,
    DatabaseReport,
    DetailedReport,
    HealthStatus,
    ProvidersReport,
    QueuesReport,
    Readiness,
    SystemReport,
)
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
    notice: str | None = None  # as AcceptedView's: while the channel is not fully well


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
    HealthStatus,
    Readiness,
    DetailedReport,
    DatabaseReport,
    QueuesReport,
    ProvidersReport,
    BreakersReport,
    SystemReport,
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


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}}}
_NO_SNAPSHOT = "No fresh health snapshot (none stored, or older than it is trusted for); the message says which"


def _health_paths(keyless: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The nine health routes: three keyless (load balancers, uptime checks), six with a key."""
    live = {
        "name": "live",
        "in": "query",
        "required": False,
        "description": "true: probe AWS now instead of serving the health monitor's snapshot",
        "schema": {"type": "boolean", "default": False},
    }

    def keyed(operation_id: str, summary: str, model: type[BaseModel], *errors: int, **extra: Any) -> dict[str, Any]:
        responses = {
            "200": _json("The report", model),
            **_errors(401, *errors, 429),
            "503": _json(_NO_SNAPSHOT, Error, _RETRY_AFTER),
        }
        return {"get": {"operationId": operation_id, "summary": summary, "responses": responses, **extra}}

    def watched(operation_id: str, summary: str, model: type[BaseModel]) -> dict[str, Any]:
        """A view whose 503 is also the report itself, when what it watches is down."""
        path = keyed(operation_id, summary, model, 422, parameters=[live])
        path["get"]["responses"]["503"] = {
            "description": f"Down (the report), or: {_NO_SNAPSHOT[0].lower()}{_NO_SNAPSHOT[1:]}",
            "headers": _RETRY_AFTER,
            "content": {"application/json": {"schema": {"anyOf": [_ref(model), _ref(Error)]}}},
        }
        return path

    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "The function answers; the mode as this environment last read it (no AWS call)",
                "security": keyless,
                "responses": {"200": _json("OK", HealthStatus)},
            }
        },
        "/health/live": {
            "get": {
                "operationId": "healthLive",
                "summary": "Whether the function runs (no AWS call)",
                "security": keyless,
                "responses": {"200": _json("Alive", HealthStatus)},
            }
        },
        "/health/ready": {
            "get": {
                "operationId": "healthReady",
                "summary": "Whether Herald can take notifications: DynamoDB and the queues reachable",
                "security": keyless,
                "responses": {
                    "200": _json("Ready", Readiness),
                    "503": _json("Not ready", Readiness, _RETRY_AFTER),
                },
            }
        },
        "/health/detailed": keyed(
            "healthDetailed", "The health monitor's whole snapshot (webhook breakers for the admin key)", DetailedReport
        ),
        "/health/db": watched("healthDb", "DynamoDB reachable (snapshot, or live)", DatabaseReport),
        "/health/queues": watched(
            "healthQueues", "Each queue reachable, and its depth (snapshot, or live)", QueuesReport
        ),
        "/health/providers": keyed("healthProviders", "Each provider and its breaker's state", ProvidersReport),
        "/health/circuit-breakers": keyed(
            "healthCircuitBreakers", "The breakers (webhook ones listed for the admin key)", BreakersReport
        ),
        "/health/system": {
            "get": {
                "operationId": "healthSystem",
                "summary": "The execution environment: runtime, memory, cold start, version, region, function",
                # Never a 503: nothing of it needs AWS (the mode is UNKNOWN without a snapshot).
                "responses": {
                    "200": _json("The report", SystemReport),
                    **{status: answer for status, answer in _errors(401, 429).items() if status != "503"},
                },
            }
        },
    }


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
        **_health_paths(keyless),
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
