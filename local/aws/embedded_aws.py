"""moto's server, with DynamoDB's atomic conditional writes: `python -m local.aws.embedded_aws -H 127.0.0.1 -p 4566`.

moto's server handles requests on threads and takes no lock around a DynamoDB operation, so two
concurrent conditional updates of one item can both pass their condition (measured: 2 of 8
concurrent lease claims granted). Real DynamoDB applies each conditional write atomically, and
Herald's correctness rests on that. This entry point runs the same moto application and serialises
DynamoDB requests only; SQS long polls and the other services stay concurrent.
"""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING, Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, each one whole (condition check and write)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self._lock:
                result = self._app(environ, start_response)
                try:
                    return [b"".join(result)]  # the whole response inside the lock
                finally:
                    close = getattr(result, "close", None)  # WSGI: the server must close what it got
                    if close is not None:
                        close()
        return self._app(environ, start_response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, SerialisedDynamoDB(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
