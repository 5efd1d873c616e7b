"""Delivery callbacks to Herald's API, sent by one background thread so no provider request ever waits on them.

A provider hands over a sequence of POSTs (Twilio's "sent" then "delivered"); the worker sends the first after
the configured delay and each next one the same delay after the previous went through. A POST that finds no API
(connection refused, a 5xx or 429 answer: the local runtime is still starting) is tried again a few times, shortly
after; one that still fails, or is refused outright (4xx), ends its sequence with one log line.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from local.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

logger = get_logger("sandbox")

RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)  # seconds before each further attempt
SEND_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CallbackPost:
    """One callback: where it goes, and how to build its body and headers (called when sent, so a signature's
    timestamp is the sending time)."""

    provider: str
    notification_id: str | None
    event: str  # what it reports ("delivered"), for the log
    url: str
    build: Callable[[], tuple[bytes, dict[str, str]]]


@dataclass(frozen=True)
class _Pending:
    posts: tuple[CallbackPost, ...]
    index: int  # the post to send next
    attempt: int  # of that post, from 0


class CallbackWorker:
    """The one thread that sends callbacks, from a queue ordered by when each is due."""

    def __init__(
        self,
        delay_seconds: float,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self._delay = delay_seconds
        self._retry_delays = tuple(retry_delays)
        self._send_timeout = send_timeout
        self._due: list[tuple[float, int, _Pending]] = []
        self._order = itertools.count()  # ties on the due time keep submission order
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-callbacks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = SEND_TIMEOUT_SECONDS + 1.0) -> None:
        """Stop sending (what is still queued is dropped); returns once the thread ends or `timeout` passes."""
        with self._wake:
            self._stopping = True
            self._due.clear()
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, posts: Sequence[CallbackPost]) -> None:
        """Queue callbacks sent in this order, `delay_seconds` apart, the first `delay_seconds` from now."""
        if posts:
            self._schedule(_Pending(tuple(posts), 0, 0), self._delay)

    def _schedule(self, pending: _Pending, after: float) -> None:
        with self._wake:
            if self._stopping:
                return
            heapq.heappush(self._due, (time.monotonic() + after, next(self._order), pending))
            self._wake.notify_all()

    def _next(self) -> _Pending | None:
        """Wait for the next callback that is due; None once stopping."""
        with self._wake:
            while not self._stopping:
                if not self._due:
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._wake.wait(wait)
            return None

    def _run(self) -> None:
        while (pending := self._next()) is not None:
            post = pending.posts[pending.index]
            status, error = self._send(post)
            if status is not None and 200 <= status < 300:
                if pending.index + 1 < len(pending.posts):
                    self._schedule(_Pending(pending.posts, pending.index + 1, 0), self._delay)
                continue
            retryable = status is None or status == 429 or status >= 500
            if retryable and pending.attempt < len(self._retry_delays):
                self._schedule(
                    _Pending(pending.posts, pending.index, pending.attempt + 1), self._retry_delays[pending.attempt]
                )
                continue
            logger.warning(
                "callback failed",
                extra={
                    "provider": post.provider,
                    "notification_id": post.notification_id,
                    "event": post.event,
                    "status": status,
                    "error": error,
                    "attempts": pending.attempt + 1,
                    "dropped_after": len(pending.posts) - pending.index - 1,
                },
            )

    def _send(self, post: CallbackPost) -> tuple[int | None, str | None]:
        """POST one callback: the status answered, or None and the reason when nothing was."""
        body, headers = post.build()
        request = urllib.request.Request(post.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._send_timeout) as response:  # noqa: S310 - Herald's API
                response.read()
                return int(response.status), None
        except urllib.error.HTTPError as error:
            error.read()
            return int(error.code), None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return None, type(reason).__name__ if isinstance(reason, BaseException) else str(reason)
