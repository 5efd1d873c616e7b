"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with a `whsec_` secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
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


NEW_KEY_BYTES = 32
DEFAULT_GRACE_SECONDS = 24 * 3600  # how long webhooks carry the previous key's signature after a rotation


@dataclass(frozen=True)
class SigningKeys:
    """A client's `whsec_` secrets: the current one, and during a rotation's grace period the previous one."""

    current: str
    previous: str | None = None
    previous_until: float | None = None  # epoch seconds; the previous secret signs until then

    def active(self, now: float) -> list[str]:
        """The secrets a webhook sent at `now` is signed with: the previous (while in its grace period), then the
        current."""
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            return [self.previous, self.current]
        return [self.current]


def keys_of(stored: Mapping[str, Any]) -> SigningKeys:
    """A client's keys from its Secrets Manager value `{"key", "previous_key"?, "previous_until"?}` (checked)."""
    current = secret_of(stored)
    previous_key, until = stored.get("previous_key"), stored.get("previous_until")
    if previous_key is None:
        return SigningKeys(current)
    if not isinstance(until, int | float) or isinstance(until, bool):
        raise InvalidSecret("a rotated webhook signing secret must say until when the previous key signs")
    return SigningKeys(current, secret_of({"key": previous_key}), float(until))


def new_secret_value() -> dict[str, Any]:
    """A fresh client key as Secrets Manager keeps it: `{"key": "<base64 of 32 random bytes>"}`."""
    return {"key": base64.b64encode(secrets.token_bytes(NEW_KEY_BYTES)).decode()}


def rotated(stored: Mapping[str, Any], *, now: float, grace_seconds: int) -> dict[str, Any]:
    """The value after a rotation at `now`: a new key, the current one kept as `previous_key` for `grace_seconds`
    (a previous key of an earlier rotation is dropped: one rotation at a time)."""
    secret_of(stored)  # only a valid key is kept as the previous one
    return {**new_secret_value(), "previous_key": stored["key"], "previous_until": int(now + grace_seconds)}


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(keys: SigningKeys, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<sig>` per active secret, space-separated (Standard Webhooks)."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in keys.active(timestamp))


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
