"""Admin routes for the circuit breakers: list them all, and the operator's actions (reset, force open, disable).

`{name}` is the breaker's name, percent-encoded in the path as API Gateway passes it
(`webhook:https%3A%2F%2Fhooks.example.com%3A443`) and decoded here. Only `provider:<provider Herald has>` and
`webhook:<scheme>://<host>:<port>` are breakers Herald uses; any other name is refused with 422, so a typo
never creates a breaker nobody calls. Every action is a conditional write on the breaker's version
(`resilience.breaker`), effective fleet-wide at once for the senders' next read of the breaker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from admin.common import audit, deps
from api.errors import json_response
from notifications.errors import InvalidRequest, NotificationNotFound, StoreUnavailable, UndeliverableError
from notifications.monitor import PROVIDER_PREFIX, WEBHOOK_PREFIX, breaker_kind
from notifications.ssrf import webhook_origin
from resilience import BreakerState
from resilience.errors import StoreError
from resilience.health import DOWN_STATES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from aws_lambda_powertools.event_handler import Response

    from resilience import BreakerRegistry, BreakerStatus, Transition

router = Router()  # type: ignore[no-untyped-call]
T = TypeVar("T")


class BreakerAction(StrEnum):
    RESET = "reset"  # CLOSED, with a fresh window
    OPEN = "open"  # FORCED_OPEN: every call refused until reset
    DISABLE = "disable"  # DISABLED: every call let through, nothing counted, until reset


class BreakerAdminView(BaseModel):
    """One breaker as `GET /admin/circuit-breakers` lists it (times in epoch seconds, as the health views)."""

    name: str
    kind: Literal["provider", "webhook", "other"]
    state: str
    permits_calls: bool
    failure_rate: float
    calls: int
    opened_at: float | None
    open_until: float | None  # OPEN: when it next lets a probe through


class BreakerActionResult(BaseModel):
    name: str
    state: str
    previous_state: str


class BreakerAdmin:
    """The breakers as an operator sees them and acts on them.

    Parameters
    ----------
    registry : BreakerRegistry
        The breakers, on their DynamoDB store.
    listed : Iterable[str]
        The providers in use: their breakers are listed even when they stored no state (CLOSED).
    known : Iterable[str]
        Every provider Herald has: `provider:<one of them>` may be acted on.
    """

    def __init__(self, registry: BreakerRegistry, *, listed: Iterable[str], known: Iterable[str]) -> None:
        self._registry = registry
        self._listed = tuple(listed)
        self._known = frozenset(known)

    def describe(self) -> list[BreakerAdminView]:
        """Every breaker with a stored state, and every provider in use without one (CLOSED), by name."""
        statuses = _store_call(self._registry.describe_all)
        views = {status.name: _view(status) for status in statuses}
        for provider in self._listed:
            name = f"{PROVIDER_PREFIX}{provider}"
            views.setdefault(name, _closed(name))
        return [views[name] for name in sorted(views)]

    def act(self, action: BreakerAction, name: str) -> BreakerActionResult:
        """Apply `action` to breaker `name` (a name as `canonical` accepts it)."""
        operation: dict[BreakerAction, Callable[[str], Transition | None]] = {
            BreakerAction.RESET: self._registry.reset,
            BreakerAction.OPEN: self._registry.force_open,
            BreakerAction.DISABLE: self._registry.disable,
        }
        transition = _store_call(lambda: operation[action](name))
        if transition is None:  # already in that state: nothing was written
            state = str(_TARGET[action])
            return BreakerActionResult(name=name, state=state, previous_state=state)
        return BreakerActionResult(name=name, state=str(transition.to_state), previous_state=str(transition.from_state))

    def canonical(self, name: str) -> str:
        """The breaker's name as Herald writes it, or InvalidRequest (422) for a name no breaker of Herald has."""
        if name.startswith(PROVIDER_PREFIX):
            if name.removeprefix(PROVIDER_PREFIX) in self._known:
                return name
            raise _bad_name(f"not a provider Herald has; known: {', '.join(sorted(self._known))}")
        if name.startswith(WEBHOOK_PREFIX):
            return WEBHOOK_PREFIX + _origin(name.removeprefix(WEBHOOK_PREFIX))
        raise _bad_name("must be provider:<provider> or webhook:<scheme>://<host>:<port>")


