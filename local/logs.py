"""Structured (JSON lines) logging for the local runtime's own messages.

Handlers log through Powertools as they do in Lambda; the runtime logs what a Lambda service or API
Gateway would put in CloudWatch: invocations, batch outcomes, gateway errors. Never bodies or
addresses: only ids, counts, routes and timings.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "herald.local"

# Attributes every LogRecord has; anything else was passed with `extra=` and is a structured field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: level, logger, message, timestamp, location and the `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "location": f"{record.module}:{record.lineno}",
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def get_logger(component: str) -> logging.Logger:
    """The logger of one runtime component, e.g. ``get_logger("pollers")``."""
    return logging.getLogger(f"{LOGGER_NAME}.{component}")


def configure(level: str = "INFO") -> None:
    """Send the runtime's logs to stderr as JSON lines (idempotent)."""
    root = logging.getLogger(LOGGER_NAME)
    root.setLevel(level)
    if not any(getattr(handler, "_herald_local", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._herald_local = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.propagate = False
