"""Why the emulator's HTTP front refuses a request before API Gateway's own checks see it."""

from __future__ import annotations

import json
import re
from http import HTTPStatus


class RequestRefusedError(Exception):
    """A request the emulator will not serve: a wrong Host, broken framing, a stalled body.

    These are answered by the emulator's HTTP front (where CloudFront would answer in AWS), in Herald's
    error shape ``{"error": {"code", "message"}}``, and the connection is closed afterwards: once framing
    is in doubt, the next bytes on the connection cannot be trusted to start a request.

    Parameters
    ----------
    status : int
        The HTTP status to answer.
    code : str
        Herald's machine-readable error code.
    message : str
        What a person reads; never echoes the request.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def of_status(cls, status: int) -> RequestRefusedError:
        """A refusal with the status's own code and description (e.g. 414 -> ``request_uri_too_long``)."""
        known = HTTPStatus(status)
        return cls(status, re.sub(r"[^a-z0-9]+", "_", known.phrase.lower()).strip("_"), known.description)

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()


class BodyTooLargeError(Exception):
    """The body is over API Gateway's payload limit: the gateway's ``REQUEST_TOO_LARGE`` answers.

    Parameters
    ----------
    size : int
        Bytes declared by ``Content-Length``, or counted in a chunked body when it crossed the limit (a lower
        bound: the rest is never read).
    """

    def __init__(self, size: int) -> None:
        super().__init__(f"body of at least {size} bytes")
        self.size = size


def bad_request(message: str) -> RequestRefusedError:
    """400 in Herald's shape, with the code the template's DEFAULT_4XX response uses."""
    return RequestRefusedError(400, "bad_request", message)
