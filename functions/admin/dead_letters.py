"""Admin routes for the dead-letter queue: list what rests there (taking nothing), and redrive it.

The logic, and what each guarantees, is `notifications.dead_letters`; here are the request models and the
answers. Both routes stop reading before the invocation's deadline and say so (`truncated`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field

from admin.common import audit, body, budget, deps, query
from api.errors import json_response
from notifications.dead_letters import DeadLetterFilter, RedriveOrder

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

router = Router()  # type: ignore[no-untyped-call]

MAX_LIST_LIMIT = 1000
MAX_REDRIVE = 10_000


class DeadLetterQuery(DeadLetterFilter):
    """`GET /admin/dead-letters?channel=&provider=&error_class=&since=&until=&limit=`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=100, ge=1, le=MAX_LIST_LIMIT)

    def filters(self) -> DeadLetterFilter:
        return DeadLetterFilter.model_validate(self.model_dump(exclude={"limit"}))


class RedriveRequest(DeadLetterFilter):
    """`POST /admin/dead-letters/redrive`: the filters, at most how many (`max`, 1000 when not given; not giving it
    with no filter redrives the whole queue, by a move task where SQS has them), and `dry_run`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_messages: int | None = Field(default=None, alias="max", ge=1, le=MAX_REDRIVE)
    dry_run: bool = False

    def order(self) -> RedriveOrder:
        filters = DeadLetterFilter.model_validate(self.model_dump(exclude={"max_messages", "dry_run"}))
        return RedriveOrder(filters=filters, max_messages=self.max_messages, dry_run=self.dry_run)


def _described(filters: DeadLetterFilter) -> dict[str, str]:
    """The filters given, for the audit line (names of channels, providers and classes, and times only)."""
    return {name: str(value) for name, value in filters.model_dump(mode="json", exclude_none=True).items()}


@router.get("/admin/dead-letters")
def list_dead_letters() -> Response[str]:
    request = query(router, DeadLetterQuery)
    filters = request.filters()
    listing = deps(router).dead_letters.find(filters, limit=request.limit, budget=budget(router))
    audit(
        router,
        "dead_letters.list",
        None,
        filters=_described(filters),
        returned=len(listing.dead_letters),
        scanned=listing.scanned,
        truncated=listing.truncated,
    )
    return json_response(200, listing.model_dump(mode="json"))


@router.post("/admin/dead-letters/redrive")
def redrive_dead_letters() -> Response[str]:
    order = body(router, RedriveRequest, optional=True).order()
    result = deps(router).dead_letters.redrive(order, budget=budget(router))
    audit(
        router,
        "dead_letters.redrive",
        None,
        filters=_described(order.filters),
        max=order.max_messages,
        dry_run=result.dry_run,
        method=result.method.value,
        matched=result.matched,
        moved=result.moved,
        truncated=result.truncated,
        task_handle=result.task_handle,
    )
    return json_response(200, result.model_dump(mode="json", exclude_none=True))
