"""Push notifications through Firebase Cloud Messaging's HTTP v1 API, over the shared provider HTTP transport.

One call to `FcmPushProvider.send`, all within the call's timeout:

1. reads the Firebase service account (`credentials()`, cached by the caller, asked on every send so a
   rotated key is picked up) and checks its fields;
2. takes an OAuth 2.0 access token from `FcmAccessTokens`: google-auth signs an RS256 JWT with the service
   account's key and trades it at the account's `token_uri` (the local sandbox gives its own). The token is
   cached until google-auth's `valid` says it is about to expire, refreshed by one thread at a time (the
   sender delivers from up to ten), and rebuilt when the secret names another key or account;
3. posts `{"message": ...}` to `{base_url}/v1/projects/{project_id}/messages:send` with the token and answers
   FCM's message name (`projects/<p>/messages/<n>`).

A refusal becomes an `FcmError` with FCM's status, its `FcmError` error code (else the canonical `status`,
such as `NOT_FOUND`) and its Retry-After; a 401 also drops the cached token so the next call fetches a new
one. A token endpoint failure becomes an `FcmAuthError`. FCM's and the token endpoint's messages are not
copied, and no part of the service account ever is. `classify_fcm_error` judges them, following FCM's
documented error codes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import urllib3
from google.auth import exceptions as google_auth_errors
from google.auth.transport import urllib3 as google_urllib3
from google.oauth2 import service_account
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from notifications.clock import Clock, system_clock
from notifications.errors import DeliveryError, NothingSent, UndeliverableError
from notifications.models import Channel
from notifications.providers import ProviderReceipt
from notifications.providers.http import ProviderHttp, ProviderUnreachable
from resilience import ErrorClass

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from notifications.models import NotificationRecord
    from notifications.providers.http import HttpAnswer

PROVIDER = "fcm"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_OAUTH_ERROR = re.compile(r"^[a-z_]{1,64}$")  # RFC 6749's `error` codes ("invalid_grant"); nothing else is kept
_ERROR_CODE = re.compile(r"^[A-Z_]{1,64}$")

# FCM's error codes (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode), by what they are about.
# About this message or its token: resending it cannot help.
#   UNREGISTERED (404): the app instance was unregistered, the token is no longer valid.
#   INVALID_ARGUMENT (400): the token is malformed or the message is invalid (a reserved data key, too big).
#   SENDER_ID_MISMATCH (403): the token belongs to another Firebase project's sender id.
_ABOUT_THE_MESSAGE = frozenset({"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"})
# About our project, credentials or FCM's service: counted against the breaker so push fails over, and once
# the quota refills or an operator fixes the configuration, a retry delivers.
#   QUOTA_EXCEEDED (429): the project's (or the device's) sending rate is exceeded.
#   UNAVAILABLE (503) and INTERNAL (500): FCM is overloaded or failed.
#   THIRD_PARTY_AUTH_ERROR (401): our APNs certificate or web push key is invalid or missing: configuration.
#   UNAUTHENTICATED (401) and PERMISSION_DENIED (403) without an FCM code: our OAuth token or the service
#   account's role in the project.
#   NOT_FOUND (404) without an FCM code: FCM reports a stale token as UNREGISTERED, so a bare 404 means the
#   project in the URL (the service account's `project_id`) does not exist: configuration.
#   RESOURCE_EXHAUSTED (429) without an FCM code: the Google API quota of the project.
_ABOUT_OUR_SIDE = frozenset(
    {
        "QUOTA_EXCEEDED",
        "UNAVAILABLE",
        "INTERNAL",
        "THIRD_PARTY_AUTH_ERROR",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "RESOURCE_EXHAUSTED",
    }
)


class FcmError(DeliveryError):
    """FCM refused the message: its status in `status_code`; `provider_code` is the `FcmError` error code
    when FCM gave one (`UNREGISTERED`), else the canonical status (`NOT_FOUND`)."""


class FcmAuthError(FcmError, NothingSent):
    """No access token: the service account secret is unreadable or malformed, or its token endpoint refused
    it or could not be reached. Always an operator's (or Google's) to fix, never the message's."""


def classify_fcm_error(error: BaseException) -> ErrorClass | None:
    """FCM's rules: a refused token or message is permanent; quota, FCM's own failures and anything about our
    credentials or configuration are transient. Other FCM answers are left to the rest of the chain (which
    judges by HTTP status), and so is any other error."""
    if not isinstance(error, FcmError):
        return None
    if isinstance(error, FcmAuthError):
        return ErrorClass.TRANSIENT
    if error.provider_code in _ABOUT_THE_MESSAGE:
        return ErrorClass.PERMANENT
    if error.provider_code in _ABOUT_OUR_SIDE or error.status_code in (401, 403):
        return ErrorClass.TRANSIENT
    return None


