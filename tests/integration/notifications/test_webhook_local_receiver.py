"""The README's example receiver (`python -m local.receiver`): it keeps connections alive, and its status can
be switched while it runs, so a person can watch an endpoint fail and recover."""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING

import pytest

from local.receiver import WebhookReceiver, example_receiver
from notifications.errors import DeliveryError
from notifications.models import NotificationRecord, Recipient
from notifications.providers.webhook import WebhookProvider
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


@pytest.fixture
def server() -> Iterator[WebhookReceiver]:
    """The example receiver as `python -m local.receiver` runs it, on a port the system picks."""
    with example_receiver(SECRET, 200) as running:
        yield running


def control(server: WebhookReceiver, method: str, body: str | None = None) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, "/_status", body=body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def record(server: WebhookReceiver) -> NotificationRecord:
    return make_record(recipient=Recipient(webhook_url=f"http://127.0.0.1:{server.port}/hook"))


def test_the_answered_status_switches_at_run_time_over_one_kept_alive_connection(
    server: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    provider = WebhookProvider(SECRET, allow_private_targets=True)
    provider.send(record(server), timeout=5.0)

    # When: the person makes the endpoint fail, then recover
    failing = control(server, "PUT", "503")
    with pytest.raises(DeliveryError) as failure:
        provider.send(record(server), timeout=5.0)
    recovered = control(server, "PUT", "200\n")
    provider.send(record(server), timeout=5.0)
    provider.close()

    # Then: three deliveries on one connection (the two control calls opened their own)
    assert server.connections == 1 + 2
    assert failing == (200, {"status": 503})
    assert failure.value.status_code == 503
    assert recovered == (200, {"status": 200})
    assert control(server, "GET") == (200, {"status": 200})
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"webhook_id"')]
    assert [line["answer"] for line in printed] == [200, 503, 200]
    assert all(line["signature_valid"] for line in printed)


@pytest.mark.parametrize("body", ["busy", "42", "700", ""])
def test_a_status_that_is_not_one_is_refused_and_the_old_one_kept(server: WebhookReceiver, body: str) -> None:
    # When
    status, answer = control(server, "PUT", body)

    # Then
    assert status == 400
    assert "error" in answer
    assert control(server, "GET") == (200, {"status": 200})
