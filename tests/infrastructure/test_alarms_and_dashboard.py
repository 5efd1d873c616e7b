"""Assertions on template.yaml's alarms, alarm topic and dashboard: each watches something that exists.

An alarm on one of Herald's metrics sees data only if it names the metric exactly as the functions publish it:
the name, and the whole dimension set. The dimension sets here are read back from the EMF documents the
emitting code itself prints (`notifications.metric_catalog.MetricBuffer`, the shared Powertools buffer the
health monitor writes to, the resilience layer's breaker sink), not from the catalogue's say-so.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from functools import cache
from typing import TYPE_CHECKING, Any

import pytest

from local.aws.template import Stack
from notifications.metric_catalog import CATALOG, MetricBuffer, Origin
from notifications.observability import NAMESPACE, SERVICE, metrics
from resilience import PowertoolsBreakerMetrics
from tests.infrastructure.test_template import sam

if TYPE_CHECKING:
    from collections.abc import Iterator

FUNCTIONS = [
    "ApiFunction",
    "SenderFunction",
    "IngestFunction",
    "ProviderEventsFunction",
    "AdminFunction",
    "HealthMonitorFunction",
]
WORK_QUEUES = ["PriorityQueue", "StandardQueue", "BatchQueue", "RetryQueue", "InboundQueue", "ProviderEventsQueue"]
DEAD_LETTER_QUEUES = ["DeadLetterQueue", "InboundDeadLetterQueue", "ProviderEventsDeadLetterQueue"]
PSEUDO_PARAMETERS = {"AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::Partition", "AWS::URLSuffix"}
# What each AWS namespace's dimension must name, and the type of resource it must be.
AWS_DIMENSIONS = {
    ("AWS/Lambda", "FunctionName"): "AWS::Serverless::Function",
    ("AWS/SQS", "QueueName"): "AWS::SQS::Queue",
    ("AWS/DynamoDB", "TableName"): "AWS::DynamoDB::Table",
}


# ---------------------------------------------------------------------- what the code publishes
@cache
def published_dimension_sets() -> dict[str, frozenset[frozenset[str]]]:
    """Metric name -> every dimension set the emitting code's EMF documents publish it under."""
    printed = io.StringIO()
    metrics.clear_metrics()
    with contextlib.redirect_stdout(printed):
        buffer = MetricBuffer()
        for spec in CATALOG.values():
            if spec.origin is Origin.FUNCTIONS:  # as the handlers emit: through a buffer, with every dimension
                buffer.add(spec, 1.0, **dict.fromkeys(spec.dimensions, "value"))
            elif spec.origin is Origin.HEALTH_MONITOR:  # as the monitor emits: the shared buffer, no dimension
                metrics.add_metric(name=spec.name, unit=spec.unit, value=1)
        buffer.flush()
        metrics.flush_metrics()
        layer = {spec.name: 1.0 for spec in CATALOG.values() if spec.origin is Origin.RESILIENCE_LAYER}
        PowertoolsBreakerMetrics(NAMESPACE, SERVICE).emit("provider:ses", layer)
    published: dict[str, set[frozenset[str]]] = {}
    for line in printed.getvalue().splitlines():
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for definition in directive["Metrics"]:
                published.setdefault(definition["Name"], set()).update(frozenset(d) for d in directive["Dimensions"])
    assert set(published) == set(CATALOG)
    return {name: frozenset(sets) for name, sets in published.items()}


# ---------------------------------------------------------------------- reading the template
def resources_of(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in sam()["Resources"].items() if r["Type"] == resource_type}


def alarms() -> dict[str, dict[str, Any]]:
    return {name: resource["Properties"] for name, resource in resources_of("AWS::CloudWatch::Alarm").items()}


