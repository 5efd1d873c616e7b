"""HTTP/1.1 to vetted, pinned addresses: kept-alive connections, one deadline per call, a bounded answer.

The transport under `notifications.providers.webhook`:

* `PinnedConnection` connects only to the addresses the SSRF guard vetted, in its order (IPv4 first), moving
  on to the next when one refuses, is unreachable or does not answer within its share of the time left, and
  stays pinned to the one that connected (TLS with SNI and certificate checks for the URL's host name). A
  socket wrapper sets the time left before every send and receive, so a peer that drips its answer a byte at
  a time cannot stretch a call past its deadline;
* `ConnectionPool` keeps idle connections per (scheme, host, port, pinned address), most recently used
  first, capped per key and aged out, and skips one the peer closed while it sat idle.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from notifications import ssrf
from notifications.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import ReadableBuffer, WriteableBuffer


# How a kept-alive connection the receiver closed while it sat idle fails when reused, before any answer byte
# (RemoteDisconnected is both a ConnectionResetError and a BadStatusLine).
CLOSED_WHILE_IDLE = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.BadStatusLine,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class Deadline:
    """When the current call on a connection must end, and how many answer bytes it has read so far.

    One per connection, shared with its socket, set afresh for every call.
    """

    __slots__ = ("at", "received")

    def __init__(self) -> None:
        self.at = 0.0  # not set yet: every blocking step times out at once
        self.received = 0

    def start(self, at: float) -> None:
        self.at = at
        self.received = 0

    def remaining(self) -> float:
        """Seconds left for the next blocking step; `TimeoutError` once none are, so no step starts late."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("webhook call ran out of time")
        return left


