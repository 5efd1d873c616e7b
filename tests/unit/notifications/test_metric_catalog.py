"""Every metric Herald emits is in the catalogue (`notifications.metric_catalog`), under exactly the dimensions the
catalogue gives it, and every metric the catalogue says a function emits is emitted.

The handlers run over in-memory fakes and their EMF output is read back from stdout, as CloudWatch would read it
from the function's log, the shared Powertools buffer flushed as `@metrics.log_metrics` flushes it.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ingest import app as ingest_app
from ingest.settings import IngestSettings
from local.lambda_.context import LambdaContext
from notifications import metric_catalog
from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.clock import iso
from notifications.delivery import Deliverer, DeliveryPolicy, DeliveryResult, Outcome
from notifications.failures import delivery_classifier
from notifications.metric_catalog import (
    CATALOG,
    NOTIFICATIONS_ACCEPTED,
    SERVICE_DIMENSION,
    Emitter,
    MetricBuffer,
    Origin,
)
from notifications.models import Channel, HistoryEntry, Priority, QueueMessage, Recipient, Status
from notifications.observability import NAMESPACE, SERVICE, metrics
from notifications.receipts.transitions import ReceiptResult
from provider_events.app import Dependencies as ReceiptDependencies
from provider_events.app import handle as handle_receipts
from resilience import (
    BreakerRegistry,
    InMemoryBreakerStore,
    NullBreakerMetrics,
    PowertoolsBreakerMetrics,
    ResilienceSettings,
    RetryPolicy,
)
from resilience import observability as layer_observability
from resilience.mode import Mode
from sender.app import Sender
from sender.app import handle as handle_sender
from tests.support.clock import FakeClock
from tests.support.events import load_event, post_batch, post_notification, queue_message, sqs_batch
from tests.support.fakes import TEST_IDS, FakeEnqueuer, FakeProvider, FakeQueues, FakeStatusStore, http_error
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from notifications.models import NotificationRecord
    from notifications.providers import ProviderReceipt
    from notifications.receipts.events import ReceiptEvent
    from tests.unit.notifications.conftest import FakeHerald

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
MAX_RECEIVES = 5
EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hi"}
ALL_CHANNELS = {channel.value for channel in Channel}


# ---------------------------------------------------------------------- reading EMF back
@dataclass(frozen=True)
class Point:
    """One metric of one EMF document under one of its dimension sets."""

    name: str
    unit: str
    dimensions: dict[str, str]  # the dimension set, with the document's values
    values: tuple[float, ...]

    @property
    def dimension_set(self) -> frozenset[str]:
        return frozenset(self.dimensions)


def points_of(output: str) -> list[Point]:
    """Every metric of every EMF document printed in `output`, once per dimension set it is published under."""
    points: list[Point] = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for definition in directive["Metrics"]:
                raw = document[definition["Name"]]
                values = tuple(raw) if isinstance(raw, list) else (raw,)
                for dimension_set in directive["Dimensions"]:
                    dimensions = {name: document[name] for name in dimension_set}
                    points.append(Point(definition["Name"], definition["Unit"], dimensions, values))
    return points


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[Point]]]:
    """What the code printed as EMF so far, the function's shared buffer flushed first (as `log_metrics` does)."""
    metrics.clear_metrics()
    capsys.readouterr()

    def read() -> list[Point]:
        if metrics.metric_set:
            metrics.flush_metrics()
        return points_of(capsys.readouterr().out)

    yield read
    metrics.clear_metrics()