def watched(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric an alarm reads: its own, or each MetricStat of its metric math."""
    if "MetricName" in alarm:
        return [{"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"], "Dimensions": alarm["Dimensions"]}]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def resource_named(value: Any) -> str:
    """The logical id a dimension value names: `!Ref X`, `!GetAtt X.QueueName`, or `${X}` in the dashboard."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        assert attribute == "QueueName", value
        return str(resource)
    match = re.fullmatch(r"<(?:ref|queue):(\w+)>", str(value))
    assert match, f"{value!r} names no resource of the template"
    return match.group(1)


def assert_metric_exists(namespace: str, name: str, dimensions: dict[str, Any], where: str) -> None:
    """A Herald metric named as the code publishes it; an AWS metric of a resource of the right type."""
    if namespace == NAMESPACE:
        assert name in CATALOG, f"{where}: {name} is not in the metric catalogue"
        assert frozenset(dimensions) in published_dimension_sets()[name], (
            f"{where}: {name} is never published with the dimensions {sorted(dimensions)}"
        )
        assert dimensions.get("service") == SERVICE, where
        return
    assert namespace in {"AWS/Lambda", "AWS/SQS", "AWS/DynamoDB"}, f"{where}: unexpected namespace {namespace}"
    for dimension, value in dimensions.items():
        expected_type = AWS_DIMENSIONS[(namespace, dimension)]
        logical_id = resource_named(value)
        assert sam()["Resources"][logical_id]["Type"] == expected_type, f"{where}: {logical_id} is no {expected_type}"


# ---------------------------------------------------------------------- the topic
def test_the_metrics_alarms_read_are_in_the_namespace_and_service_the_functions_publish_under() -> None:
    # Given
    environment = sam()["Globals"]["Function"]["Environment"]["Variables"]

    # Then: the catalogue's namespace and service are the ones every function is given
    assert (environment["POWERTOOLS_METRICS_NAMESPACE"], environment["POWERTOOLS_SERVICE_NAME"]) == (NAMESPACE, SERVICE)


def test_every_alarm_notifies_the_alarm_topic_into_alarm_and_back_to_ok() -> None:
    # When
    found = alarms()

    # Then: each is named after the stack (the topic policy admits exactly those) and notifies both ways
    assert len(found) >= 2 * len(FUNCTIONS) + len(WORK_QUEUES) + len(DEAD_LETTER_QUEUES) + 6
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name
        assert len(alarm["AlarmDescription"].split()) >= 10, f"{name}: say what it means"
    [statement] = sam()["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"].endswith(":alarm:${AWS::StackName}-*")
    assert {"AlarmTopicArn", "DashboardName"} <= set(sam()["Outputs"])


@pytest.mark.parametrize(("email", "subscribed"), [("", False), ("ops@example.com", True)])
def test_the_email_subscription_exists_only_when_an_address_is_given(email: str, subscribed: bool) -> None:
    # When
    stack = Stack.from_file(overrides={"AlarmEmail": email})

    # Then
    subscriptions = stack.of_type("AWS::SNS::Subscription")
    assert ("AlarmEmailSubscription" in subscriptions) is subscribed
    if subscribed:
        subscription = subscriptions["AlarmEmailSubscription"]
        assert (subscription["Protocol"], stack.resolve(subscription["Endpoint"])) == ("email", email)
        assert subscription["TopicArn"] == {"Ref": "AlarmTopic"}


def test_the_alarm_email_parameter_takes_an_address_or_nothing() -> None:
    # Given
    pattern = re.compile(sam()["Parameters"]["AlarmEmail"]["AllowedPattern"])

    # Then
    assert sam()["Parameters"]["AlarmEmail"]["Default"] == ""
    assert all(pattern.fullmatch(value) for value in ("", "ops@example.com", "on-call+herald@team.example.org"))
    assert not any(pattern.fullmatch(value) for value in ("ops", "ops@", "a b@example.com"))


# ---------------------------------------------------------------------- the alarms
def test_every_alarm_watches_a_resource_of_the_template_or_a_metric_as_the_code_publishes_it() -> None:
    for name, alarm in alarms().items():
        for metric in watched(alarm):
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert_metric_exists(metric["Namespace"], metric["MetricName"], dimensions, name)
        if "Metrics" in alarm:  # metric math: one expression answers, from the queries it names
            ids = {query["Id"] for query in alarm["Metrics"]}
            [answer] = [query for query in alarm["Metrics"] if query.get("ReturnData")]
            expression = answer["Expression"]
            text = expression["Fn::Sub"] if isinstance(expression, dict) else expression
            # its lowercase words are query ids (functions are upper case: IF, FILL, PERIOD)
            named = set(re.findall(r"\b[a-z][a-zA-Z0-9_]*\b", re.sub(r"\$\{[^}]+\}", "", text)))
            assert named and named <= ids, (name, named)
            assert all(not query.get("ReturnData") for query in alarm["Metrics"] if "MetricStat" in query), name


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(function: str, metric: str) -> None:
    # Given: the template's functions are exactly these
    assert set(resources_of("AWS::Serverless::Function")) == set(FUNCTIONS)

    # When
    matching = [
        alarm
        for alarm in alarms().values()
        if alarm.get("MetricName") == metric
        and alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    ]

    # Then: any one in 5 minutes alarms
    [alarm] = matching
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "AWS/Lambda",
        "Sum",
        0,
        "GreaterThanThreshold",
    )


