"""Reading a notification request, or a batch of them, from JSON text: one set of rules for every way in.

The API (`POST /notifications`, `POST /notifications/batch`) and the ingest function (messages that
producers put on the inbound queue) read requests with these, so the same body gets the same verdict
and the same field paths however it arrived. Each failure is a `HeraldError` (`MalformedJson`,
`PayloadTooLarge`, `InvalidRequest`) whose details name fields, never echo input.

What the parser refuses as `MalformedJson` (400), before any field is read:

- bodies nested deeper than `MAX_JSON_DEPTH` levels of arrays and objects, found by a scan of the text
  without recursion before `json.loads` (which recurses) runs: no body can raise `RecursionError`, and
  nothing read afterwards (validation, the fingerprint, a rejected notification's re-encoding) walks
  deeper than this. A valid request needs far fewer (`data` may nest `MAX_DATA_DEPTH`), so `data`
  nested deeper than that but within this limit is a 422 naming `data`;
- the literals `NaN`, `Infinity` and `-Infinity`, which are not JSON;
- numbers beyond the range of a 64-bit float, such as `1e999` (RFC 8259 section 6 lets a reader limit
  the range): Python would read them as infinity and write them back as the non-JSON `Infinity`. They
  are refused as the body's text, like the literals above, not as a field (the parser cannot say which
  field held one), so a batch holding one is refused whole. The model refuses a non-finite number in
  `data` however else it arrives (422 naming `data`).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifications.errors import HeraldError, InvalidRequest, MalformedJson, PayloadTooLarge
from notifications.models import NotificationRequest

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_BATCH_NOTIFICATIONS = 100
# The largest message the inbound queue takes (its MaximumMessageSize in template.yaml; SQS's default is 1 MiB).
SQS_MAX_MESSAGE_BYTES = 256 * 1024
# Levels of arrays and objects a body may nest: room for the batch envelope around `data` nested well beyond
# its own limit (so the 422 names `data`), and far below what `json.loads` and the walks after it can recurse.
MAX_JSON_DEPTH = 512

# A JSON string, whose brackets are text, not structure: an unterminated one runs to the end, so that a
# failed match is never tried again from inside it (which would take time quadratic in the body's size).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_NESTING_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class BatchRequest(BaseModel):
    """`{"notifications": [...]}`; each notification is validated on its own, after this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notifications: list[Any] = Field(min_length=1, max_length=MAX_BATCH_NOTIFICATIONS)


def validation_details(error: ValidationError, *, whole: str = "body") -> list[dict[str, Any]]:
    """Pydantic errors as `{"field": "recipient.email", "message": ..., "type": ...}` without echoing input.

    An error about the whole object (no location) names `whole` as its field.
    """
    details = []
    for problem in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in problem["loc"]) or whole
        details.append(
            {"field": field, "message": problem["msg"].removeprefix("Value error, "), "type": problem["type"]}
        )
    return details


def json_object(raw: str, max_bytes: int) -> dict[str, Any]:
    """The JSON object in `raw`: 413-worthy over `max_bytes`, malformed unless strict JSON, invalid unless an object."""
    if len(raw.encode()) > max_bytes:
        raise PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
    if nesting_depth(raw) > MAX_JSON_DEPTH:
        raise MalformedJson(f"the request body nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects")
    try:
        payload = json.loads(raw, parse_float=_finite_float, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise MalformedJson(
            f"the request body is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from error
    except (ValueError, RecursionError) as error:  # RecursionError: only if called near the stack's limit
        raise MalformedJson(f"the request body is not valid JSON ({error})") from error
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "the request body must be a JSON object", details=[{"field": "body", "message": "not an object"}]
        )
    return payload


def notification(payload: dict[str, Any]) -> NotificationRequest:
    """One notification request, or `InvalidRequest` with the field paths."""
    try:
        return NotificationRequest.model_validate(payload)
    except ValidationError as error:
        raise InvalidRequest("the request is not a valid notification", details=validation_details(error)) from error


def is_batch(payload: dict[str, Any]) -> bool:
    """Whether a body is the batch envelope rather than one notification."""
    return "notifications" in payload


def batch(payload: dict[str, Any], max_item_bytes: int) -> list[NotificationRequest | HeraldError]:
    """The envelope (an error fails the whole batch), then each notification on its own: a request or its error."""
    try:
        envelope = BatchRequest.model_validate(payload)
    except ValidationError as error:
        raise InvalidRequest("the request is not a valid batch", details=validation_details(error)) from error
    return [batch_item(item, max_item_bytes) for item in envelope.notifications]


def batch_item(item: Any, max_bytes: int) -> NotificationRequest | HeraldError:
    """One notification of a batch, or the error the single path would answer for it."""
    if not isinstance(item, dict):
        return InvalidRequest(
            "the notification must be a JSON object", details=[{"field": "", "message": "not an object"}]
        )
    if len(json.dumps(item, separators=(",", ":")).encode()) > max_bytes:
        return PayloadTooLarge(f"the notification exceeds {max_bytes} bytes")
    try:
        return NotificationRequest.model_validate(item)
    except ValidationError as error:
        return InvalidRequest("the request is not a valid notification", details=validation_details(error, whole=""))


def item_details(index: int, error: HeraldError) -> list[dict[str, Any]]:
    """A batch item's error details with field paths prefixed by its place (`notifications[3].recipient.email`;
    an empty field, the whole notification, becomes `notifications[3]`)."""
    place = f"notifications[{index}]"
    return [
        {**detail, "field": f"{place}.{detail['field']}" if detail["field"] else place} if "field" in detail else detail
        for detail in error.details or []
    ]


def fields_of(errors: Sequence[HeraldError]) -> list[str]:
    """Every field path the errors name, in order, once each."""
    return list(dict.fromkeys(str(detail["field"]) for e in errors for detail in e.details or [] if "field" in detail))


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of JSON `text` nest, counted without recursion (0 for a scalar).

    Brackets inside strings are text and do not count. In text that is not JSON the count may be off, but
    never below the depth `json.loads` reaches before it stops at the error: enough to guard the parser.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as infinity; json.loads lets this error through unchanged
        raise MalformedJson("the request body holds a number beyond the range of a 64-bit float (about 1.8e308)")
    return number


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
