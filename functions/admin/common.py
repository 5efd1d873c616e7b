"""What every admin router reads from its request, and the one audit line each action writes.

Every action writes one audit line (`"audit": true`: who, what, on what, how it ended, when), with no personal
data and never a key or a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel, ValidationError

from api import http
from notifications.budget import TimeBudget
from notifications.errors import InvalidRequest
from notifications.observability import logger
from notifications.requests import validation_details

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import Router

    from admin.dependencies import Dependencies

ModelT = TypeVar("ModelT", bound=BaseModel)


def resolver(router: Router) -> APIGatewayRestResolver:
    """The admin function's resolver, which every admin router is included in."""
    included = router.api_resolver
    if not isinstance(included, APIGatewayRestResolver):
        raise TypeError("admin routers serve only when included in the admin resolver")
    return included


def deps(router: Router) -> Dependencies:
    found: Dependencies = router.context["deps"]
    return found


def body(router: Router, model: type[ModelT], *, optional: bool = False) -> ModelT:
    """The JSON body as `model` (422 naming each field); with `optional`, no body is `model()`."""
    app = resolver(router)
    payload = (
        {} if optional and not http.has_body(app) else http.json_object(app, deps(router).settings.max_request_bytes)
    )
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidRequest("the request body is not valid", details=validation_details(error)) from error


def query(router: Router, model: type[ModelT]) -> ModelT:
    """The query string as `model` (422 naming each parameter); an empty value is no value."""
    given = router.current_event.query_string_parameters or {}
    try:
        return model.model_validate({name: value for name, value in given.items() if value != ""})
    except ValidationError as error:
        details = validation_details(error, whole="query")
        raise InvalidRequest("the query parameters are not valid", details=details) from error


def budget(router: Router) -> TimeBudget:
    """The time the invocation has left for AWS calls (each one, and the release or take-back after it)."""
    context = router.lambda_context
    return TimeBudget(lambda: context.get_remaining_time_in_millis() / 1000)


def audit(router: Router, action: str, target: str | None, **fields: Any) -> None:
    """One line per admin action: who (the admin key's id), what, on what; never a key, secret or address."""
    logger.info(
        "admin action",
        extra={
            "audit": True,
            "actor": http.caller_key_id(resolver(router)),
            "action": action,
            "target": target,
            **fields,
        },
    )
