"""Factories over the real-shaped Lambda events in events/: tests change only what they are about."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"
CLIENT_KEY_ID = "k7v2n4p8q1"  # the API key id (the client) of the events in events/


@cache
def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def load_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for key in [k for k in event["headers"] if k.lower() == name.lower()]:
        del event["headers"][key]
        event["multiValueHeaders"].pop(key, None)
    if value is not None:
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]


def post_notification(
    body: Any = None,
    *,
    raw: str | None = None,
    headers: dict[str, str | None] | None = None,
    key_id: str = CLIENT_KEY_ID,
) -> dict[str, Any]:
    """The API Gateway event of `POST /notifications` with this body (JSON-encoded unless raw)."""
    event = load_event("api_post_notification.json")
    event["body"] = raw if raw is not None else json.dumps(body)
    _set_header(event, "Idempotency-Key", None)
    for name, value in (headers or {}).items():
        _set_header(event, name, value)
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    return event


def post_batch(
    notifications: Any = None,
    *,
    raw: str | None = None,
    headers: dict[str, str | None] | None = None,
    key_id: str = CLIENT_KEY_ID,
) -> dict[str, Any]:
    """The API Gateway event of `POST /notifications/batch` with `{"notifications": [...]}` (or a raw body)."""
    body = raw if raw is not None else json.dumps({"notifications": notifications})
    event = post_notification(raw=body, headers=headers, key_id=key_id)
    event["resource"] = event["path"] = "/notifications/batch"
    event["requestContext"]["resourcePath"] = "/notifications/batch"
    event["requestContext"]["path"] = "/v1/notifications/batch"
    return event


def get_notification(notification_id: str) -> dict[str, Any]:
    event = load_event("api_get_notification.json")
    event["path"] = f"/notifications/{notification_id}"
    event["pathParameters"] = {"id": notification_id}
    event["requestContext"]["path"] = f"/v1/notifications/{notification_id}"
    return event


def find_notification(idempotency_key: str | None, *, key_id: str = CLIENT_KEY_ID) -> dict[str, Any]:
    """`GET /notifications?idempotency_key=...` by the client with API key id `key_id`."""
    event = load_event("api_get_notification.json")
    event["resource"] = event["path"] = "/notifications"
    event["pathParameters"] = None
    query = {} if idempotency_key is None else {"idempotency_key": idempotency_key}
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} or None
    event["requestContext"]["resourcePath"] = "/notifications"
    event["requestContext"]["path"] = "/v1/notifications"
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    return event


def get_route(path: str) -> dict[str, Any]:
    """A keyless GET (the health routes) for `path`."""
    event = load_event("api_health_ready.json")
    event["resource"] = event["path"] = path
    event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/v1{path}"
    return event


def sqs_batch(bodies: list[str], *, receive_count: int = 1, queue_arn: str | None = None) -> dict[str, Any]:
    """An SQS event with one record per body, shaped like the sample record."""
    template = load_event("sqs_sender_batch.json")["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"msg-{index}-{abs(hash(body)) % 10**8}"
        record["body"] = body
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        if queue_arn:
            record["eventSourceARN"] = queue_arn
        records.append(record)
    return {"Records": records}


def queue_message(notification_id: str) -> str:
    return json.dumps({"id": notification_id})


def admin_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    key_id: str,
    resource: str | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An admin route's API Gateway event (`resource` is the route's template, e.g. `/admin/clients/{id}`;
    its path parameters are read off `path`, as given: API Gateway REST passes the path percent-encoded), sent
    with the key whose id is `key_id`, with the query string's parameters `query`."""
    event = post_notification(raw=None if body is None else json.dumps(body), key_id=key_id)
    if body is None:
        event["body"] = None
        _set_header(event, "Content-Type", None)
    route = resource or path
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["resource"] = event["requestContext"]["resourcePath"] = route
    event["path"] = path
    event["requestContext"]["path"] = f"/v1{path}"
    parameters = {
        name[1:-1]: value
        for name, value in zip(route.split("/"), path.split("/"), strict=True)
        if name.startswith("{") and name.endswith("}")
    }
    event["pathParameters"] = parameters or None
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} if query else None
    return event
