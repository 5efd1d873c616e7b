"""The API handler over in-memory fakes: the accepting side tested with no AWS and no network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from api.app import Dependencies, handle
from api.settings import ApiSettings
from local.lambda_.context import LambdaContext
from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.health import HealthViews
from tests.support.clock import FakeClock
from tests.support.fakes import TEST_IDS, FakeEnqueuer, FakeProbes, FakeSnapshots, FakeStatusStore

if TYPE_CHECKING:
    from collections.abc import Callable

QUEUES = {"PriorityQueue": "priority", "StandardQueue": "standard", "BatchQueue": "batch"}
ADMIN_KEY_ID = "admin-key-id"  # the admin key's id (ADMIN_CLIENT_ID) in these settings
READY_CHECKS = ("dynamodb:notifications", "sqs:priority", "sqs:standard", "sqs:batch")
QUEUE_CHECKS = ("sqs:priority", "sqs:standard", "sqs:batch", "sqs:retry", "sqs:dead_letter")


@dataclass
class FakeHealth:
    """What the health views see: the monitor's snapshot, and the live checks (each answering as told)."""

    clock: FakeClock
    snapshots: FakeSnapshots
    ready: FakeProbes
    db: FakeProbes
    queues: FakeProbes


@dataclass
class FakeHerald:
    """The API handler wired to fakes, as `tests.integration.notifications.conftest.Herald` is to moto."""

    store: FakeStatusStore
    enqueuer: FakeEnqueuer
    health: FakeHealth
    api: Callable[[dict[str, Any]], dict[str, Any]]
    api_as_deployed: Callable[[dict[str, Any]], dict[str, Any]]  # private webhook targets refused, as in AWS

    def receive_all(self, logical_id: str) -> list[str]:
        """Ids sent to a queue (by its template logical id)."""
        return self.enqueuer.on(QUEUES[logical_id])


def settings(*, allow_private: bool) -> ApiSettings:
    return ApiSettings.model_validate(
        {
            "NOTIFICATIONS_TABLE": "notifications",
            "PRIORITY_QUEUE_URL": "fake://priority",
            "STANDARD_QUEUE_URL": "fake://standard",
            "BATCH_QUEUE_URL": "fake://batch",
            "RETRY_QUEUE_URL": "fake://retry",
            "DEAD_LETTER_QUEUE_URL": "fake://dead_letter",
            "ENABLED_CHANNELS": "email,webhook",
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": str(allow_private).lower(),
            "IDEMPOTENCY_SECRET_NAME": "idempotency",
            "RESILIENCE_TABLE": "resilience",
            "ADMIN_CLIENT_ID": ADMIN_KEY_ID,
        }
    )


@pytest.fixture
def herald() -> FakeHerald:
    clock = FakeClock()
    store, enqueuer = FakeStatusStore(clock), FakeEnqueuer()
    health = FakeHealth(
        clock,
        FakeSnapshots(),
        ready=FakeProbes(READY_CHECKS, clock),
        db=FakeProbes(("dynamodb:notifications",), clock),
        queues=FakeProbes(QUEUE_CHECKS, clock),
    )

    def dependencies(allow_private: bool) -> Dependencies:
        chosen = settings(allow_private=allow_private)
        policy = AcceptPolicy(
            enabled_channels=chosen.enabled_channels,
            allow_private_webhook_targets=chosen.webhook_allow_private_targets,
            retention_seconds=chosen.retention_days * 86_400,
        )
        acceptor = NotificationAcceptor(store, enqueuer, policy, clock=clock, ids=TEST_IDS)
        views = HealthViews(
            health.snapshots,
            ready_probes=health.ready,
            db_probes=health.db,
            queue_probes=health.queues,
            config=chosen.health,
            clock=clock,
        )
        return Dependencies(chosen, acceptor, store, views)  # type: ignore[arg-type]

    local, deployed = dependencies(allow_private=True), dependencies(allow_private=False)

    def context() -> LambdaContext:  # a fresh invocation each call, with ApiFunction's Timeout (25 s)
        return LambdaContext.for_invocation("api", "arn:aws:lambda:us-east-1:123456789012:function:api", 512, 25)

    return FakeHerald(
        store=store,
        enqueuer=enqueuer,
        health=health,
        api=lambda event: handle(event, context(), local),  # type: ignore[arg-type]
        api_as_deployed=lambda event: handle(event, context(), deployed),  # type: ignore[arg-type]
    )
