"""The time an invocation has left for AWS calls: a batch stops calling before Lambda would stop it.

A batch accept makes many AWS calls; at their worst (`aws.API_SLOWEST_CALL_SECONDS` each) they would run
past the function's timeout, and Lambda would end the invocation between writing records and queueing
their messages. So before each forward call (a write, a read, a send) the batch asks its budget, which
allows the call only when that call and one take-back after it (deleting the records left without a
message) both still fit before the deadline, with a margin for the code between calls. A refused call
ends the batch there: what is left is reported not accepted ("retry it"), as when a dependency fails.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from notifications import aws

if TYPE_CHECKING:
    from collections.abc import Callable


class TimeBudget:
    """Whether one more AWS call fits in the time an invocation has left.

    Parameters
    ----------
    time_left : Callable[[], float]
        Seconds left before the deadline, read at every check (for a Lambda function:
        `context.get_remaining_time_in_millis() / 1000`).
    call_seconds : float
        The longest one call may take (the clients' timeouts and retries).
    margin_seconds : float
        Time kept for the work between calls and for answering.
    """

    def __init__(
        self,
        time_left: Callable[[], float],
        call_seconds: float = aws.API_SLOWEST_CALL_SECONDS,
        margin_seconds: float = 1.0,
    ) -> None:
        self._time_left = time_left
        self._call_seconds = call_seconds
        self._margin_seconds = margin_seconds

    def allows_call(self) -> bool:
        """True when one more forward call and one take-back call after it fit, margin included."""
        return self._time_left() >= 2 * self._call_seconds + self._margin_seconds


# For callers without a deadline (a script, a test): every call is allowed.
UNBOUNDED = TimeBudget(lambda: math.inf)
