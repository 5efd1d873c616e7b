"""`--since` and `--until`: an ISO 8601 time (UTC unless it says otherwise) or a duration ago (`90s`, `15m`, `2h`,
`1d`, `1w`), sent to the API as ISO 8601 UTC (`2026-11-29T10:00:00Z`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGO = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, *, now: datetime) -> datetime:
    """The UTC time `value` names; `ValueError` with a readable message when it names none."""
    ago = _AGO.match(value.lower())
    if ago:
        amount, unit = ago.groups()
        return now.astimezone(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise ValueError(
            f"{value!r} is neither an ISO 8601 time (2026-11-29T10:00:00Z) nor a duration ago (15m, 2h, 1d)"
        ) from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a `Z`, to the second: what the API takes."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