class _BoundedReader(io.RawIOBase):
    """The answer's bytes: each read waits at most until the deadline, and counts what arrived."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open until this reader is closed
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        self._sock.settimeout(self._deadline.remaining())
        count = self._raw.readinto(buffer)
        if count:
            self._deadline.received += count
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _BoundedSocket:
    """What `http.client` sees as the connection's socket (plain or TLS): each send and receive may take only
    the time left until the call's deadline.

    A per-operation timeout alone lets a receiver that drips one byte at a time, each well within it, hold a
    call for as long as it likes.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: ReadableBuffer) -> None:
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                self._sock.settimeout(self._deadline.remaining())
                sent += self._sock.send(octets[sent:])

    def makefile(self, mode: str) -> io.BufferedReader:
        """`http.client` reads each answer through `makefile("rb")`."""
        if mode != "rb":
            raise ValueError(f"only 'rb' is supported, not {mode!r}")
        return io.BufferedReader(_BoundedReader(self._sock, self._deadline))

    def peer_closed(self) -> bool:
        """True when an idle connection has something to read: the receiver closed it (or spoke unasked)."""
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(self._sock, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self._sock.close()


class PinnedConnection(http.client.HTTPConnection):
    """HTTP/1.1 to one of a target's vetted addresses; for https, TLS with SNI and certificate checks for the
    URL's host name.

    The host name goes in the Host header and the TLS handshake; only the addresses it resolved to when it
    was vetted are ever connected to, so DNS cannot change them after the check. They are tried in the
    target's order: one that refuses, is unreachable or does not answer in time costs only its share of the
    time left (that time divided by the addresses still to try), so the next still gets a chance within the
    call's one deadline. A TLS or HTTP failure after connecting is not retried on another address.

    `address` is the one that connected (None before), under which the connection goes back to the pool.
    """

    def __init__(self, target: ssrf.Target, tls: ssl.SSLContext | None) -> None:
        super().__init__(target.host, target.port)
        self.default_port = ssrf.DEFAULT_PORTS[target.scheme]  # the Host header names the port only when not this
        self.deadline = Deadline()
        self.address: str | None = None
        self._target = target
        self._tls = tls
        self._bounded: _BoundedSocket | None = None

    @property
    def pool_key(self) -> PoolKey | None:
        """The origin and the address this connection is pinned to; None until it connected."""
        if self.address is None:
            return None
        return PoolKey(self._target.scheme, self._target.host, self._target.port, self.address)

    def connect(self) -> None:
        sock = self._connect_to_a_vetted_address()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(self.deadline.remaining())  # bounds the whole handshake, not each step of it
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._bounded = _BoundedSocket(sock, self.deadline)
        self.sock = self._bounded

    def _connect_to_a_vetted_address(self) -> socket.socket:
        """A TCP connection to the first vetted address that accepts one; the last failure when none does."""
        addresses = self._target.addresses
        failure: OSError | None = None
        for index, address in enumerate(addresses):
            share = self.deadline.remaining() / (len(addresses) - index)  # TimeoutError once no time is left
            try:
                sock = socket.create_connection((address, self.port), timeout=share)
            except OSError as error:  # refused, unreachable, or no answer within its share
                logger.info(
                    "webhook address did not connect",
                    extra={"address": address, "port": self.port, "error_type": type(error).__name__},
                )
                failure = error
                continue
            self.address = address
            return sock
        raise failure if failure is not None else ConnectionError("the target has no vetted address")

    def peer_closed(self) -> bool:
        """True unless this idle connection is open and quiet, as one worth reusing is."""
        return self.sock is None or self._bounded is None or self._bounded.peer_closed()


class PoolKey(NamedTuple):
    """Connections are shared only between calls to the same origin pinned to the same address."""

    scheme: str
    host: str
    port: int
    address: str


class ConnectionPool:
    """Idle kept-alive connections of one execution environment, by origin and pinned address.

    Thread-safe: each delivery takes a connection for itself and puts it back when done, so concurrent calls
    to one origin open several connections and sequential ones reuse one. The most recently used is taken
    first (LIFO), so the others age out.

    Parameters
    ----------
    max_idle_per_key : int
        Idle connections kept per key; putting one more back closes the oldest.
    max_idle_seconds : float
        An idle connection older than this is closed, not reused (receivers close idle ones too).
    clock : Callable[[], float]
        Monotonic seconds (``time.monotonic``); tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_idle_per_key: int = 10,
        max_idle_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_idle_per_key = max_idle_per_key
        self._max_idle_seconds = max_idle_seconds
        self._clock = clock
        self._idle: dict[PoolKey, list[tuple[float, PinnedConnection]]] = {}  # oldest first
        self._lock = threading.Lock()

    def take(self, key: PoolKey) -> PinnedConnection | None:
        """The most recently used idle connection for `key` that is still open, or None."""
        discarded: list[PinnedConnection] = []
        found: PinnedConnection | None = None
        with self._lock:
            idle = self._idle.get(key, [])
            now = self._clock()
            while idle and found is None:
                since, connection = idle.pop()
                if now - since > self._max_idle_seconds:  # and so are all older ones
                    discarded += [connection, *(older for _, older in idle)]
                    idle.clear()
                elif connection.peer_closed():
                    discarded.append(connection)
                else:
                    found = connection
            if not idle:
                self._idle.pop(key, None)
        _close_all(discarded)
        return found

    def put(self, key: PoolKey, connection: PinnedConnection) -> None:
        """Keep an idle connection for the next call to `key`; closes the ones that aged out meanwhile."""
        discarded: list[PinnedConnection] = []
        with self._lock:
            now = self._clock()
            for other in list(self._idle):
                others = self._idle[other]
                while others and now - others[0][0] > self._max_idle_seconds:
                    discarded.append(others.pop(0)[1])
                if not others:
                    del self._idle[other]
            idle = self._idle.setdefault(key, [])
            idle.append((now, connection))
            while len(idle) > self._max_idle_per_key:
                discarded.append(idle.pop(0)[1])
            if not idle:
                del self._idle[key]
        _close_all(discarded)

    def idle_count(self, key: PoolKey | None = None) -> int:
        """Idle connections kept for `key`, or for every key."""
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, []))
            return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            discarded = [connection for idle in self._idle.values() for _, connection in idle]
            self._idle.clear()
        _close_all(discarded)


def _close_all(connections: list[PinnedConnection]) -> None:
    for connection in connections:
        connection.close()
