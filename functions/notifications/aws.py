"""boto3 clients with timeouts that fit inside a Lambda invocation (boto3's default connect timeout is 60 s)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_CONNECT_SECONDS, _READ_SECONDS, _ATTEMPTS = 2, 5, 3
_CONFIG = Config(
    connect_timeout=_CONNECT_SECONDS,
    read_timeout=_READ_SECONDS,
    retries={"mode": "standard", "max_attempts": _ATTEMPTS},
)
# The longest one AWS call may take with these settings (every attempt timing out).
SLOWEST_CALL_SECONDS = float((_CONNECT_SECONDS + _READ_SECONDS) * _ATTEMPTS)
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 1})


def client(service: str, *, probe: bool = False) -> Any:
    """A client for one AWS service; `probe` clients fail fast for health checks."""
    return boto3.client(service, config=_PROBE_CONFIG if probe else _CONFIG)
