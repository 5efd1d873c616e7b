"""FCM HTTP v1 and the service account's OAuth token endpoint.

`POST /token` takes the JWT bearer grant Google's libraries send: the assertion must be signed (RS256) with the
service account's key and name it (`iss`), the token endpoint (`aud`: the key file's token_uri, or Google's own
endpoint, which google-auth always names), a messaging scope and a lifetime of at most an hour that has not
ended; it answers an access token valid for 3600 s, or Google's 400 `invalid_grant`.

`POST /v1/projects/{project}/messages:send` takes only those access tokens (else 401 UNAUTHENTICATED) and
answers by the device token: one starting with "unregistered" -> 404 UNREGISTERED, "invalid" -> 400
INVALID_ARGUMENT, "mismatch" -> 403 SENDER_ID_MISMATCH; any other -> 200 with the message's name.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from local.sandbox.exchange import Answer
from local.sandbox.faults import Provider, retry_headers
from local.sandbox.messages import SentMessage, iso_time

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.sandbox.credentials import SandboxCredentials
    from local.sandbox.exchange import Request
    from local.sandbox.faults import Strike
    from local.sandbox.messages import MessageLog

SEND_PATH_PATTERN = r"/v1/projects/(?P<project>[^/]+)/messages:send"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES = frozenset(
    {"https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"}
)
# Google's token endpoint, which Google accepts as the audience whatever the key file's token_uri says (and which
# google-auth always names); the sandbox accepts it too, beside its own token_uri.
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"
TOKEN_LIFETIME_SECONDS = 3600
MAX_ASSERTION_LIFETIME_SECONDS = 3600
CLOCK_SKEW_SECONDS = 300
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

_BAD_LIFETIME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and "
    "exp values in the JWT claim."
)
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential."
)

# A status a fault answers with -> FCM's status and errorCode for it.
_FAULT_SHAPES: dict[int, tuple[str, str | None, str]] = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", None, _UNAUTHENTICATED),
    403: ("PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    404: ("NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for sending messages."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}


def error_answer(
    status: int, message: str, google_status: str, error_code: str | None, headers: dict[str, str] | None = None
) -> Answer:
    """FCM's error body: `{"error": {"code", "message", "status", "details": [FcmError]}}`."""
    error: dict[str, Any] = {"code": status, "message": message, "status": google_status}
    if error_code is not None:
        error["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    return Answer.json(status, {"error": error}, headers)


def fault_answer(strike: Strike, now: float) -> Answer:
    """What FCM answers when it fails: UNAVAILABLE, QUOTA_EXCEEDED (RESOURCE_EXHAUSTED), INTERNAL and so on."""
    fallback: tuple[str, str | None, str] = ("INTERNAL", "INTERNAL", "Internal error encountered.")
    if strike.status < 500:
        fallback = ("FAILED_PRECONDITION", None, "The request was refused.")
    google_status, error_code, message = _FAULT_SHAPES.get(strike.status, fallback)
    return error_answer(strike.status, message, google_status, error_code, retry_headers(strike))


def _oauth_error(error: str, description: str) -> Answer:
    return Answer.json(400, {"error": error, "error_description": description})


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Refused(Exception):
    """An assertion the token endpoint refuses: the OAuth error and its description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _decode(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """A JWT's header, claims, signed part and signature; `_Refused` when it is not a JWT."""
    malformed = _Refused("invalid_grant", "Invalid JWT: the assertion is not a signed JWT.")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise malformed
    try:
        header, claims, signature = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1])), _b64url(parts[2])
    except ValueError as error:
        raise malformed from error
    if not (isinstance(header, dict) and isinstance(claims, dict)):
        raise malformed
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _check_lifetime(issued: object, expires: object, now: float) -> None:
    """Google's rule: issued now (give or take the skew), not expired, living at most an hour."""
    if not (isinstance(issued, int | float) and isinstance(expires, int | float)):
        raise _Refused("invalid_grant", _BAD_LIFETIME)
    if expires <= now or issued > now + CLOCK_SKEW_SECONDS or expires - issued > MAX_ASSERTION_LIFETIME_SECONDS:
        raise _Refused("invalid_grant", _BAD_LIFETIME)


