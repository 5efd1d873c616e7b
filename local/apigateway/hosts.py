"""Which host a request is for, and whether the emulator answers it: the DNS-rebinding defence.

Any web page the developer opens can send requests to a server on 127.0.0.1. The browser keeps the page
from reading the answers, unless the attacker re-points their own name at 127.0.0.1 (DNS rebinding):
then the page and the emulator share an origin as far as the browser knows. The browser still names the
attacker's host in ``Host``, so answering only loopback names defeats it. ``0.0.0.0``, which browsers on
Linux and macOS route to the local machine, is refused the same way.

A refused host gets 403, not 421 Misdirected Request: API Gateway answers a name it does not serve with
403 Forbidden, dev servers with the same check (Vite's ``allowedHosts``) answer 403 too, and 421 tells a
client it may retry on another connection, which could only get the same answer.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from local.apigateway.refusals import RequestRefusedError, bad_request

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
"""The names the emulator answers by default; a port after them is not compared."""

# RFC 3986 host: an IP literal in brackets, or a reg-name (IPv4 addresses are reg-names by syntax); then a port.
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(?::[0-9]*)?")


def http_version(version: str) -> tuple[int, int]:
    """``HTTP/1.1`` -> ``(1, 1)``, for a version http.server has already checked (``HTTP/0.9`` when none)."""
    major, _, minor = version.removeprefix("HTTP/").partition(".")
    return int(major), int(minor or 0)


def admit_host(version: str, target: str, host_fields: list[str], allowed: frozenset[str]) -> str:
    """The request target in origin form (``/path?query``), when the request is for a host in ``allowed``.

    Parameters
    ----------
    version : str
        The request's HTTP version, e.g. ``HTTP/1.1``.
    target : str
        The request target as sent: origin form, or absolute form (``http://host:port/path``), whose host
        must be allowed as well (a compliant client repeats it in ``Host``).
    host_fields : list[str]
        Every ``Host`` header field of the request.
    allowed : frozenset[str]
        Host names answered, lower case (IPv6 literals in brackets).

    Raises
    ------
    RequestRefusedError
        400 for more than one Host field, a malformed one, or none in HTTP/1.1 (RFC 9112 section 3.2 requires
        all three); 403 for any other host, and for no Host at all from an HTTP/1.0 client, which a browser
        never sends, so nothing legitimate is lost by refusing it.
    """
    if len(host_fields) > 1:
        raise bad_request("A request must carry exactly one Host header")
    if not host_fields and http_version(version) >= (1, 1):
        raise bad_request("An HTTP/1.1 request must carry a Host header")
    name = _host_name(host_fields[0]) if host_fields else None
    origin_form = target
    if not target.startswith("/") and target != "*":
        parts = urlsplit(target)
        if parts.scheme.lower() in {"http", "https"} and parts.netloc:
            if _host_name(parts.netloc) not in allowed:
                raise _foreign(allowed)
            origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if name not in allowed:
        raise _foreign(allowed)
    return origin_form


def _host_name(field: str) -> str:
    """The host of a ``Host`` value or URL authority, lower case and without its port."""
    match = _HOST.fullmatch(field.strip())
    if match is None:
        raise bad_request("The Host header is not a valid host")
    return match["name"].lower()


def _foreign(allowed: frozenset[str]) -> RequestRefusedError:
    names = ", ".join(sorted(allowed))
    return RequestRefusedError(403, "host_not_allowed", f"This server answers only requests for: {names}")
