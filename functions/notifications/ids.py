"""Notification ids: random, or derived from the idempotency key so the status record is the idempotency record.

A keyed id is an HMAC of the caller and the key under a server secret generated at deploy, so nobody who
knows a client's API key id and idempotency key can compute the id of that client's notification.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

MIN_KEY_BYTES = 24
_ID_BYTES = 16


class InvalidIdempotencySecret(ValueError):
    """The idempotency secret is not `{"key": "<base64>"}` of at least `MIN_KEY_BYTES` bytes."""


def new_id() -> str:
    return str(uuid.uuid4())


class KeyedIds:
    """Ids for idempotency keys: the same (caller, key) always gives the same id; different callers never share one.

    The id is HMAC-SHA256(secret, scope + "\\n" + key) truncated to 16 bytes, formatted as an RFC 9562
    version-8 (custom) UUID.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise InvalidIdempotencySecret(f"the idempotency secret must hold at least {MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_secret(cls, stored: Mapping[str, Any]) -> KeyedIds:
        """From the Secrets Manager value `{"key": "<base64>"}` (checked: base64, >= 24 bytes)."""
        encoded = stored.get("key")
        if not isinstance(encoded, str) or not encoded:
            raise InvalidIdempotencySecret('the idempotency secret must be a JSON object {"key": "<base64>"}')
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise InvalidIdempotencySecret("the idempotency secret's key is not valid base64") from error
        return cls(key)

    def for_key(self, scope: str, idempotency_key: str) -> str:
        """The id of the notification `scope` (the caller) made with `idempotency_key`."""
        digest = bytearray(
            hmac.new(self._key, f"{scope}\n{idempotency_key}".encode(), hashlib.sha256).digest()[:_ID_BYTES]
        )
        digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
        digest[8] = (digest[8] & 0x3F) | 0x80  # variant 10 (RFC 9562)
        return str(uuid.UUID(bytes=bytes(digest)))

    def for_address(self, kind: str, address: str) -> str:
        """The keyed hash a recipient's address is indexed by for erasure (`kind`: email, phone, device_token);
        email addresses compare case-insensitively. Nobody without the server key can tell whose it is."""
        normalized = address.strip().lower() if kind == "email" else address.strip()
        return hmac.new(self._key, f"recipient\n{kind}\n{normalized}".encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "KeyedIds(<secret>)"
