"""How a pinned connection picks among the vetted addresses: in the target's order, the next one when one
does not connect, each attempt bounded by its share of the time left, pinned to the one that connected (a
fake `socket.create_connection`: no network)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from notifications.providers.pinned_http import PinnedConnection, PoolKey
from notifications.ssrf import Target

TARGET = Target("http", "hooks.example.com", 443, "/", ("93.184.215.14", "93.184.215.15", "2606:4700::1"))


class FakeSocket:
    def setsockopt(self, *args: Any) -> None:
        return

    def close(self) -> None:
        return


class Connector:
    """Fails on the addresses it is told to, each with its own error; connects to the others."""

    def __init__(self, failures: dict[str, OSError]) -> None:
        self.failures = failures
        self.attempts: list[tuple[str, float]] = []

    def __call__(self, address: tuple[str, int], timeout: float) -> FakeSocket:
        self.attempts.append((address[0], timeout))
        failure = self.failures.get(address[0])
        if failure is not None:
            raise failure
        return FakeSocket()


def connection(monkeypatch: pytest.MonkeyPatch, connector: Connector, seconds: float) -> PinnedConnection:
    monkeypatch.setattr(socket, "create_connection", connector)
    pinned = PinnedConnection(TARGET, None)
    pinned.deadline.start(time.monotonic() + seconds)
    return pinned


@pytest.mark.parametrize(
    "failure", [ConnectionRefusedError(111, "refused"), OSError(101, "unreachable"), TimeoutError("timed out")]
)
def test_an_address_that_does_not_connect_costs_its_share_of_the_time_and_the_next_is_tried(
    monkeypatch: pytest.MonkeyPatch, failure: OSError
) -> None:
    # Given: the first address fails, 6 s left for three addresses
    connector = Connector({"93.184.215.14": failure})
    pinned = connection(monkeypatch, connector, 6.0)

    # When
    pinned.connect()

    # Then: the first may take a third of the time, the second half of what is left; the third is never tried
    [(first, first_share), (second, second_share)] = connector.attempts
    assert (first, second) == ("93.184.215.14", "93.184.215.15")
    assert first_share == pytest.approx(2.0, abs=0.1)
    assert second_share == pytest.approx(3.0, abs=0.1)
    assert pinned.address == "93.184.215.15"
    assert pinned.pool_key == PoolKey("http", "hooks.example.com", 443, "93.184.215.15")


def test_when_no_address_connects_the_last_failure_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    refused = ConnectionRefusedError(111, "refused")
    connector = Connector(dict.fromkeys(TARGET.addresses, refused))
    pinned = connection(monkeypatch, connector, 6.0)

    # When
    with pytest.raises(ConnectionRefusedError):
        pinned.connect()

    # Then
    assert [address for address, _ in connector.attempts] == list(TARGET.addresses)
    assert pinned.address is None
    assert pinned.pool_key is None


def test_no_address_is_tried_once_the_deadline_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    connector = Connector({})
    pinned = connection(monkeypatch, connector, -1.0)

    # When / Then
    with pytest.raises(TimeoutError):
        pinned.connect()
    assert connector.attempts == []


def test_the_first_address_that_connects_is_used_and_no_other_is_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    connector = Connector({})
    pinned = connection(monkeypatch, connector, 6.0)

    # When
    pinned.connect()

    # Then
    assert [address for address, _ in connector.attempts] == ["93.184.215.14"]
    assert pinned.address == "93.184.215.14"