@pytest.mark.parametrize("queue", DEAD_LETTER_QUEUES)
def test_every_dead_letter_queue_alarms_when_it_holds_a_message(queue: str) -> None:
    [alarm] = [
        a
        for a in alarms().values()
        if a.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    ]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )


@pytest.mark.parametrize("queue", WORK_QUEUES)
def test_every_work_queue_alarms_when_its_oldest_message_is_older_than_the_parameter(queue: str) -> None:
    # When
    [alarm] = [
        alarm
        for alarm in alarms().values()
        if any(
            m["MetricName"] == "ApproximateAgeOfOldestMessage"
            and m["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
            for m in watched(alarm)
        )
    ]

    # Then: above QueueAgeAlarmSeconds (600 s); on the retry queue, beyond the 900 s a deferral waits there
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        {"Ref": "QueueAgeAlarmSeconds"},
        "GreaterThanThreshold",
    )
    assert sam()["Parameters"]["QueueAgeAlarmSeconds"]["Default"] == 600
    if queue == "RetryQueue":
        [answer] = [query for query in alarm["Metrics"] if query.get("ReturnData")]
        assert answer["Expression"] == "age - 900"


def test_a_provider_breaker_open_for_five_minutes_alarms() -> None:
    alarm = alarms()["ProviderBreakerOpenAlarm"]
    assert (alarm["MetricName"], alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (
        "ProviderBreakersOpen",
        60,
        5,
        5,
    )
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_ten_minutes_degraded_or_worse_alarms() -> None:
    alarm = alarms()["DegradedModeAlarm"]
    assert (alarm["MetricName"], alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (
        "DegradationMode",
        60,
        10,
        10,
    )
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (2, "GreaterThanOrEqualToThreshold")


def test_a_silent_health_monitor_alarms_whether_it_fails_or_never_runs() -> None:
    # Then: no snapshot in 3 minutes alarms, no data at all included; and so does any error of the function
    missing = alarms()["HealthSnapshotMissingAlarm"]
    assert (missing["MetricName"], missing["Statistic"], missing["Period"], missing["EvaluationPeriods"]) == (
        "HealthSnapshotWritten",
        "Sum",
        180,
        1,
    )
    assert (missing["Threshold"], missing["ComparisonOperator"], missing["TreatMissingData"]) == (
        1,
        "LessThanThreshold",
        "breaching",
    )
    errors = alarms()["HealthMonitorFunctionErrorsAlarm"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "HealthMonitorFunction"}}]


def test_a_high_retry_rate_alarms_but_no_traffic_does_not() -> None:
    # Given
    alarm = alarms()["RetryRateAlarm"]
    queries = {query["Id"]: query for query in alarm["Metrics"]}

    # Then: retries over provider calls in 5 minutes, above 20 %, only with 10 calls or more; no data is OK
    assert {queries[i]["MetricStat"]["Metric"]["MetricName"] for i in ("retries", "attempts")} == {
        "RetryScheduled",
        "DeliveryAttempts",
    }
    assert {queries[i]["MetricStat"]["Period"] for i in ("retries", "attempts")} == {300}
    assert queries["rate"]["Expression"] == "IF(FILL(attempts, 0) >= 10, 100 * FILL(retries, 0) / attempts, 0)"
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
        20,
        "GreaterThanThreshold",
        "notBreaching",
    )


def test_capacity_alarms_fire_at_eighty_percent_of_the_limits() -> None:
    # Then: the sender's four event sources start at most 4 x ConsumerMaxConcurrency; the table takes
    # DynamoDbThroughputLimit units a second (consumed units are summed per period)
    sender = {query["Id"]: query for query in alarms()["SenderConcurrencyAlarm"]["Metrics"]}
    assert sender["used"]["Expression"] == {"Fn::Sub": "100 * concurrency / (4 * ${ConsumerMaxConcurrency})"}
    assert sender["concurrency"]["MetricStat"]["Metric"]["MetricName"] == "ConcurrentExecutions"
    sources = [e for e in sam()["Resources"]["SenderFunction"]["Properties"]["Events"].values() if e["Type"] == "SQS"]
    assert len(sources) == 4
    for kind in ("Write", "Read"):
        alarm = alarms()[f"NotificationsTable{kind}ThroughputAlarm"]
        queries = {query["Id"]: query for query in alarm["Metrics"]}
        assert queries["units"]["MetricStat"]["Metric"]["MetricName"] == f"Consumed{kind}CapacityUnits"
        assert queries["used"]["Expression"] == {
            "Fn::Sub": "100 * (units / PERIOD(units)) / ${DynamoDbThroughputLimit}"
        }
    assert sam()["Parameters"]["DynamoDbThroughputLimit"]["Default"] == 40000
    for name in (
        "SenderConcurrencyAlarm",
        "NotificationsTableWriteThroughputAlarm",
        "NotificationsTableReadThroughputAlarm",
    ):
        assert (alarms()[name]["Threshold"], alarms()[name]["ComparisonOperator"]) == (80, "GreaterThanThreshold")


