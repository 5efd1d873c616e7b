"""What every API Gateway route reads from its request: the JSON body, a header, the caller's API key id."""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING, Any

from notifications import requests
from notifications.errors import MalformedJson, UnsupportedMediaType

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver


def json_object(app: APIGatewayRestResolver, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object: 415 unless JSON, 413 over `max_bytes`, 400 unless valid, 422 unless an object."""
    event = app.current_event
    content_type = (event.headers.get("content-type") or event.headers.get("Content-Type") or "").lower()
    if content_type.split(";", 1)[0].strip() != "application/json":
        raise UnsupportedMediaType("send the request body as JSON with Content-Type: application/json")
    try:
        raw = event.decoded_body or ""
    except (UnicodeDecodeError, binascii.Error) as error:
        raise MalformedJson("the request body is not UTF-8 text") from error
    return requests.json_object(raw, max_bytes)


def has_body(app: APIGatewayRestResolver) -> bool:
    return bool(app.current_event.body)


def header(app: APIGatewayRestResolver, name: str) -> str | None:
    for key, value in app.current_event.headers.items():
        if key.lower() == name:
            return str(value)
    return None


def caller_key_id(app: APIGatewayRestResolver) -> str:
    """The caller's API key id as API Gateway gives it (locally the runtime sets one): the caller's client."""
    identity = app.current_event.request_context.identity
    return identity.api_key_id or identity.api_key or "anonymous"
