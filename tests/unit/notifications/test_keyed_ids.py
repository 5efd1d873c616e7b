"""Keyed notification ids: an HMAC of the caller and the idempotency key under a server secret, as a UUIDv8."""

from __future__ import annotations

import base64
import uuid

import pytest

from notifications.ids import InvalidIdempotencySecret, KeyedIds

SECRET = b"herald-unit-idempotency-secret-0123456789"


def test_the_same_caller_and_key_always_give_the_same_id() -> None:
    # Given: two instances built from the same secret
    first, second = KeyedIds(SECRET), KeyedIds(SECRET)

    # When
    ids = {first.for_key("client-a", "order-42"), second.for_key("client-a", "order-42")}

    # Then
    assert len(ids) == 1


def test_another_caller_or_another_key_gives_another_id() -> None:
    # Given
    ids = KeyedIds(SECRET)

    # When
    made = [
        ids.for_key("client-a", "order-42"),
        ids.for_key("client-b", "order-42"),
        ids.for_key("client-a", "order-43"),
        ids.for_key("client-ao", "rder-42"),  # the separator keeps scope and key apart
    ]

    # Then
    assert len(set(made)) == len(made)


def test_another_secret_gives_another_id() -> None:
    # Given: the same caller and key under two secrets
    ours, theirs = KeyedIds(SECRET), KeyedIds(SECRET[::-1])

    # When / Then
    assert ours.for_key("client-a", "order-42") != theirs.for_key("client-a", "order-42")


def test_the_id_is_a_version_8_uuid_with_the_rfc_variant() -> None:
    # Given
    ids = KeyedIds(SECRET)

    # When
    parsed = [uuid.UUID(ids.for_key("client-a", f"order-{n}")) for n in range(64)]

    # Then
    assert all(value.version == 8 for value in parsed)
    assert all(value.variant == uuid.RFC_4122 for value in parsed)
    assert all(str(value) == ids.for_key("client-a", f"order-{n}") for n, value in enumerate(parsed))


def test_a_key_under_24_bytes_is_refused() -> None:
    # When / Then
    with pytest.raises(InvalidIdempotencySecret):
        KeyedIds(b"x" * 23)
    assert KeyedIds(b"x" * 24).for_key("client-a", "order-42")


def test_the_stored_secret_gives_the_same_ids_as_its_key() -> None:
    # Given: the Secrets Manager value a deployment generates (48 base64 characters: 36 bytes)
    stored = {"key": "A" * 48}

    # When
    ids = KeyedIds.from_secret(stored)

    # Then
    assert ids.for_key("client-a", "order-42") == KeyedIds(base64.b64decode("A" * 48)).for_key("client-a", "order-42")


@pytest.mark.parametrize(
    "stored",
    [
        {"value": "A" * 48},
        {"key": ""},
        {"key": 42},
        {"key": "not base64!"},
        {"key": base64.b64encode(b"x" * 23).decode()},
    ],
)
def test_a_stored_secret_that_is_not_base64_of_24_bytes_is_refused(stored: dict[str, object]) -> None:
    # When / Then
    with pytest.raises(InvalidIdempotencySecret):
        KeyedIds.from_secret(stored)
