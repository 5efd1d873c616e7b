"""``python -m local`` (``make run``): start Herald on 127.0.0.1 until Ctrl-C or SIGTERM.

Every setting is an environment variable; see :mod:`local.settings` for the table.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

from local import logs
from local.runtime import Runtime
from local.settings import LocalSettings

if TYPE_CHECKING:
    from types import FrameType

logger = logs.get_logger("main")


def main() -> int:
    """Run until SIGINT/SIGTERM; exit status 0 on a clean stop, 1 when start-up failed."""
    try:
        settings = LocalSettings.from_env()
    except ValueError as error:
        sys.stderr.write(f"Herald: invalid setting: {error}\n")
        return 1
    logs.configure(settings.log_level)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    runtime = Runtime(settings)
    try:
        runtime.start()
    except Exception as error:
        logger.exception("start-up failed")
        sys.stderr.write(f"Herald failed to start: {error}\n")
        return 1
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        runtime.stop()
    sys.stdout.write("Herald stopped\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
