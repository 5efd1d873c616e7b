"""Twilio's Messages resource, its test "magic" numbers, and signed status callbacks back to Herald.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` answers 201 with the message resource, 401 (code 20003)
to a wrong account or auth token, and 400 with Twilio's `{code, message, more_info, status}` to what Twilio
refuses, including the numbers Twilio's test credentials refuse:

=============  =====  ===================================================
To             Code   Meaning
=============  =====  ===================================================
+15005550001   21211  not a valid phone number (as is any non-E.164 To)
+15005550002   21612  cannot be routed
+15005550003   21408  no permission for the number's region
+15005550004   21610  the recipient unsubscribed
+15005550009   21614  not a mobile number
+15005550010   (201)  sandbox rule: accepted, then "undelivered" (30003)
=============  =====  ===================================================

An accepted message with a `StatusCallback` gets "sent" then "delivered" (or "undelivered" with ErrorCode)
POSTed to it, each signed with the auth token as Twilio signs them (`X-Twilio-Signature`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

from local.sandbox.callbacks import CallbackPost
from local.sandbox.exchange import Answer
from local.sandbox.faults import Provider, reason_phrase, retry_headers
from local.sandbox.messages import SentMessage, iso_time

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from local.sandbox.callbacks import CallbackWorker
    from local.sandbox.credentials import SandboxCredentials
    from local.sandbox.exchange import Request
    from local.sandbox.faults import Strike
    from local.sandbox.messages import MessageLog

API_VERSION = "2010-04-01"
SEND_PATH_PATTERN = r"/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages\.json"
SIGNATURE_HEADER = "X-Twilio-Signature"
SANDBOX_FROM = "+15005550006"  # Twilio's valid test From, reported when a messaging service sends
UNDELIVERED_TO = "+15005550010"
UNDELIVERED_ERROR_CODE = "30003"  # unreachable destination handset
MAX_BODY_CHARACTERS = 1600

E164 = re.compile(r"\+[1-9]\d{1,14}")
SENDER_ID = re.compile(r"[A-Za-z0-9 ]{1,11}")  # a short code or an alphanumeric sender id

MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable using the 'From' phone number via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


def error_answer(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """Twilio's error body: `{"code", "message", "more_info", "status"}`."""
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Answer.json(status, payload, headers)


def fault_answer(strike: Strike, now: float) -> Answer:
    """What Twilio answers when it fails: 20429 to a 429, 20500 otherwise."""
    code = 20429 if strike.status == 429 else 20500
    return error_answer(strike.status, code, reason_phrase(strike.status), retry_headers(strike))


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """`X-Twilio-Signature`: base64 of HMAC-SHA1 over the URL and each field's name and value, sorted by name."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode("ascii")


def _rfc2822(epoch_seconds: float) -> str:
    """Twilio's date format: `Wed, 18 Aug 2010 20:01:40 +0000`."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch_seconds))


class TwilioApi:
    """The Messages endpoint and the status callbacks it sends back."""

    def __init__(
        self,
        credentials: SandboxCredentials,
        messages: MessageLog,
        callbacks: CallbackWorker,
        clock: Callable[[], float],
    ) -> None:
        self._credentials = credentials
        self._messages = messages
        self._callbacks = callbacks
        self._clock = clock

    def send(self, request: Request, params: dict[str, str]) -> Answer:
        if not self._authorised(request, params["account_sid"]):
            return error_answer(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        form = request.form()
        refusal = self._refusal(form)
        if refusal is not None:
            return error_answer(400, *refusal)
        account_sid = self._credentials.twilio_account_sid
        sid = f"SM{secrets.token_hex(16)}"
        now = self._clock()
        to, body = form["To"], form["Body"]
        sender = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        callback = form.get("StatusCallback") or None
        notification_id = dict(parse_qsl(urlsplit(callback).query)).get("notification_id") if callback else None
        self._messages.add(
            SentMessage(Provider.TWILIO.value, notification_id, sid, to, None, body, iso_time(now), status=201)
        )
        if callback is not None:
            fields = {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": account_sid,
                "From": sender or SANDBOX_FROM,
                "To": to,
                "ApiVersion": API_VERSION,
            }
            if service is not None:
                fields["MessagingServiceSid"] = service
            self._queue_callbacks(callback, notification_id, fields)
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
        resource = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(1 if len(body) <= 160 else -(-len(body) // 153)),  # 153 characters per part
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        return Answer.json(201, resource)

    def _authorised(self, request: Request, path_account_sid: str) -> bool:
        scheme, _, encoded = request.header("authorization").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except ValueError:
            return False
        expected_sid = self._credentials.twilio_account_sid
        return (
            scheme.lower() == "basic"
            and secrets.compare_digest(user.encode(), expected_sid.encode())
            and secrets.compare_digest(password.encode(), self._credentials.twilio_auth_token.encode())
            and secrets.compare_digest(path_account_sid.encode(), expected_sid.encode())
        )

    @staticmethod
    def _refusal(form: dict[str, str]) -> tuple[int, str] | None:
        """Twilio's code and message for the first thing it refuses in this message, or None."""
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        rules: list[tuple[bool, int, str]] = [
            (not to, 21604, "A 'To' phone number is required."),
            (not sender and not form.get("MessagingServiceSid"), 21603, "A 'From' phone number is required."),
            (
                bool(sender) and not (E164.fullmatch(sender) or SENDER_ID.fullmatch(sender)),
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID.",
            ),
            (not body, 21602, "Message body is required."),
            (len(body) > MAX_BODY_CHARACTERS, 21617, "The concatenated message body exceeds the 1600 character limit."),
            (to in MAGIC_TO, *MAGIC_TO.get(to, (0, ""))),
            (not E164.fullmatch(to), 21211, f"The 'To' number {to} is not a valid phone number."),
        ]
        return next(((code, message) for refused, code, message in rules if refused), None)

    def _queue_callbacks(self, url: str, notification_id: str | None, fields: dict[str, str]) -> None:
        """ "sent", then "delivered" (or "undelivered" with its ErrorCode), to the message's StatusCallback."""
        outcome = {"MessageStatus": "delivered"}
        if fields["To"] == UNDELIVERED_TO:
            outcome = {"MessageStatus": "undelivered", "ErrorCode": UNDELIVERED_ERROR_CODE}
        posts = [
            self._post(url, notification_id, {**fields, **status}) for status in ({"MessageStatus": "sent"}, outcome)
        ]
        self._callbacks.submit(posts)

    def _post(self, url: str, notification_id: str | None, fields: dict[str, str]) -> CallbackPost:
        fields["SmsStatus"] = fields["MessageStatus"]
        body = urlencode(fields).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            SIGNATURE_HEADER: signature(self._credentials.twilio_auth_token, url, fields),
        }
        return CallbackPost(
            Provider.TWILIO.value, notification_id, fields["MessageStatus"], url, lambda: (body, headers)
        )
