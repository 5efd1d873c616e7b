"""Where a request's body ends, and reading it without ever holding more than API Gateway's payload limit.

The rules are RFC 9112's (sections 5 and 6), applied strictly: when two HTTP parsers may disagree about
where a body ends (both ``Content-Length`` and ``Transfer-Encoding``, a folded or malformed header line,
two lengths), the bytes one of them takes for the next request can be smuggled past the other. Such a
request is refused with 400 and its connection closed, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from local.apigateway.hosts import http_version
from local.apigateway.refusals import BodyTooLargeError, RequestRefusedError, bad_request

if TYPE_CHECKING:
    from email.message import Message
    from io import BufferedIOBase

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST API payload limit (10 MiB)
_DIGITS = re.compile(r"[0-9]+")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
_MAX_LENGTH_DIGITS = 18  # past this a Content-Length is over any limit; int() of 4,300+ digits would raise
_CHUNK_LINE_LIMIT = 4096  # a chunk-size line with its extensions
_TRAILER_LINE_LIMIT = 65536  # as http.server bounds a header line
_MAX_TRAILERS = 100  # as http.server bounds the number of headers


@dataclass(frozen=True)
class Framing:
    """How the body of an admitted request is delimited."""

    chunked: bool
    length: int = 0  # Content-Length (0 when chunked or absent); may be over the limit, nothing is read yet


def check_header_section(headers: Message) -> None:
    """Refuse a header section that parsers could read differently (RFC 9112 section 5).

    A line that is not ``name: value`` (whitespace before the colon, no colon) makes Python's parser drop it
    and every line after it, ``Content-Length`` included; a folded line (obs-fold) glues two lines together;
    RFC 9110 section 5.5 calls CR, LF and NUL in a value invalid and dangerous.
    """
    if headers.defects:
        raise bad_request("The request's header section is malformed")
    if any(character in value for value in headers.values() for character in "\r\n\0"):
        raise bad_request("Folded header lines and NUL in header values are not accepted")


def framing_of(version: str, content_lengths: list[str], transfer_encodings: list[str]) -> Framing:
    """The framing the request's headers declare.

    Parameters
    ----------
    version : str
        The request's HTTP version, e.g. ``HTTP/1.1``.
    content_lengths, transfer_encodings : list[str]
        Every ``Content-Length`` and ``Transfer-Encoding`` header field of the request.

    Raises
    ------
    RequestRefusedError
        400 for both headers at once, ``Transfer-Encoding`` from an HTTP/1.0 client, chunked not last, or a
        ``Content-Length`` that is not one non-negative decimal number; 501 for a transfer coding other than
        chunked (API Gateway accepts no other).
    """
    if transfer_encodings:
        if content_lengths:
            raise bad_request("A request must not carry both Content-Length and Transfer-Encoding")
        if http_version(version) < (1, 1):
            raise bad_request("Transfer-Encoding needs HTTP/1.1")
        codings = [coding.strip().lower() for field in transfer_encodings for coding in field.split(",")]
        if codings[-1] != "chunked":
            raise bad_request("Transfer-Encoding must end with chunked")
        if codings != ["chunked"]:
            raise RequestRefusedError(501, "not_implemented", "Only the chunked transfer coding is supported")
        return Framing(chunked=True)
    if not content_lengths:
        return Framing(chunked=False)
    value = content_lengths[0].strip()
    if len(content_lengths) > 1 or _DIGITS.fullmatch(value) is None:
        raise bad_request("Content-Length must be one non-negative integer")
    digits = value.lstrip("0") or "0"
    # A length with more digits than this is over any limit; report it at a size that still says so.
    length = int(digits) if len(digits) <= _MAX_LENGTH_DIGITS else 10**_MAX_LENGTH_DIGITS
    return Framing(chunked=False, length=length)


def read_body(stream: BufferedIOBase, framing: Framing, limit: int) -> bytes:
    """The body, read as ``framing`` says, never more than ``limit`` bytes of it.

    Raises
    ------
    BodyTooLargeError
        When the declared length is over ``limit``, or as soon as a chunk would take the body over it (that
        chunk is not read).
    RequestRefusedError
        400 for a malformed chunked body, or one that ends before it is complete.
    TimeoutError
        When the client stops sending for longer than the socket's timeout.
    """
    if framing.chunked:
        return _read_chunked(stream, limit)
    if framing.length > limit:
        raise BodyTooLargeError(framing.length)
    return _read_exactly(stream, framing.length)


def _read_chunked(stream: BufferedIOBase, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_field, _, _extensions = _read_line(stream, _CHUNK_LINE_LIMIT).partition(b";")
        size_field = size_field.rstrip(b" \t")  # BWS before an extension
        if _HEX_DIGITS.fullmatch(size_field) is None:
            raise bad_request("Malformed chunk size in a chunked body")
        size = int(size_field, 16)  # hexadecimal, so no digit limit applies
        if size == 0:
            break
        if total + size > limit:
            raise BodyTooLargeError(total + size)
        chunks.append(_read_exactly(stream, size))
        total += size
        _read_line(stream, 0)  # the CRLF that ends the chunk's data: anything else means the size was wrong
    for _ in range(_MAX_TRAILERS + 1):  # trailer fields, which API Gateway does not pass on
        if _read_line(stream, _TRAILER_LINE_LIMIT) == b"":
            return b"".join(chunks)
    raise bad_request("Too many trailer fields in a chunked body")


def _read_line(stream: BufferedIOBase, limit: int) -> bytes:
    """One CRLF-terminated line of at most ``limit`` bytes, without its CRLF."""
    line = stream.readline(limit + 2)
    if line.endswith(b"\r\n") and b"\r" not in line[:-2]:
        return line[:-2]
    if not line.endswith(b"\n") and len(line) < limit + 2:  # the stream ended mid-line
        raise bad_request("The chunked body ended before its last chunk")
    raise bad_request("Malformed line in a chunked body (too long, or not ended by CRLF)")


def _read_exactly(stream: BufferedIOBase, size: int) -> bytes:
    data = stream.read(size) if size else b""
    if len(data) < size:
        raise bad_request("The request body ended before its declared length")
    return data