NonBlank = Annotated[str, StringConstraints(min_length=1)]


class ServiceAccount(BaseModel):
    """The fields of a Firebase service account key file that Herald uses (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    project_id: NonBlank
    private_key_id: NonBlank
    private_key: NonBlank
    client_email: NonBlank
    token_uri: Annotated[str, StringConstraints(pattern=r"^https?://")]

    @property
    def identity(self) -> tuple[str, str, str]:
        """What tells one key from another: a different identity needs new credentials."""
        return self.client_email, self.private_key_id, self.token_uri


def push_message(record: NotificationRecord, device_token: str) -> dict[str, Any]:
    """The v1 `message` for one notification to one registration token.

    FCM's data values must be strings, so every other value of `record.data` travels JSON-encoded; the
    notification id is always there, so the app and any receipt can name the notification.
    """
    notification = {"body": record.body} if record.subject is None else {"title": record.subject, "body": record.body}
    data = {key: value if isinstance(value, str) else _json(value) for key, value in (record.data or {}).items()}
    data["notification_id"] = record.id
    return {"token": device_token, "notification": notification, "data": data}


class FcmAccessTokens:
    """OAuth 2.0 access tokens for one service account at a time, cached and refreshed by one thread.

    Parameters
    ----------
    pool : urllib3.PoolManager | None
        Carries the token requests (google-auth's urllib3 transport); a small pool of its own by default.
    """

    def __init__(self, pool: urllib3.PoolManager | None = None) -> None:
        self._pool = pool or urllib3.PoolManager(maxsize=2, block=False, retries=False)
        self._lock = threading.Lock()
        self._identity: tuple[str, str, str] | None = None
        self._credentials: service_account.Credentials | None = None

    def token(self, account: ServiceAccount, info: Mapping[str, Any], *, deadline: float) -> str:
        """A valid access token for `account`, fetched only when the cached one is missing or about to expire.

        Parameters
        ----------
        account : ServiceAccount
            The checked fields of `info`.
        info : Mapping[str, Any]
            The service account key file as the secret holds it (google-auth reads it).
        deadline : float
            `time.monotonic()` by which waiting for the lock and the token request must be over.

        Raises
        ------
        FcmAuthError
            No token in time, a key that cannot be read, or a token endpoint that refused or did not answer.
        """
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise FcmAuthError(f"{PROVIDER} access token not ready in time (another delivery is fetching it)")
        try:
            credentials = self._credentials_for(account, info)
            if not credentials.valid:
                self._refresh(credentials, deadline)
            token = credentials.token
        finally:
            self._lock.release()
        if not isinstance(token, str) or not token:
            raise FcmAuthError(f"{PROVIDER} token endpoint answered no access token")
        return token

    def forget(self, token: str) -> None:
        """Drop `token` (FCM refused it with 401), unless another thread has replaced it already."""
        with self._lock:
            if self._credentials is not None and self._credentials.token == token:
                self._credentials.token = None

    def _credentials_for(self, account: ServiceAccount, info: Mapping[str, Any]) -> service_account.Credentials:
        if self._credentials is None or self._identity != account.identity:
            try:
                credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    dict(info), scopes=[SCOPE]
                )
            except (ValueError, TypeError, google_auth_errors.GoogleAuthError) as error:
                # `from None`: the parser's error may quote the key.
                raise FcmAuthError(f"{PROVIDER} service account key unreadable ({type(error).__name__})") from None
            self._credentials, self._identity = credentials, account.identity
        return self._credentials

    def _refresh(self, credentials: service_account.Credentials, deadline: float) -> None:
        try:
            credentials.refresh(_BoundedTokenRequest(self._pool, deadline))  # type: ignore[no-untyped-call]
        except FcmAuthError:
            raise
        except google_auth_errors.TransportError as error:
            cause = type(error.__cause__ or error).__name__
            raise FcmAuthError(f"{PROVIDER} token endpoint unreachable ({cause})") from None
        except (google_auth_errors.GoogleAuthError, ValueError, TypeError, KeyError) as error:
            raise FcmAuthError(f"{PROVIDER} token endpoint answered no usable token ({type(error).__name__})") from None


class _BoundedTokenRequest(google_urllib3.Request):
    """google-auth's urllib3 transport, bounded by the send's deadline, following no redirect, retrying nothing.

    google-auth retries a token endpoint's 5xx after sleeping a second or more; the delivery engine decides
    about retries, once, so any answer but 200 ends the refresh here as an `FcmAuthError`.
    """

    def __init__(self, pool: urllib3.PoolManager, deadline: float) -> None:
        super().__init__(pool)  # type: ignore[no-untyped-call]
        self._deadline = deadline

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise FcmAuthError(f"{PROVIDER} token request out of time")
        bounded = urllib3.Timeout(total=remaining if timeout is None else min(remaining, timeout))
        response = super().__call__(  # type: ignore[no-untyped-call]
            url, method=method, body=body, headers=headers, timeout=bounded, retries=False, redirect=False, **kwargs
        )
        if response.status != 200:
            code = _oauth_error(response.data)
            detail = f"HTTP {response.status}" + (f", {code}" if code else "")
            raise FcmAuthError(f"{PROVIDER} token endpoint refused the service account ({detail})", provider_code=code)
        return response


class FcmPushProvider:
    """FCM HTTP v1 `messages:send`, bounded by the call's timeout (see the module docstring).

    Parameters
    ----------
    credentials : Callable[[], Mapping[str, Any]]
        Returns the Firebase service account key file's JSON (type, project_id, private_key_id, private_key,
        client_email, token_uri); called on every send, cached by the caller.
    base_url : str
        FCM's API (`https://fcm.googleapis.com`), or a sandbox's.
    http : ProviderHttp | None
        The transport of `messages:send`; a pool of its own by default.
    clock : Clock
        Epoch seconds, to turn an HTTP-date `Retry-After` into a wait.
    token_pool : urllib3.PoolManager | None
        Carries the token requests; a small pool of its own by default.
    """

    name = PROVIDER
    channel = Channel.PUSH

    def __init__(
        self,
        *,
        credentials: Callable[[], Mapping[str, Any]],
        base_url: str,
        http: ProviderHttp | None = None,
        clock: Clock = system_clock,
        token_pool: urllib3.PoolManager | None = None,
    ) -> None:
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._http = http or ProviderHttp(PROVIDER)
        self._clock = clock
        self._tokens = FcmAccessTokens(token_pool)

    def breaker_name(self, record: NotificationRecord) -> str:
        return f"provider:{self.name}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        """Send the push; FCM's 200 `{"name": ...}` is a receipt."""
        device_token = record.recipient.device_token
        if device_token is None:
            raise UndeliverableError("recipient has no device token")
        deadline = time.monotonic() + timeout
        account, info = self._service_account()
        access_token = self._tokens.token(account, info, deadline=deadline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderUnreachable(f"{PROVIDER} unreachable (no time left after the token request)")
        answer = self._http.post_json(
            f"{self._base_url}/v1/projects/{quote(account.project_id, safe='')}/messages:send",
            {"message": push_message(record, device_token)},
            timeout=remaining,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if answer.ok:
            body = answer.json()
            name = body.get("name") if isinstance(body, dict) else None
            return ProviderReceipt(provider=self.name, message_id=name if isinstance(name, str) and name else None)
        if answer.status == 401:
            self._tokens.forget(access_token)  # revoked or expired early: the next call fetches a new one
        raise self._refusal(answer)

    def _service_account(self) -> tuple[ServiceAccount, Mapping[str, Any]]:
        try:
            info = self._credentials()
            return ServiceAccount.model_validate(dict(info)), info
        except ValidationError as error:
            fields = ", ".join(sorted({".".join(str(part) for part in item["loc"]) for item in error.errors()}))
            raise FcmAuthError(f"{PROVIDER} service account secret lacks valid fields: {fields}") from None
        except Exception as error:  # noqa: BLE001 - any failure to read the secret is the same failure
            raise FcmAuthError(f"{PROVIDER} credentials unavailable ({type(error).__name__})") from None

    def _refusal(self, answer: HttpAnswer) -> FcmError:
        code = _fcm_error_code(answer.json())
        return FcmError(
            f"{PROVIDER} answered HTTP {answer.status}" + (f" ({code})" if code else ""),
            status_code=answer.status,
            retry_after=answer.retry_after(self._clock()),
            provider_code=code,
        )


def _fcm_error_code(body: Any) -> str | None:
    """The `errorCode` of FCM's `FcmError` detail, else the error's canonical `status`; nothing else is kept.

    FCM answers `{"error": {"code": 404, "message": ..., "status": "NOT_FOUND", "details": [{"@type":
    "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}`.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            code = detail.get("errorCode")
            if isinstance(code, str) and _ERROR_CODE.match(code):
                return code
    status = error.get("status")
    return status if isinstance(status, str) and _ERROR_CODE.match(status) else None


def _oauth_error(body: Any) -> str | None:
    """The OAuth 2.0 `error` code of a token endpoint's refusal (`invalid_grant`), if it is one."""
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
    code = parsed.get("error") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and _OAUTH_ERROR.match(code) else None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
