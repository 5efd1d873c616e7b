"""Servers on loopback that misbehave on purpose, for tests; the well-behaved receiver is `local.receiver`.

`ScriptedServer` hands each accepted connection to a test's script (drip an answer a byte at a time, hang up
without answering); `read_request` reads one HTTP request off such a connection.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any

from local.aws.moto_server import LOOPBACK

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable


class ScriptedServer:
    """A TCP server on loopback that runs `script(connection, stopping)` for each accepted connection.

    For receivers no HTTP server library would play: one that drips its answer, one that hangs up. The
    script should return soon after `stopping` is set (wait on it instead of sleeping); leaving the
    context manager sets it, closes every connection and waits for the scripts.
    """

    def __init__(
        self, script: Callable[[socket.socket, threading.Event], None], tls: ssl.SSLContext | None = None
    ) -> None:
        self.connections = 0
        self._script = script
        self._tls = tls
        self._stopping = threading.Event()
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.05)  # so the accepting thread notices `stopping`
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self._listener.getsockname()[1]}/hook"

    def __enter__(self) -> ScriptedServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in self._open:  # wakes a script blocked on the client; each closes its own
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(None)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            with self._lock:
                self.connections += 1
                self._open.append(sock)
                self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self._script(sock, self._stopping)
        except OSError:
            pass  # the client went away
        finally:
            sock.close()


def read_request(stream: Any) -> bytes | None:
    """Read one HTTP request (headers and a content-length body) from a binary file; None when the client
    closed the connection first."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + stream.read(length)
