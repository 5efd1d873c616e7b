"""A client's signing keys during a rotation: both signatures for the grace period, then the new one only;
every header verifies with the Standard Webhooks library a receiver uses."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from notifications import signing

NOW = int(time.time())  # the library verifies against its own clock; rotations are placed around it
BODY = b'{"id":"n-1"}'


def _verifies(secret: str, header: str, timestamp: int) -> bool:
    """As a receiver checks: the Standard Webhooks library (which also wants the timestamp near its clock)."""
    headers = {"webhook-id": "n-1", "webhook-timestamp": str(timestamp), "webhook-signature": header}
    try:
        Webhook(secret).verify(BODY, headers)
    except WebhookVerificationError:
        return False
    return True


def test_a_new_secret_is_32_random_bytes_and_a_valid_whsec_secret() -> None:
    # When
    first, second = signing.new_secret_value(), signing.new_secret_value()

    # Then
    assert len(base64.b64decode(first["key"])) == 32
    assert first != second
    assert signing.keys_of(first) == signing.SigningKeys(signing.SECRET_PREFIX + first["key"])


def test_during_the_grace_period_webhooks_carry_the_old_then_the_new_signature() -> None:
    # Given: a client's key rotated now with a day's grace
    before = signing.new_secret_value()
    after = signing.rotated(before, now=NOW - 3600, grace_seconds=86_400)
    keys = signing.keys_of(after)
    old, new = signing.SECRET_PREFIX + before["key"], keys.current

    # When: a webhook is signed an hour into the grace period
    header = signing.signature_header(keys, "n-1", NOW, BODY)

    # Then: `v1,<old> v1,<new>`, and a receiver holding either secret accepts it
    assert header == f"{signing.sign(old, 'n-1', NOW, BODY)} {signing.sign(new, 'n-1', NOW, BODY)}"
    assert _verifies(old, header, NOW)
    assert _verifies(new, header, NOW)


def test_after_the_grace_period_only_the_new_secret_signs() -> None:
    # Given
    before = signing.new_secret_value()
    keys = signing.keys_of(signing.rotated(before, now=NOW - 60, grace_seconds=60))

    # When: signed at the end of the grace period
    header = signing.signature_header(keys, "n-1", NOW, BODY)

    # Then
    assert header.count("v1,") == 1
    assert _verifies(keys.current, header, NOW)
    assert not _verifies(signing.SECRET_PREFIX + before["key"], header, NOW)


def test_a_second_rotation_keeps_only_the_key_it_replaces() -> None:
    # Given: two rotations in a row
    first = signing.new_secret_value()
    second = signing.rotated(first, now=NOW, grace_seconds=600)
    third = signing.rotated(second, now=NOW + 10, grace_seconds=600)

    # Then: the previous key is the second one; the first signs nothing any more
    assert third["previous_key"] == second["key"]
    assert signing.SECRET_PREFIX + first["key"] not in signing.keys_of(third).active(NOW + 20)


@pytest.mark.parametrize(
    "stored",
    [
        {"key": base64.b64encode(b"k" * 32).decode(), "previous_key": base64.b64encode(b"p" * 32).decode()},
        {"key": base64.b64encode(b"k" * 32).decode(), "previous_key": "short", "previous_until": NOW},
        {
            "key": base64.b64encode(b"k" * 32).decode(),
            "previous_key": base64.b64encode(b"p" * 32).decode(),
            "previous_until": True,
        },
    ],
    ids=["no-end-of-grace", "previous-too-short", "end-not-a-number"],
)
def test_a_malformed_rotation_is_refused(stored: dict[str, object]) -> None:
    with pytest.raises(signing.InvalidSecret):
        signing.keys_of(stored)
