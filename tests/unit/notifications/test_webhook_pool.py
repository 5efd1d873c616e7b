"""The webhook connection pool on its own: LIFO reuse, a cap per key, idle expiry by an injected clock, and
connections the receiver closed never handed out (fake connections, no network)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from notifications.providers.pinned_http import ConnectionPool, PoolKey
from tests.support.clock import FakeClock

KEY = PoolKey("https", "hooks.example.com", 443, "93.184.215.14")
OTHER = PoolKey("https", "hooks.example.com", 443, "93.184.215.15")  # same origin, another pinned address


@dataclass(eq=False)
class FakeConnection:
    label: str
    dropped: bool = False
    closed: bool = False

    def peer_closed(self) -> bool:
        return self.dropped

    def close(self) -> None:
        self.closed = True


def test_the_most_recently_used_connection_is_taken_first() -> None:
    # Given
    connections = ConnectionPool(clock=FakeClock())
    older, newer = FakeConnection("older"), FakeConnection("newer")
    connections.put(KEY, older)
    connections.put(KEY, newer)

    # When / Then
    assert connections.take(KEY) is newer
    assert connections.take(KEY) is older
    assert connections.take(KEY) is None


def test_connections_are_shared_only_for_the_same_origin_and_pinned_address() -> None:
    # Given
    connections = ConnectionPool(clock=FakeClock())
    connections.put(KEY, FakeConnection("a"))

    # When / Then
    assert connections.take(OTHER) is None
    assert connections.idle_count(KEY) == 1


def test_beyond_the_cap_the_oldest_idle_connection_is_closed() -> None:
    # Given
    connections = ConnectionPool(max_idle_per_key=10, clock=FakeClock())
    kept = [FakeConnection(str(number)) for number in range(12)]

    # When
    for connection in kept:
        connections.put(KEY, connection)

    # Then
    assert connections.idle_count(KEY) == 10
    assert [connection.closed for connection in kept] == [True, True] + [False] * 10


def test_an_idle_connection_older_than_the_bound_is_closed_not_reused() -> None:
    # Given
    clock = FakeClock()
    connections = ConnectionPool(max_idle_seconds=30.0, clock=clock)
    stale = FakeConnection("stale")
    connections.put(KEY, stale)

    # When
    clock.advance(30.5)
    taken = connections.take(KEY)

    # Then
    assert taken is None
    assert stale.closed
    assert connections.idle_count() == 0


def test_an_idle_connection_within_the_bound_is_reused() -> None:
    # Given
    clock = FakeClock()
    connections = ConnectionPool(max_idle_seconds=30.0, clock=clock)
    fresh = FakeConnection("fresh")
    connections.put(KEY, fresh)

    # When
    clock.advance(29.5)

    # Then
    assert connections.take(KEY) is fresh
    assert not fresh.closed


def test_putting_one_back_closes_those_that_aged_out_for_every_origin() -> None:
    # Given: an origin nobody calls any more
    clock = FakeClock()
    connections = ConnectionPool(max_idle_seconds=30.0, clock=clock)
    forgotten = FakeConnection("forgotten")
    connections.put(OTHER, forgotten)

    # When
    clock.advance(31)
    connections.put(KEY, FakeConnection("busy"))

    # Then
    assert forgotten.closed
    assert connections.idle_count(OTHER) == 0


def test_a_connection_the_receiver_closed_is_skipped_and_closed() -> None:
    # Given
    connections = ConnectionPool(clock=FakeClock())
    alive, dropped = FakeConnection("alive"), FakeConnection("dropped", dropped=True)
    connections.put(KEY, alive)
    connections.put(KEY, dropped)

    # When
    taken = connections.take(KEY)

    # Then
    assert taken is alive
    assert dropped.closed


def test_close_closes_every_idle_connection() -> None:
    # Given
    connections = ConnectionPool(clock=FakeClock())
    idle = [FakeConnection("a"), FakeConnection("b")]
    connections.put(KEY, idle[0])
    connections.put(OTHER, idle[1])

    # When
    connections.close()

    # Then
    assert all(connection.closed for connection in idle)
    assert connections.idle_count() == 0


def test_concurrent_takers_never_get_the_same_connection() -> None:
    # Given: 10 idle connections and 10 threads taking one each at once
    connections = ConnectionPool(clock=FakeClock())
    for number in range(10):
        connections.put(KEY, FakeConnection(str(number)))
    taken: list[Any] = []
    start = threading.Barrier(10)

    def take() -> None:
        start.wait()
        taken.append(connections.take(KEY))

    # When
    threads = [threading.Thread(target=take) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then
    assert None not in taken
    assert len({id(connection) for connection in taken}) == 10
