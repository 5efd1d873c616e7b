"""The CLI's one HTTP client: urllib from the standard library, a timeout on every request, JSON in and out.

It never raises for an HTTP status: `HeraldHttp.request` returns every answer, and `Answer.ok_or_raise` turns an
error answer into `ApiError`. A target that does not answer raises `Unreachable`.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cli.errors import ApiError, Unreachable

if TYPE_CHECKING:
    from collections.abc import Mapping

USER_AGENT = "herald-cli/0.1"
_ERROR_SNIPPET_CHARS = 200


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, headers (names lower-cased) and JSON body (None when empty or not JSON)."""

    status: int
    body: Any
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def ok_or_raise(self) -> Answer:
        """This answer, if its status is below 400; else `ApiError` with Herald's error message and details."""
        if self.status < 400:
            return self
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            raise ApiError(self.status, code if isinstance(code, str) else None, error["message"], error.get("details"))
        if isinstance(self.body, dict) and isinstance(self.body.get("message"), str):  # API Gateway's own shape
            raise ApiError(self.status, None, self.body["message"])
        snippet = self.text.strip()[:_ERROR_SNIPPET_CHARS] or "no body"
        raise ApiError(self.status, None, f"the target answered HTTP {self.status}: {snippet}")


class HeraldHttp:
    """Requests to one Herald API base URL (e.g. `http://127.0.0.1:3000`, or a stage URL `https://.../prod`)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        host = urllib.parse.urlsplit(self._base).hostname or ""
        # A proxy from the environment must not capture requests to this machine's own runtime.
        handlers = [urllib.request.ProxyHandler({})] if is_loopback(host) else []
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def base_url(self) -> str:
        return self._base

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int | None] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request (`x-api-key: key` when given) and return its answer, whatever its status."""
        url = self._base + path
        params = {name: str(value) for name, value in (query or {}).items() if value is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - the scheme is checked
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("x-api-key", key)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        limit = self._timeout if timeout is None else timeout
        try:
            with self._opener.open(request, timeout=limit) as response:
                return _answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:  # an answer with a status >= 400: the caller decides
            with error:
                return _answer(error.code, error.headers, error.read())
        except TimeoutError as error:
            raise Unreachable(f"{self._base} did not answer within {limit:g} s") from error
        except urllib.error.URLError as error:
            raise Unreachable(f"cannot reach {self._base}: {_reason(error.reason)}") from error
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            raise Unreachable(f"cannot reach {self._base}: {_reason(error)}") from error


def is_loopback(host: str) -> bool:
    """True for this machine's own addresses (127.0.0.0/8, ::1, localhost)."""
    return host in {"localhost", "::1"} or host.startswith("127.")


def _answer(status: int, headers: Any, raw: bytes) -> Answer:
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    names = {name.lower(): value for name, value in headers.items()} if headers is not None else {}
    return Answer(status=status, body=body, text=text, headers=names)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
