"""Assertions on template.yaml: what a deployment must guarantee, checked before anything deploys.

cfn-lint itself runs once per `make test`, in `make lint` (and `make infrastructure` runs it too).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from local.aws.template import Stack, load_sam_template

SENDER_CONSUMED = ["PriorityQueue", "StandardQueue", "BatchQueue", "RetryQueue"]
ALL_QUEUES = [*SENDER_CONSUMED, "ProviderEventsQueue", "InboundQueue"]
# Health is public; provider callbacks cannot carry an API key: their signature authenticates them.
KEYLESS_ROUTES = {"/health", "/health/live", "/health/ready", "/openapi.json", "/provider-events/{provider}"}
# Every policy statement whose resource holds a wildcard, and why it cannot name its resources exactly.
WILDCARD_STATEMENTS = {
    "SmsAndPush": "SNS Publish to a phone number has no resource ARN; push endpoints are created at run time",
    "ProviderSecrets": "provider secrets are named by the operator at deploy time; only names under herald/",
    "PushEndpoints": "the platform application is a parameter that may be empty; only this account's apps",
    "DisabledPushEndpoints": "endpoints are created per device token at run time; only this account's",
    "Email": "the sending identity may be the address or its domain; the ses:FromAddress condition pins it",
    "WebhookSigningKeys": "clients are created at run time, each key at herald-clients/<client id>/; only those",
    "ClientSigningKeys": "clients are created at run time, each key at herald-clients/<client id>/; only those",
    "ClientKeys": "API keys get ids at run time; IAM names them by path (/apikeys/<id>), only key paths here",
    "QueueAges": "GetMetricData takes no resource ARN (CloudWatch authorises it on *)",
}
RESOURCELESS_ACTIONS = {"sns:Publish", "cloudwatch:GetMetricData"}


@cache
def sam() -> dict[str, Any]:
    return load_sam_template()


# Every function of the template (a new one is checked without being listed here).
FUNCTIONS = sorted(
    logical_id for logical_id, resource in sam()["Resources"].items() if resource["Type"] == "AWS::Serverless::Function"
)


@cache
def cfn() -> Stack:
    return Stack.from_file()


def props(logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = sam()["Resources"][logical_id]["Properties"]
    return properties


def test_sam_translation_succeeds_and_yields_the_event_sources() -> None:
    # When
    mappings = cfn().of_type("AWS::Lambda::EventSourceMapping")

    # Then: the sender consumes its four queues, the receipts function the provider-events queue, ingest the
    # inbound queue
    assert len(mappings) == len(ALL_QUEUES)
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings.values())
    consumers = {m["EventSourceArn"]["Fn::GetAtt"][0]: m["FunctionName"]["Ref"] for m in mappings.values()}
    assert consumers == {
        **dict.fromkeys(SENDER_CONSUMED, "SenderFunction"),
        "ProviderEventsQueue": "ProviderEventsFunction",
        "InboundQueue": "IngestFunction",
    }


def test_receipts_have_their_own_dead_letter_queue() -> None:
    # A receipt that can never apply must not land among notifications an operator redrives.
    assert props("ProviderEventsQueue")["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ProviderEventsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert props("ProviderEventsDeadLetterQueue")["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_inbound_queue_has_its_own_dead_letter_queue_and_outlasts_the_ingest_timeout() -> None:
    # A producer's message that can never be accepted must not land among notifications an operator redrives.
    assert props("InboundQueue")["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["InboundDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert props("InboundQueue")["VisibilityTimeout"] >= 6 * props("IngestFunction")["Timeout"]
    assert props("InboundDeadLetterQueue")["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_only_the_configured_producers_may_send_to_the_inbound_queue() -> None:
    # Given
    policy = sam()["Resources"]["InboundQueuePolicy"]

    # Then: the policy exists only when principals are given, and lets exactly them send
    assert policy["Condition"] == "HasInboundProducers"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "InboundProducerPrincipals"}}
    assert statement["Action"] == "sqs:SendMessage"
    outputs = set(sam()["Outputs"])
    assert {"InboundQueueUrl", "InboundQueueArn", "InboundDeadLetterQueueUrl"} <= outputs


def test_ses_events_reach_the_provider_events_queue_through_the_configuration_set() -> None:
    # Given
    destination = props("EmailEventsDestination")
    subscription = props("SesEventsSubscription")
    sender_environment = props("SenderFunction")["Environment"]["Variables"]

    # Then: the sender names the configuration set, whose events go to the topic the queue subscribes to
    assert sender_environment["SES_CONFIGURATION_SET"] == {"Ref": "EmailConfigurationSet"}
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert destination["EventDestination"]["SnsDestination"]["TopicARN"] == {"Ref": "SesEventsTopic"}
    assert {"delivery", "bounce", "complaint"} <= set(destination["EventDestination"]["MatchingEventTypes"])
    assert (subscription["Protocol"], subscription["Endpoint"]) == (
        "sqs",
        {"Fn::GetAtt": ["ProviderEventsQueue", "Arn"]},
    )
    [statement] = props("ProviderEventsQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "SesEventsTopic"}}}


@pytest.mark.parametrize("queue", SENDER_CONSUMED)
def test_every_queue_redrives_to_the_one_dlq_after_max_receive_count(queue: str) -> None:
    # When
    redrive = props(queue)["RedrivePolicy"]

    # Then
    assert redrive == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert sam()["Parameters"]["MaxReceiveCount"]["Default"] == 5


@pytest.mark.parametrize("queue", SENDER_CONSUMED)
def test_visibility_timeout_is_at_least_six_times_the_sender_timeout(queue: str) -> None:
    # Given
    sender_timeout = props("SenderFunction")["Timeout"]

    # When / Then
    assert props(queue)["VisibilityTimeout"] >= 6 * sender_timeout


@pytest.mark.parametrize(
    "queue", [*ALL_QUEUES, "DeadLetterQueue", "ProviderEventsDeadLetterQueue", "InboundDeadLetterQueue"]
)
def test_queues_are_encrypted(queue: str) -> None:
    assert props(queue)["SqsManagedSseEnabled"] is True


def test_dlq_keeps_messages_for_fourteen_days() -> None:
    assert props("DeadLetterQueue")["MessageRetentionPeriod"] == 14 * 24 * 3600


@pytest.mark.parametrize("table", ["NotificationsTable", "ResilienceTable"])
def test_tables_are_on_demand_encrypted_and_expire_records(table: str) -> None:
    # When
    table_props = props(table)

    # Then
    assert table_props["BillingMode"] == "PAY_PER_REQUEST"
    assert table_props["SSESpecification"] == {"SSEEnabled": True}
    assert table_props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_every_route_needs_an_api_key_except_health() -> None:
    # Given
    [api] = cfn().of_type("AWS::ApiGateway::RestApi").values()

    # When
    keyless = {
        path
        for path, methods in api["Body"]["paths"].items()
        for method in methods.values()
        if {"api_key": []} not in method.get("security", [])
    }

    # Then
    assert keyless == KEYLESS_ROUTES
    assert cfn().of_type("AWS::ApiGateway::UsagePlan"), "a usage plan throttles each key"


def test_gateway_errors_use_herald_json_error_shape() -> None:
    # Given
    responses = props("HeraldApi")["GatewayResponses"]

    # Then
    assert {"API_KEY", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "REQUEST_TOO_LARGE"} <= set(responses)
    assert all('"error"' in r["ResponseTemplates"]["application/json"] for r in responses.values())


def test_functions_run_python_3_13_with_the_resilience_layer() -> None:
    # Given
    globals_ = sam()["Globals"]["Function"]

    # Then
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Layers"] == [{"Ref": "ResilienceLayer"}]
    assert props("ApiFunction")["Handler"] == "api.app.lambda_handler"
    assert props("SenderFunction")["Handler"] == "sender.app.lambda_handler"
    assert props("ProviderEventsFunction")["Handler"] == "provider_events.app.lambda_handler"
    assert props("IngestFunction")["Handler"] == "ingest.app.lambda_handler"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_policies_are_least_privilege(function: str) -> None:
    # When
    statements = [s for policy in props(function)["Policies"] for s in policy["Statement"]]

    # Then: no wildcard actions; Resource "*" only for actions that have no resource; any other wildcard
    # only in a statement allow-listed with its reason
    for statement in statements:
        assert all("*" not in action for action in statement["Action"])
        if statement["Resource"] == "*":
            assert set(statement["Action"]) <= RESOURCELESS_ACTIONS
        if "*" in json.dumps(statement["Resource"]):
            assert statement.get("Sid") in WILDCARD_STATEMENTS, f"{function}: a wildcard no reason allows"


def test_outputs_name_the_api_url_queues_and_tables() -> None:
    outputs = set(sam()["Outputs"])
    assert {"ApiUrl", "ApiKeyId", "NotificationsTableName", "DeadLetterQueueUrl", "StandardQueueUrl"} <= outputs


def test_the_api_function_outlasts_the_aws_calls_of_one_accept_at_their_worst() -> None:
    # Given: the API's AWS clients (connect and read timeouts, one retry) and the calls one accept makes
    from notifications import aws

    # Then: its timeout holds them all, and stays under API Gateway's 29 s integration timeout
    timeout = props("ApiFunction")["Timeout"]
    assert aws.API_CALLS_PER_ACCEPT * aws.API_SLOWEST_CALL_SECONDS < timeout <= 29


def test_email_may_be_sent_only_from_the_sender_address() -> None:
    # Given
    statements = [s for policy in props("SenderFunction")["Policies"] for s in policy["Statement"]]

    # When
    [email] = [statement for statement in statements if "ses:SendEmail" in statement["Action"]]

    # Then
    assert email["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}
    assert all("identity/" in str(resource) or "configuration-set/" in str(resource) for resource in email["Resource"])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_keeps_its_logs_for_the_configured_days(function: str) -> None:
    # When
    group = props(f"{function}LogGroup")

    # Then
    assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert sam()["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_the_webhook_signing_secret_is_generated_at_deploy_and_never_in_an_environment_variable() -> None:
    # Given
    secret = props("WebhookSigningSecret")["GenerateSecretString"]
    sender_environment = props("SenderFunction")["Environment"]["Variables"]
    every_environment = [sam()["Globals"]["Function"]["Environment"]["Variables"]] + [
        resource["Properties"].get("Environment", {}).get("Variables", {})
        for resource in sam()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    ]

    # Then: no parameter carries a usable default secret; the key is random, 48 base64 characters (36
    # bytes, over the 24 required), at the default client's place under herald-clients/, where the sender
    # finds every client's key by the notification's client id; no environment holds a secret
    assert not any(
        "secret" in name.lower() and "Default" in spec and spec["Default"]
        for name, spec in (
            (name, spec) for name, spec in sam()["Parameters"].items() if not name.endswith("SecretName")
        )
    )
    assert (secret["GenerateStringKey"], secret["PasswordLength"], secret["ExcludePunctuation"]) == ("key", 48, True)
    assert props("WebhookSigningSecret")["Name"] == {"Fn::Sub": "herald-clients/${HeraldApiApiKey}/webhook-signing"}
    assert sender_environment["DEFAULT_CLIENT_ID"] == {"Ref": "HeraldApiApiKey"}
    assert not any("WEBHOOK_SIGNING_SECRET" in variables for variables in every_environment)


def test_the_idempotency_key_is_generated_at_deploy_and_only_its_name_reaches_the_accepting_functions() -> None:
    # Given
    secret = props("IdempotencyKeySecret")["GenerateSecretString"]
    environments = {
        logical_id: resource["Properties"].get("Environment", {}).get("Variables", {})
        for logical_id, resource in sam()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }

    # Then: the key is random, 48 base64 characters (36 bytes, over the 24 required); the API and ingest get
    # the secret's name, may read that secret, and no function's environment holds anything else of it
    assert (secret["GenerateStringKey"], secret["PasswordLength"], secret["ExcludePunctuation"]) == ("key", 48, True)
    for function in ("ApiFunction", "IngestFunction"):
        assert environments[function]["IDEMPOTENCY_SECRET_NAME"] == {"Ref": "IdempotencyKeySecret"}
        statements = [s for policy in props(function)["Policies"] for s in policy["Statement"]]
        [reads] = [s for s in statements if s.get("Sid") == "IdempotencyKey"]
        assert (reads["Action"], reads["Resource"]) == (
            ["secretsmanager:GetSecretValue"],
            {"Ref": "IdempotencyKeySecret"},
        )
    global_environment = sam()["Globals"]["Function"]["Environment"]["Variables"]
    for variables in [global_environment, *environments.values()]:
        assert all(
            name == "IDEMPOTENCY_SECRET_NAME"
            for name, value in variables.items()
            if "IDEMPOTENCY" in name or "IdempotencyKeySecret" in json.dumps(value)
        )


def test_api_access_logs_say_who_what_and_how_without_bodies_for_the_configured_days() -> None:
    # Given
    setting = props("HeraldApi")["AccessLogSetting"]
    fields = json.loads(setting["Format"])

    # Then: one JSON line per request, kept as long as the functions' logs, with no body or address
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert {"requestId", "apiKeyId", "route", "status", "latencyMs"} <= set(fields)
    assert not any(
        "body" in value.lower() or "sourceIp" in value or "header" in value.lower() for value in fields.values()
    )
    assert props("ApiAccessLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_checkov_finding_skipped_in_the_template_says_why() -> None:
    # Given: the checkov findings the template skips (make lint runs checkov; it fails on any other finding)
    skips = [
        (logical_id, skip)
        for logical_id, resource in sam()["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]

    # Then: each names a check and gives its reason in words
    assert skips
    for logical_id, skip in skips:
        assert str(skip["id"]).startswith("CKV_"), logical_id
        assert len(str(skip.get("comment", "")).split()) >= 8, f"{logical_id}: {skip['id']} needs its reason"


def test_every_sqs_event_source_has_bounded_concurrency() -> None:
    # Given: every SQS event source of every function
    sources = [
        (logical_id, name, event["Properties"])
        for logical_id, resource in sam()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for name, event in resource["Properties"].get("Events", {}).items()
        if event["Type"] == "SQS"
    ]

    # Then: a backlog cannot take the account's whole Lambda concurrency, which the API shares
    assert len(sources) == 6
    for logical_id, name, properties in sources:
        assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ConsumerMaxConcurrency"}}, (
            logical_id,
            name,
        )


def test_the_admin_function_serves_the_operations_routes_and_outlives_none_of_its_dead_letter_readings() -> None:
    # Given
    from local.runtime import LOCAL_ONLY_ENVIRONMENT
    from notifications.dead_letters import PEEK_VISIBILITY_SECONDS

    admin = props("AdminFunction")
    routes = {(event["Properties"]["Method"], event["Properties"]["Path"]) for event in admin["Events"].values()}

    # Then: the breakers' and dead letters' routes are the admin function's
    assert {
        ("GET", "/admin/circuit-breakers"),
        ("POST", "/admin/circuit-breakers/{name}/reset"),
        ("POST", "/admin/circuit-breakers/{name}/open"),
        ("POST", "/admin/circuit-breakers/{name}/disable"),
        ("GET", "/admin/dead-letters"),
        ("POST", "/admin/dead-letters/redrive"),
    } <= routes
    # ... it answers before API Gateway's 29 s integration timeout, and a message it reads from the DLQ stays
    # invisible longer than it can run, so one reading never sees a message twice
    assert admin["Timeout"] < 29 and admin["Timeout"] <= PEEK_VISIBILITY_SECONDS
    # ... an unfiltered redrive is a move task from the DLQ to the standard queue in AWS, and not locally (moto)
    variables = admin["Environment"]["Variables"]
    assert variables["REDRIVE_WITH_MOVE_TASK"] == "true"
    assert variables["DEAD_LETTER_QUEUE_ARN"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert variables["REDRIVE_DESTINATION_ARN"] == {"Fn::GetAtt": ["StandardQueue", "Arn"]}
    assert LOCAL_ONLY_ENVIRONMENT["REDRIVE_WITH_MOVE_TASK"] == "false"
    # ... and StartMessageMoveTask is allowed on the DLQ only, the one queue it moves from
    statements = [s for policy in admin["Policies"] for s in policy["Statement"]]
    [move] = [s for s in statements if "sqs:StartMessageMoveTask" in s["Action"]]
    assert move["Resource"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