class FcmApi:
    """The token endpoint, the tokens it issued (under a lock) and the send endpoint."""

    def __init__(self, credentials: SandboxCredentials, messages: MessageLog, clock: Callable[[], float]) -> None:
        self._credentials = credentials
        self._messages = messages
        self._clock = clock
        self._tokens: dict[str, float] = {}  # access token -> when it expires
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ POST /token
    def token(self, request: Request, params: dict[str, str]) -> Answer:
        form = request.form()
        grant_type = form.get("grant_type", "")
        if grant_type != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        now = self._clock()
        try:
            self._verify(form.get("assertion", ""), now)
        except _Refused as refused:
            return _oauth_error(refused.error, refused.description)
        token = f"ya29.sandbox-{secrets.token_urlsafe(32)}"
        with self._lock:
            self._tokens = {known: expiry for known, expiry in self._tokens.items() if expiry > now}
            self._tokens[token] = now + TOKEN_LIFETIME_SECONDS
        return Answer.json(200, {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"})

    def _verify(self, assertion: str, now: float) -> None:
        """Check the assertion as Google does; raise `_Refused` saying what is wrong."""
        account = self._credentials.fcm_service_account
        header, claims, signing_input, signature = _decode(assertion)
        if header.get("alg") != "RS256" or header.get("kid", account["private_key_id"]) != account["private_key_id"]:
            raise _Refused("invalid_grant", "Invalid JWT Signature.")
        try:
            self._credentials.service_account_public_key.verify(
                signature, signing_input, padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature as error:
            raise _Refused("invalid_grant", "Invalid JWT Signature.") from error
        if claims.get("iss") != account["client_email"]:
            raise _Refused("invalid_grant", "Invalid grant: account not found")
        if claims.get("aud") not in {account["token_uri"], GOOGLE_TOKEN_ENDPOINT}:
            raise _Refused("invalid_grant", "Invalid JWT: Failed audience check.")
        _check_lifetime(claims.get("iat"), claims.get("exp"), now)
        scope = claims.get("scope")
        if not (isinstance(scope, str) and SCOPES & set(scope.split())):
            raise _Refused("invalid_scope", "Invalid OAuth scope or ID token audience provided.")

    def _issued(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            expiry = self._tokens.get(token)
        return scheme.lower() == "bearer" and expiry is not None and expiry > self._clock()

    # ------------------------------------------------------------------ POST /v1/projects/{project}/messages:send
    def send(self, request: Request, params: dict[str, str]) -> Answer:
        if not self._issued(request.header("authorization")):
            return error_answer(401, _UNAUTHENTICATED, "UNAUTHENTICATED", None)
        project = params["project"]
        if project != self._credentials.fcm_service_account["project_id"]:
            denied = f"Permission 'cloudmessaging.messages.create' denied on resource 'projects/{project}'."
            return error_answer(403, denied, "PERMISSION_DENIED", None)
        try:
            payload = request.json()
        except ValueError:
            return error_answer(400, "Invalid JSON payload received.", "INVALID_ARGUMENT", None)
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            return error_answer(400, "Invalid JSON payload received. 'message' is required.", "INVALID_ARGUMENT", None)
        refusal = _refusal(message)
        if refusal is not None:
            return refusal
        target = str(message.get("token") or message.get("topic") or message.get("condition"))
        name = f"projects/{project}/messages/0:{int(self._clock() * 1_000_000)}%{secrets.token_hex(8)}"
        data = message.get("data") or {}
        notification = message.get("notification") or {}
        body = notification.get("body")
        self._messages.add(
            SentMessage(
                provider=Provider.FCM.value,
                notification_id=data.get("notification_id"),
                message_id=name,
                to=target,
                subject=None,
                body=str(body) if body is not None else None,
                at=iso_time(self._clock()),
                status=200,
            )
        )
        return Answer.json(200, {"name": name})


# A device token's prefix -> how FCM refuses it: HTTP status, message, status, errorCode.
TOKEN_REFUSALS: tuple[tuple[str, int, str, str, str], ...] = (
    ("unregistered", 404, "Requested entity was not found.", "NOT_FOUND", "UNREGISTERED"),
    (
        "invalid",
        400,
        "The registration token is not a valid FCM registration token",
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
    ),
    ("mismatch", 403, "SenderId mismatch", "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
)


def _refusal(message: dict[str, Any]) -> Answer | None:
    """FCM's answer to a message it refuses, or None."""
    targets = [key for key in ("token", "topic", "condition") if message.get(key)]
    if len(targets) != 1:
        detail = "Recipient of the message is not set." if not targets else "Exactly one of token, topic or condition."
        return error_answer(400, detail, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    shape = _shape_problem(message)
    if shape is not None:
        return error_answer(400, shape, "INVALID_ARGUMENT", None)
    token = str(message.get("token") or "")
    for prefix, status, detail, google_status, error_code in TOKEN_REFUSALS:
        if token.startswith(prefix):
            return error_answer(status, detail, google_status, error_code)
    return None


def _shape_problem(message: dict[str, Any]) -> str | None:
    """What is wrong with the message's data or notification, or None."""
    data = message.get("data", {})
    if not isinstance(data, dict):
        return "Invalid value at 'message.data': must be a map."
    for position, value in enumerate(data.values()):
        if not isinstance(value, str):
            return f"Invalid value at 'message.data[{position}].value' (TYPE_STRING), {json.dumps(value)}"
    notification = message.get("notification", {})
    if not isinstance(notification, dict) or any(not isinstance(value, str) for value in notification.values()):
        return "Invalid value at 'message.notification'."
    return None
