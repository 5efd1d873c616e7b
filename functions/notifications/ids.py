"""Notification ids: random, or derived from the idempotency key so the status record is the idempotency record."""

from __future__ import annotations

import uuid

_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d4c8e-2b7a-5e3f-9a61-8c2d0e4b7f15")


def new_id() -> str:
    return str(uuid.uuid4())


def id_for_key(scope: str, idempotency_key: str) -> str:
    """The same (caller, key) always gives the same id; different callers never share one."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{scope}\n{idempotency_key}"))