def totals(points: Sequence[Point], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Sum of a metric's values by dimension values (the `service` dimension left out)."""
    summed: dict[tuple[tuple[str, str], ...], float] = {}
    for point in points:
        if point.name == name:
            key = tuple(sorted((k, v) for k, v in point.dimensions.items() if k != SERVICE_DIMENSION))
            summed[key] = summed.get(key, 0.0) + sum(point.values)
    return summed


# ---------------------------------------------------------------------- the functions, over fakes
def lambda_context(name: str, timeout: float) -> LambdaContext:
    return LambdaContext.for_invocation(name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}", 512, timeout)


def acceptor(clock: FakeClock) -> NotificationAcceptor:
    policy = AcceptPolicy(
        enabled_channels=frozenset({Channel.EMAIL, Channel.WEBHOOK}),
        allow_private_webhook_targets=False,
        retention_seconds=86_400,
    )
    return NotificationAcceptor(FakeStatusStore(clock), FakeEnqueuer(), policy, clock=clock, ids=TEST_IDS)


def run_api(emf: Callable[[], list[Point]], herald: FakeHerald) -> list[Point]:
    """One notification, the same one again (a replay), and a batch of three (one of them invalid)."""
    keyed = {**EMAIL, "idempotency_key": "order-1"}
    for event in (
        post_notification(keyed),
        post_notification(keyed),
        post_batch([{**EMAIL, "priority": "high"}, WEBHOOK, {**EMAIL, "recipient": {"email": "nope"}}]),
    ):
        assert herald.api(event)["statusCode"] in {202, 207}
    return emf()


@dataclass
class RejectQueue:
    """The inbound dead-letter queue in memory."""

    rejected: list[str] = field(default_factory=list)

    def reject(self, body: str, *, reason: str, fields: Sequence[str], source_message_id: str) -> None:
        self.rejected.append(source_message_id)


def run_ingest(emf: Callable[[], list[Point]], monkeypatch: pytest.MonkeyPatch) -> list[Point]:
    """The ingest function as `build_dependencies` wires it: a keyed notification sent twice, one more, a poison
    message."""
    monkeypatch.setattr(ingest_app, "build_acceptor", lambda *_, **__: acceptor(FakeClock()))
    monkeypatch.setattr(ingest_app, "SqsRejectQueue", lambda *_, **__: RejectQueue())
    settings = IngestSettings.model_validate(
        {
            "NOTIFICATIONS_TABLE": "notifications",
            "PRIORITY_QUEUE_URL": "fake://priority",
            "STANDARD_QUEUE_URL": "fake://standard",
            "BATCH_QUEUE_URL": "fake://batch",
            "ENABLED_CHANNELS": "email,webhook",
            "IDEMPOTENCY_SECRET_NAME": "idempotency",
            "INBOUND_DEAD_LETTER_QUEUE_URL": "fake://inbound-dlq",
            "INBOUND_CLIENT_ID": "inbound-client",
        }
    )
    deps = ingest_app.build_dependencies(settings)
    template = load_event("sqs_inbound_batch.json")["Records"][0]
    bodies = {"m-1": {**EMAIL, "idempotency_key": "k"}, "m-2": {**EMAIL, "idempotency_key": "k"}, "m-3": WEBHOOK}
    records = [{**template, "messageId": key, "body": json.dumps(body)} for key, body in bodies.items()]
    records.append({**template, "messageId": "m-poison", "body": "{not json"})
    assert ingest_app.handle({"Records": records}, lambda_context("ingest", 10), deps) == {"batchItemFailures": []}
    return emf()


class SlowProvider(FakeProvider):
    """A fake provider whose every call takes `seconds` on the test's clock."""

    def __init__(self, name: str, channel: Channel, clock: FakeClock, seconds: float, **kwargs: Any) -> None:
        super().__init__(name, channel, **kwargs)
        self.clock, self.seconds = clock, seconds

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        self.clock.advance(self.seconds)
        return super().send(record, timeout=timeout)


class Visibility:
    """The sender's queues, as far as the handler uses them: backoffs asked for."""

    def __init__(self) -> None:
        self.changed: list[int] = []

    def retry_after(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.changed.append(seconds)


@dataclass
class SenderRig:
    """The sender handler over a real Deliverer with fake store, queues and providers (mode DEGRADED)."""

    clock: FakeClock = field(default_factory=FakeClock)
    store: FakeStatusStore = field(init=False)
    deliverer: Deliverer = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.store = FakeStatusStore(self.clock)
        breakers = BreakerRegistry(
            settings=ResilienceSettings(),
            store=InMemoryBreakerStore(),
            clock=self.clock,
            classifier=delivery_classifier,
            metrics=NullBreakerMetrics(),
            logger=logging.getLogger("tests.metric_catalog"),
        )
        providers = {
            Channel.EMAIL: [SlowProvider("ses", Channel.EMAIL, self.clock, 0.25)],
            Channel.WEBHOOK: [FakeProvider("webhook", Channel.WEBHOOK, always=http_error(400), per_destination=True)],
            Channel.SMS: [FakeProvider("twilio", Channel.SMS, always=http_error(503))],
        }
        self.deliverer = Deliverer(
            self.store,
            providers,
            breakers,
            FakeQueues(),
            DeliveryPolicy(
                max_receive_count=MAX_RECEIVES,
                backoff=RetryPolicy(base_seconds=5, cap_seconds=900, max_attempts=MAX_RECEIVES),
                deferral_horizon_seconds=3600.0,
            ),
            mode=lambda: Mode.DEGRADED,  # holds `low` back
            clock=self.clock,
            random=lambda: 0.5,
        )

    def add(self, **overrides: Any) -> str:
        self.count += 1
        now = iso(self.clock())
        fields: dict[str, Any] = {
            "id": f"n-{self.count}",
            "channel": Channel.EMAIL,
            "recipient": Recipient(email="ada@example.com", webhook_url="https://hooks.example.com/x"),
            "created_at": now,
            "history": [HistoryEntry(status=Status.QUEUED, at=now, detail="accepted")],
        }
        record = make_record(**(fields | overrides))
        self.store.put(record)
        return record.id

    def send(self, ids: Sequence[str], *, receive_count: int = 1, concurrency: int = 1) -> dict[str, Any]:
        sender = Sender(deliverer=self.deliverer, queues=Visibility(), concurrency=concurrency)  # type: ignore[arg-type]
        event = sqs_batch([queue_message(notification_id) for notification_id in ids], receive_count=receive_count)
        return handle_sender(event, lambda_context("sender", 60), sender)


def run_sender(emf: Callable[[], list[Point]]) -> list[Point]:
    """A batch with every outcome, then a notification on its last receive."""
    rig = SenderRig()
    old = iso(rig.clock() - 7200)  # accepted before the deferral horizon (1 h)
    leased = rig.add()
    rig.store.claim(leased, "another-invocation", 300)  # in delivery elsewhere
    rig.send(
        [
            rig.add(),  # sent by ses
            rig.add(channel=Channel.PUSH, fallback_channels=[Channel.EMAIL]),  # no push provider: email takes it
            rig.add(channel=Channel.WEBHOOK),  # refused for good (400)
            rig.add(channel=Channel.SMS),  # transient failure (503): retried
            rig.add(priority=Priority.LOW),  # DEGRADED holds `low` back: deferred
            rig.add(priority=Priority.LOW, created_at=old),  # ... past the horizon: dead-lettered
            rig.add(status=Status.SENT),  # a second copy of a finished notification
            "never-accepted",
            leased,
        ]
    )
    rig.send([rig.add(channel=Channel.SMS)], receive_count=MAX_RECEIVES)  # transient failure on the last receive
    return emf()


class ScriptedReceipts:
    """The receipt store: answers each receipt with the next scripted result."""

    def __init__(self, *results: ReceiptResult) -> None:
        self.results = list(results)
        self.applied: list[ReceiptEvent] = []

    def apply(self, event: ReceiptEvent) -> ReceiptResult:
        self.applied.append(event)
        return self.results.pop(0)


def run_receipts(emf: Callable[[], list[Point]]) -> list[Point]:
    """The sample batch's first three messages (SendGrid delivered then bounce, a Twilio failure, an SES delivery),
    the SES one again, and a malformed message."""
    sendgrid, twilio, ses = load_event("sqs_provider_events_batch.json")["Records"][:3]
    again, malformed = {**ses, "messageId": "again"}, {**ses, "messageId": "malformed", "body": "{not json"}
    event = {"Records": [sendgrid, twilio, ses, again, malformed]}
    store = ScriptedReceipts(
        ReceiptResult.APPLIED,  # sendgrid delivered
        ReceiptResult.APPLIED,  # sendgrid bounce: failed
        ReceiptResult.UNKNOWN,  # twilio undelivered
        ReceiptResult.IGNORED,  # ses delivery
        ReceiptResult.NOT_YET,  # ses delivery again
    )
    response = handle_receipts(event, lambda_context("provider_events", 10), ReceiptDependencies(store))  # type: ignore[arg-type]
    assert {failure["itemIdentifier"] for failure in response["batchItemFailures"]} == {"again", "malformed"}
    return emf()


# ---------------------------------------------------------------------- the catalogue itself
def test_the_catalogue_names_each_metric_once_with_a_meaning_and_its_emitters() -> None:
    # Then: names are CloudWatch-safe, every entry says what it means and who emits it; the dimensions are
    # the bounded ones (channel, priority, provider; the layer's breaker)
    for name, spec in CATALOG.items():
        assert name == spec.name and name.isalnum() and name[0].isupper()
        assert len(spec.meaning.split()) >= 6 and spec.emitted_by
        assert set(spec.dimensions) <= {"channel", "priority", "provider", "breaker"}
        assert ("breaker" in spec.dimensions) == (spec.origin is Origin.RESILIENCE_LAYER)
    assert {spec.name for spec in CATALOG.values() if spec.origin is Origin.HEALTH_MONITOR} == {
        "DegradationMode",
        "ProviderBreakersOpen",
        "HealthSnapshotWritten",
        "HealthProbeFailures",
        "NotificationsReconciled",
    }


def test_the_layer_s_breaker_metrics_are_catalogued_with_the_dimension_and_units_it_publishes(
    emf: Callable[[], list[Point]],
) -> None:
    # Given: every metric name the resilience layer defines
    layer_names = {
        value
        for name, value in vars(layer_observability).items()
        if name.startswith("METRIC_") and isinstance(value, str)
    }

    # When the layer's sink publishes all of them for one breaker
    PowertoolsBreakerMetrics(NAMESPACE, SERVICE).emit("provider:ses", dict.fromkeys(layer_names, 1.0))
    points = emf()

    # Then each is in the catalogue as the layer's, under exactly the dimension set it is published with
    assert layer_names == {spec.name for spec in CATALOG.values() if spec.origin is Origin.RESILIENCE_LAYER}
    for point in points:
        spec = CATALOG[point.name]
        assert point.dimension_set in spec.dimension_sets == (frozenset({"breaker", "service"}),)
        assert point.unit == spec.unit.value


# ---------------------------------------------------------------------- the buffer
def test_a_buffer_writes_one_document_per_dimension_values_with_the_service_total_and_shares_the_rest(
    emf: Callable[[], list[Point]],
) -> None:
    # Given
    buffer = MetricBuffer()

    # When: two email/normal, one sms/high, and a metric without dimensions
    buffer.add(NOTIFICATIONS_ACCEPTED, channel="email", priority="normal")
    buffer.add(NOTIFICATIONS_ACCEPTED, channel="sms", priority="high")
    buffer.add(NOTIFICATIONS_ACCEPTED, channel="email", priority="normal")
    buffer.add(metric_catalog.DUPLICATE_DROPPED)
    buffer.flush()
    shared = dict(metrics.metric_set)
    points = emf()

    # Then: per dimension values, and in the same documents the `service`-only total; the dimensionless metric
    # went to the shared buffer, written at the end of the invocation
    assert totals([p for p in points if len(p.dimensions) == 3], "NotificationsAccepted") == {
        (("channel", "email"), ("priority", "normal")): 2.0,
        (("channel", "sms"), ("priority", "high")): 1.0,
    }
    assert totals([p for p in points if len(p.dimensions) == 1], "NotificationsAccepted") == {(): 3.0}
    assert {p.dimension_set for p in points if p.name == "NotificationsAccepted"} == set(
        NOTIFICATIONS_ACCEPTED.dimension_sets
    )
    assert all(p.dimensions[SERVICE_DIMENSION] == SERVICE for p in points)
    assert list(shared) == ["DuplicateDropped"]


@pytest.mark.parametrize(
    "dimensions",
    [
        {"channel": "email"},
        {"channel": "email", "priority": "normal", "provider": "ses"},
        {"channel": "", "priority": "x"},
    ],
)
def test_a_metric_takes_exactly_its_own_dimensions(dimensions: dict[str, str]) -> None:
    # When / Then: a missing, an extra or an empty dimension is a programming error, caught at once
    with pytest.raises(ValueError, match="NotificationsAccepted"):
        MetricBuffer().add(NOTIFICATIONS_ACCEPTED, **dimensions)


def test_the_layer_s_metrics_are_not_emitted_through_a_buffer() -> None:
    with pytest.raises(ValueError, match="resilience layer"):
        MetricBuffer().add(metric_catalog.CIRCUIT_BREAKER_OPEN, breaker="provider:ses")


def test_a_buffer_keeps_every_value_added_from_many_threads(emf: Callable[[], list[Point]]) -> None:
    # Given
    buffer = MetricBuffer()

    def add_many(channel: str) -> None:
        for _ in range(250):
            buffer.add(NOTIFICATIONS_ACCEPTED, channel=channel, priority="normal")
            buffer.add(metric_catalog.UNKNOWN_DROPPED)

    # When: eight threads add at once
    threads = [threading.Thread(target=add_many, args=(["email", "sms"][i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    buffer.flush()
    points = emf()

    # Then: nothing lost (Powertools writes a document at every 100th value of a metric)
    assert totals([p for p in points if len(p.dimensions) == 3], "NotificationsAccepted") == {
        (("channel", "email"), ("priority", "normal")): 1000.0,
        (("channel", "sms"), ("priority", "normal")): 1000.0,
    }
    assert totals(points, "UnknownDropped") == {(): 2000.0}


# ---------------------------------------------------------------------- what each function emits
def test_the_api_counts_each_new_notification_by_channel_and_priority_but_no_replay(
    emf: Callable[[], list[Point]], herald: FakeHerald
) -> None:
    # When
    points = run_api(emf, herald)

    # Then: order-1 once (its replay made nothing new), and the batch's two valid notifications
    assert totals([p for p in points if len(p.dimensions) == 3], "NotificationsAccepted") == {
        (("channel", "email"), ("priority", "normal")): 1.0,
        (("channel", "email"), ("priority", "high")): 1.0,
        (("channel", "webhook"), ("priority", "normal")): 1.0,
    }


def test_ingest_counts_new_notifications_and_its_messages_outcomes(
    emf: Callable[[], list[Point]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # When
    points = run_ingest(emf, monkeypatch)

    # Then
    assert totals([p for p in points if len(p.dimensions) == 3], "NotificationsAccepted") == {
        (("channel", "email"), ("priority", "normal")): 1.0,
        (("channel", "webhook"), ("priority", "normal")): 1.0,
    }
    assert (totals(points, "IngestAccepted"), totals(points, "IngestReplayed"), totals(points, "IngestRejected")) == (
        {(): 2.0},
        {(): 1.0},
        {(): 1.0},
    )


def test_the_sender_emits_one_metric_per_outcome_with_the_channel_and_provider_it_concerns(
    emf: Callable[[], list[Point]],
) -> None:
    # When
    points = run_sender(emf)
    detailed = [p for p in points if len(p.dimensions) > 1]

    # Then: outcomes by the channel they concern (the fallback's when it delivered)
    assert totals(detailed, "NotificationsSent") == {(("channel", "email"), ("provider", "ses")): 2.0}
    assert totals(detailed, "FallbackChannelUsed") == {(("channel", "email"),): 1.0}
    assert totals(detailed, "NotificationsFailed") == {(("channel", "webhook"),): 1.0}
    assert totals(detailed, "RetryScheduled") == {(("channel", "sms"),): 1.0}
    assert totals(detailed, "NotificationsDeferred") == {(("channel", "email"),): 1.0}
    assert totals(detailed, "NotificationsDeadLettered") == {(("channel", "email"),): 1.0, (("channel", "sms"),): 1.0}
    # every provider call, and how long it took (250 ms on the test's clock for ses)
    assert totals(detailed, "DeliveryAttempts") == {
        (("channel", "email"), ("provider", "ses")): 2.0,
        (("channel", "webhook"), ("provider", "webhook")): 1.0,
        (("channel", "sms"), ("provider", "twilio")): 2.0,
    }
    ses_latency = [
        value
        for p in detailed
        if p.name == "ProviderLatency" and p.dimensions["provider"] == "ses"
        for value in p.values
    ]
    assert ses_latency == [250.0, 250.0]
    # messages that concern no claimed notification: no channel dimension at all
    assert (totals(points, "DuplicateDropped"), totals(points, "UnknownDropped"), totals(points, "ClaimRetried")) == (
        {(): 1.0},
        {(): 1.0},
        {(): 1.0},
    )
    # and no dimension value beyond channels and provider names
    assert {p.dimensions["channel"] for p in detailed if "channel" in p.dimensions} <= ALL_CHANNELS
    assert {p.dimensions["provider"] for p in detailed if "provider" in p.dimensions} <= {"ses", "webhook", "twilio"}


def test_a_concurrent_batch_loses_no_metric(emf: Callable[[], list[Point]]) -> None:
    # Given: twenty notifications delivered ten at a time on the pool's threads
    rig = SenderRig()
    ids = [rig.add() for _ in range(20)]

    # When
    rig.send(ids, concurrency=10)
    points = emf()

    # Then
    assert totals([p for p in points if len(p.dimensions) == 1], "NotificationsSent") == {(): 20.0}
    assert totals([p for p in points if len(p.dimensions) == 1], "DeliveryAttempts") == {(): 20.0}


def test_the_result_says_which_channel_and_provider_and_that_a_fallback_delivered() -> None:
    # Given: a push notification with an email fallback, and no push provider
    rig = SenderRig()
    notification_id = rig.add(channel=Channel.PUSH, fallback_channels=[Channel.EMAIL])

    # When
    result = rig.deliverer.deliver(QueueMessage(id=notification_id), owner="o", receive_count=1, lease_seconds=55)

    # Then
    assert isinstance(result, DeliveryResult)
    assert (result.outcome, result.channel, result.provider, result.fallback) == (
        Outcome.SENT,
        Channel.EMAIL,
        "ses",
        True,
    )
    assert [(call.channel, call.provider, call.latency_ms) for call in result.calls] == [(Channel.EMAIL, "ses", 250.0)]


def test_provider_events_count_receipts_and_a_reported_failure_on_its_channel(emf: Callable[[], list[Point]]) -> None:
    # When
    points = run_receipts(emf)

    # Then: the bounce failed an email; the other results are counted as before
    assert totals([p for p in points if len(p.dimensions) == 2], "NotificationsFailed") == {
        (("channel", "email"),): 1.0
    }
    assert {
        name: totals(points, name)
        for name in ("ReceiptApplied", "ReceiptIgnored", "ReceiptNotYet", "ReceiptUnknown", "ReceiptMalformed")
    } == {
        "ReceiptApplied": {(): 2.0},
        "ReceiptIgnored": {(): 1.0},
        "ReceiptNotYet": {(): 1.0},
        "ReceiptUnknown": {(): 1.0},
        "ReceiptMalformed": {(): 1.0},
    }


# ---------------------------------------------------------------------- catalogued, and emitted
def test_every_metric_the_functions_emit_is_catalogued_and_every_catalogued_one_is_emitted(
    emf: Callable[[], list[Point]], monkeypatch: pytest.MonkeyPatch, herald: FakeHerald
) -> None:
    # When: each function runs through every outcome
    emitted: dict[Emitter, list[Point]] = {
        Emitter.API: run_api(emf, herald),
        Emitter.INGEST: run_ingest(emf, monkeypatch),
        Emitter.SENDER: run_sender(emf),
        Emitter.PROVIDER_EVENTS: run_receipts(emf),
    }

    # Then: each metric is catalogued, in its unit, under exactly the catalogue's dimension sets
    for emitter, points in emitted.items():
        for point in points:
            spec = CATALOG.get(point.name)
            assert spec is not None, f"{emitter}: {point.name} is not in the catalogue"
            assert emitter in spec.emitted_by, f"{point.name} is not catalogued as emitted by {emitter}"
            assert point.unit == spec.unit.value, point.name
            assert point.dimension_set in spec.dimension_sets, (point.name, point.dimension_set)
    # and every metric catalogued as a function's is emitted by that function, under each of its dimension sets
    for spec in CATALOG.values():
        if spec.origin is not Origin.FUNCTIONS:
            continue
        for emitter in spec.emitted_by:
            published = {p.dimension_set for p in emitted[emitter] if p.name == spec.name}
            assert published == set(spec.dimension_sets), f"{emitter} never emitted {spec.name} as catalogued"


def _metric_calls(path: Path) -> list[tuple[str, ast.expr | None, ast.Call]]:
    """(function, the `name` argument, the call) of every add_metric / single_metric call in one file."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if function in {"add_metric", "single_metric"}:
            named = [keyword.value for keyword in node.keywords if keyword.arg == "name"]
            calls.append((function, named[0] if named else (node.args[0] if node.args else None), node))
    return calls


def test_no_function_emits_a_metric_outside_the_catalogue() -> None:
    # Given: every Powertools metric call in the functions' code
    calls = {path: _metric_calls(path) for path in FUNCTIONS_DIR.rglob("*.py")}

    # Then: only the catalogue's buffer passes names it does not spell out (a MetricSpec's); anywhere else the
    # name is a literal of the catalogue
    for path, found in calls.items():
        for function, name, _ in found:
            if path.name == "metric_catalog.py" and path.parent.name == "notifications":
                continue
            assert isinstance(name, ast.Constant), f"{path}: {function} with a name the catalogue cannot check"
            assert name.value in CATALOG, f"{path}: {name.value} is not in the catalogue"
    assert not any(
        "add_dimension" in path.read_text(encoding="utf-8") or "single_metric(" in path.read_text(encoding="utf-8")
        for path in calls
        if path.name != "metric_catalog.py"
    ), "dimensions are given through MetricBuffer.add, checked against the catalogue"


def test_the_health_monitor_emits_its_catalogued_metrics_without_dimensions() -> None:
    # Given: the health monitor's code (written beside this catalogue)
    monitor = FUNCTIONS_DIR / "health_monitor"
    calls = [call for path in monitor.rglob("*.py") for call in _metric_calls(path)]

    # Then: every monitor metric of the catalogue, in its unit, on the shared buffer (the `service` dimension
    # alone, which the alarms name)
    catalogued = {spec.name: spec for spec in CATALOG.values() if spec.origin is Origin.HEALTH_MONITOR}
    names = {}
    for _, name, call in calls:
        assert isinstance(name, ast.Constant), "the monitor's metric names are literals the catalogue checks"
        [unit] = [keyword.value for keyword in call.keywords if keyword.arg == "unit"]
        names[name.value] = unit.attr if isinstance(unit, ast.Attribute) else None
    assert names == {name: spec.unit.name for name, spec in catalogued.items()}
    assert all(spec.dimension_sets == (frozenset({SERVICE_DIMENSION}),) for spec in catalogued.values())