# ---------------------------------------------------------------------- the dashboard
@cache
def dashboard() -> dict[str, Any]:
    """The dashboard's body, each `${...}` checked to name a parameter or resource, then replaced by a marker."""
    [resource] = resources_of("AWS::CloudWatch::Dashboard").values()
    text = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str), "one Fn::Sub of a JSON string"

    def marker(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PSEUDO_PARAMETERS:
            return "us-east-1"
        if name in sam()["Parameters"]:
            return str(sam()["Parameters"][name]["Default"])  # numbers stand unquoted in the JSON
        logical_id, _, attribute = name.partition(".")
        assert logical_id in sam()["Resources"], f"the dashboard names {logical_id}, which is no resource"
        assert attribute in {"", "QueueName"}, name
        return f"<{'queue' if attribute else 'ref'}:{logical_id}>"

    body: dict[str, Any] = json.loads(re.sub(r"\$\{([^}!]+)\}", marker, text))
    return body


def dashboard_metrics() -> Iterator[tuple[str, list[Any]]]:
    """(widget title, one entry of its metrics) for every metric widget."""
    for widget in dashboard()["widgets"]:
        if widget["type"] == "metric":
            for entry in widget["properties"]["metrics"]:
                yield widget["properties"]["title"], entry


def test_every_dashboard_graph_reads_a_resource_of_the_template_or_a_metric_as_the_code_publishes_it() -> None:
    for title, entry in dashboard_metrics():
        if isinstance(entry[0], dict):  # an expression
            expression = entry[0]["expression"]
            for schema, name in re.findall(r"SEARCH\('\{([^}]+)\} MetricName=\"(\w+)\"", expression):
                namespace, *dimensions = schema.split(",")
                assert namespace == NAMESPACE and name in CATALOG, (title, name)
                assert frozenset(dimensions) in published_dimension_sets()[name], (title, name, dimensions)
            continue
        namespace, name, *rest = entry
        pairs = [item for item in rest if not isinstance(item, dict)]
        assert_metric_exists(namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), title)


def test_the_dashboard_shows_notifications_providers_breakers_the_mode_queues_and_every_function() -> None:
    # Given: what every graph reads, as (namespace, metric, the resource or SEARCH it names)
    shown: set[tuple[str, str, str]] = set()
    for _, entry in dashboard_metrics():
        if isinstance(entry[0], dict):
            for name in re.findall(r"MetricName=\"(\w+)\"", entry[0]["expression"]):
                shown.add((NAMESPACE, name, "SEARCH"))
            continue
        namespace, name, *rest = entry
        pairs = [item for item in rest if not isinstance(item, dict)]
        shown.add((namespace, name, resource_named(pairs[1]) if namespace != NAMESPACE else ""))

    # Then
    herald = {name for namespace, name, _ in shown if namespace == NAMESPACE}
    assert {"NotificationsAccepted", "NotificationsSent", "NotificationsFailed", "ProviderLatency"} <= herald
    assert {"ProviderBreakersOpen", "CircuitBreakerOpen", "CircuitBreakerState", "DegradationMode"} <= herald
    assert (NAMESPACE, "CircuitBreakerOpen", "SEARCH") in shown
    for queue in WORK_QUEUES:
        assert {
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue),
            ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue),
        } <= shown
    for queue in DEAD_LETTER_QUEUES:
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) in shown
    for function in FUNCTIONS:
        assert {("AWS/Lambda", "Errors", function), ("AWS/Lambda", "Duration", function)} <= shown
    assert all(widget["properties"].get("region", "us-east-1") == "us-east-1" for widget in dashboard()["widgets"])
