"""HTTP for the providers' APIs (SendGrid, Twilio, FCM): urllib3's pooled, kept-alive connections.

urllib3 is what botocore itself speaks HTTP with, so it is already in every Lambda environment: a
connection pool per host, TLS with certificate checks, connect and read timeouts, and no new
dependency in the package. Webhooks do not come here: their targets are chosen by clients and must be
vetted and pinned against SSRF (`notifications.providers.webhook`); providers' base URLs are our own
configuration.

`ProviderHttp.request` bounds the whole call by one timeout, follows no redirect, retries nothing (the
delivery engine decides about retries, once) and reads at most `MAX_ANSWER_BYTES` of an answer. A call
that gets no answer raises `ProviderUnreachable`, a `DeliveryError` without a status: the classifier
counts it as transient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from notifications.errors import DeliveryError
from resilience import parse_retry_after

MAX_ANSWER_BYTES = 256 * 1024
_MAX_RETRY_AFTER_SECONDS = 3600.0
USER_AGENT = "Herald/1"


class ProviderUnreachable(DeliveryError):
    """No answer from the provider (connection refused or reset, TLS failure, timeout)."""


@dataclass(frozen=True)
class HttpAnswer:
    """What a provider answered: status, headers (names in lower case) and the body as bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON (providers answer HTML from some proxies)."""
        try:
            return json.loads(self.body) if self.body else None
        except (ValueError, UnicodeDecodeError):
            return None

    def retry_after(self, now: float) -> float | None:
        """The provider's Retry-After in seconds (a number or an HTTP date), capped at one hour."""
        seconds = parse_retry_after(self.headers.get("retry-after"), now)
        return None if seconds is None else min(seconds, _MAX_RETRY_AFTER_SECONDS)


class ProviderHttp:
    """One pool of kept-alive connections per provider host, shared by the sender's delivery threads.

    Parameters
    ----------
    provider : str
        The provider's name, for error messages ("sendgrid unreachable (ReadTimeoutError)").
    pool : urllib3.PoolManager | None
        Injected in tests; by default a pool of up to `max_connections` connections per host.
    """

    def __init__(self, provider: str, pool: urllib3.PoolManager | None = None, max_connections: int = 10) -> None:
        self.provider = provider
        self._pool = pool or urllib3.PoolManager(maxsize=max_connections, block=False, retries=False)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpAnswer:
        """Send one request and read its answer, within `timeout` seconds for connect and read together."""
        sent_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=sent_headers,
                timeout=urllib3.Timeout(total=timeout),
                retries=False,
                redirect=False,
                preload_content=False,
            )
            content = b""
            try:
                content = response.read(MAX_ANSWER_BYTES + 1, decode_content=True)
            finally:
                if len(content) <= MAX_ANSWER_BYTES:
                    response.release_conn()  # read to its end: the connection can carry the next call
                else:
                    response.close()  # an oversized answer: do not read the rest, do not reuse
        except (Urllib3Error, OSError) as error:
            raise ProviderUnreachable(f"{self.provider} unreachable ({type(error).__name__})") from error
        return HttpAnswer(
            status=response.status,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=content[:MAX_ANSWER_BYTES],
        )

    def post_json(self, url: str, payload: Any, *, timeout: float, headers: dict[str, str] | None = None) -> HttpAnswer:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        return self.request(
            "POST", url, timeout=timeout, body=body, headers={"Content-Type": "application/json", **(headers or {})}
        )

    def post_form(
        self, url: str, fields: dict[str, str], *, timeout: float, headers: dict[str, str] | None = None
    ) -> HttpAnswer:
        from urllib.parse import urlencode  # noqa: PLC0415 - only Twilio posts forms

        return self.request(
            "POST",
            url,
            timeout=timeout,
            body=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )
