"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with a `whsec_` secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"


class InvalidSecret(ValueError):
    """The signing secret is not `whsec_` followed by base64."""


MIN_KEY_BYTES = 24


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("webhook signing secrets start with 'whsec_'")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as error:
        raise InvalidSecret("webhook signing secret is not valid base64 after 'whsec_'") from error
    if len(key) < MIN_KEY_BYTES:
        raise InvalidSecret(f"webhook signing secret must hold at least {MIN_KEY_BYTES} bytes")
    return key


def secret_of(stored: Mapping[str, Any]) -> str:
    """The `whsec_` secret from its Secrets Manager value `{"key": "<base64>"}` (checked: base64, >= 24 bytes)."""
    key = stored.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidSecret('the webhook signing secret must be a JSON object {"key": "<base64>"}')
    secret = SECRET_PREFIX + key
    decode_secret(secret)
    return secret


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    message_id: str,
    timestamp: int,
    body: bytes,
    signature_header: str,
    *,
    now: float,
    tolerance: int = 300,
) -> bool:
    """Check a `webhook-signature` header (space-separated `v1,<sig>` entries) as a receiver would."""
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signature_header.split())