_TARGET = {
    BreakerAction.RESET: BreakerState.CLOSED,
    BreakerAction.OPEN: BreakerState.FORCED_OPEN,
    BreakerAction.DISABLE: BreakerState.DISABLED,
}


def _origin(value: str) -> str:
    """`https://hooks.example.com:443` as the webhook breaker of that origin names it (host lower case, IDNA)."""
    shape = "must be webhook:<scheme>://<host>:<port>, e.g. webhook:https://hooks.example.com:443"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _bad_name(shape) from None
    if port is None or not parts.hostname or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise _bad_name(shape)
    try:
        return str(webhook_origin(value))
    except UndeliverableError as error:
        raise _bad_name(error.message) from None


def _bad_name(message: str) -> InvalidRequest:
    return InvalidRequest("not a circuit breaker name", details=[{"field": "name", "message": message}])


def _store_call(call: Callable[[], T]) -> T:
    """A call to the breakers' store; its failure is a 503 (`StoreUnavailable`)."""
    try:
        return call()
    except StoreError as error:
        cause = error.__cause__ or error
        raise StoreUnavailable(f"circuit breaker store unavailable ({type(cause).__name__})") from error


def _view(status: BreakerStatus) -> BreakerAdminView:
    return BreakerAdminView(
        name=status.name,
        kind=breaker_kind(status.name),
        state=str(status.state),
        permits_calls=status.state not in DOWN_STATES,
        failure_rate=round(status.failure_rate, 4),
        calls=status.calls_in_window,
        opened_at=status.opened_at,
        open_until=status.next_probe_at if status.state is BreakerState.OPEN else None,
    )


def _closed(name: str) -> BreakerAdminView:
    """A breaker that never stored a state: CLOSED, nothing counted."""
    return BreakerAdminView(
        name=name,
        kind=breaker_kind(name),
        state=str(BreakerState.CLOSED),
        permits_calls=True,
        failure_rate=0.0,
        calls=0,
        opened_at=None,
        open_until=None,
    )


# ---------------------------------------------------------------------- routes
@router.get("/admin/circuit-breakers")
def list_breakers() -> Response[str]:
    breakers = deps(router).breakers.describe()
    audit(router, "breaker.list", None, breakers=len(breakers))
    return json_response(200, {"breakers": [breaker.model_dump(mode="json") for breaker in breakers]})


@router.post("/admin/circuit-breakers/<name>/<action>")
def act_on_breaker(name: str, action: str) -> Response[str]:
    """`name` as API Gateway passes it: percent-encoded (`webhook:https%3A%2F%2Fhost%3A443`)."""
    return _act(action, unquote(name))


@router.post("/admin/circuit-breakers/webhook:<scheme>://<origin>/<action>")
def act_on_decoded_webhook_breaker(scheme: str, origin: str, action: str) -> Response[str]:
    """A webhook breaker's name already decoded in the path (a gateway that decodes `%2F` before routing)."""
    return _act(action, f"{WEBHOOK_PREFIX}{scheme}://{origin}")


def _act(action: str, name: str) -> Response[str]:
    if action not in BreakerAction.__members__.values():
        raise NotificationNotFound("No such route: a breaker's actions are reset, open and disable")
    breakers = deps(router).breakers
    result = breakers.act(BreakerAction(action), breakers.canonical(name))
    audit(router, f"breaker.{action}", result.name, state=result.state, previous_state=result.previous_state)
    return json_response(200, result.model_dump(mode="json"))
