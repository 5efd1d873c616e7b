"""Standard Webhooks signing: the signature a receiver can verify, and the ones it must reject."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from notifications import signing

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_signature_is_hmac_sha256_over_id_timestamp_and_body() -> None:
    # Given
    body = b'{"hello":"world"}'

    # When
    header = signing.sign(SECRET, "msg_1", 1_700_000_000, body)

    # Then: recomputed independently, exactly as the spec describes
    key = b"0123456789abcdef0123456789abcdef"
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert header == f"v1,{expected}"


def test_verify_accepts_a_fresh_signature_among_several() -> None:
    # Given
    header = signing.sign(SECRET, "msg_1", 1000, b"{}")

    # When / Then
    assert signing.verify(SECRET, "msg_1", 1000, b"{}", f"v1,bogus {header}", now=1010)


@pytest.mark.parametrize(
    ("message_id", "timestamp", "body", "now"),
    [("msg_2", 1000, b"{}", 1000), ("msg_1", 1000, b"{ }", 1000), ("msg_1", 1000, b"{}", 1000 + 301)],
)
def test_verify_rejects_tampering_and_stale_timestamps(message_id: str, timestamp: int, body: bytes, now: int) -> None:
    # Given
    header = signing.sign(SECRET, "msg_1", 1000, b"{}")

    # When / Then
    assert not signing.verify(SECRET, message_id, timestamp, body, header, now=now)


@pytest.mark.parametrize("secret", ["plain", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()])
def test_malformed_secrets_are_refused(secret: str) -> None:
    # When / Then
    with pytest.raises(signing.InvalidSecret):
        signing.decode_secret(secret)


def test_the_stored_secret_becomes_a_whsec_secret_of_at_least_24_bytes() -> None:
    # Given: what the template's generated secret holds (48 base64 characters), and a too-short key
    stored = {"key": "A" * 48}

    # When / Then
    assert signing.secret_of(stored) == "whsec_" + "A" * 48
    assert len(signing.decode_secret(signing.secret_of(stored))) == 36
    with pytest.raises(signing.InvalidSecret, match="at least 24 bytes"):
        signing.secret_of({"key": base64.b64encode(b"x" * 23).decode()})
    with pytest.raises(signing.InvalidSecret, match="JSON object"):
        signing.secret_of({"value": "A" * 48})
