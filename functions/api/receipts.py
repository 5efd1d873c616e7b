"""`POST /provider-events/{provider}`: providers' delivery reports, verified by signature, then queued.

The route needs no API key (providers cannot send one): the signature is its authentication. It takes
its `ReceiptIntake` from the resolver's context (`receipts`). Answers: 200 `{"queued": n}` once SQS
holds the reports; 400 a malformed body; 401 no signature; 403 a bad or stale signature; 404 a
provider Herald takes no reports from; 503 when the queue (or the signing secret) cannot be reached,
so the provider retries.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from api.errors import error_body, json_response
from notifications.observability import logger
from notifications.receipts.events import MalformedReceipt, ReceiptProvider
from notifications.receipts.intake import ReceiptIntake, ReceiptsNotEnabled
from notifications.receipts.signatures import SignatureInvalid, SignatureMissing

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

    from notifications.errors import HeraldError

router = APIGatewayRouter()  # type: ignore[no-untyped-call]

SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
TWILIO_SIGNATURE = "x-twilio-signature"

# The receipt route's own errors; every other HeraldError is mapped by `api.errors`.
STATUS_BY_RECEIPT_ERROR: dict[type[HeraldError], int] = {
    MalformedReceipt: 400,
    SignatureMissing: 401,
    SignatureInvalid: 403,
    ReceiptsNotEnabled: 404,
}


@router.post("/provider-events/<provider>")
def receive_provider_events(provider: str) -> Response[str]:
    intake = router.context.get("receipts")
    if not isinstance(intake, ReceiptIntake) or provider not in intake.enabled:
        raise ReceiptsNotEnabled("Herald takes no reports from this provider")
    event = router.current_event
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    body = _raw_body(event)
    if provider == ReceiptProvider.SENDGRID:
        queued = intake.sendgrid(
            timestamp=headers.get(SENDGRID_TIMESTAMP), signature=headers.get(SENDGRID_SIGNATURE), body=body
        )
    else:
        queued = intake.twilio(
            query=_query(event),
            signature=headers.get(TWILIO_SIGNATURE),
            body=body,
            request_base_url=_own_base_url(event),
        )
    return json_response(200, {"queued": queued.events})


@router.exception_handler(list(STATUS_BY_RECEIPT_ERROR))  # type: ignore[untyped-decorator]
def handle_receipt_error(error: HeraldError) -> Response[str]:
    status = next(code for kind, code in STATUS_BY_RECEIPT_ERROR.items() if isinstance(error, kind))
    if status in {401, 403}:
        logger.warning("provider event refused", extra={"code": error.code, "path": router.current_event.path})
    return json_response(status, error_body(error.code, error.message))


def _raw_body(event: APIGatewayProxyEvent) -> bytes:
    """The body as the provider sent it: signatures cover these exact bytes."""
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(event.body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedReceipt("the request body is not valid base64") from None
    return event.body.encode("utf-8")


def _own_base_url(event: APIGatewayProxyEvent) -> str:
    """`https://{domainName}/{stage}`: the API's URL as API Gateway itself names it (never the Host header)."""
    context = event.request_context
    if not context.domain_name or not context.stage:
        return ""
    return f"https://{context.domain_name}/{context.stage}"


def _query(event: APIGatewayProxyEvent) -> list[tuple[str, str]]:
    """The query string's fields in the order received, repeated names included."""
    multi = event.multi_value_query_string_parameters or {}
    if multi:
        return [(name, value) for name, values in multi.items() for value in values]
    return list((event.query_string_parameters or {}).items())
