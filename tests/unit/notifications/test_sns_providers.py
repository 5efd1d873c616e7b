"""The SNS adapters over in-memory fake clients (no AWS): SMS publishes, push endpoints created once and
cached under a hash of the token, and what each of SNS's documented errors means."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from notifications.errors import DeliveryError, UndeliverableError
from notifications.models import Channel, Recipient
from notifications.providers.sns import (
    ENDPOINT_ID_PREFIX,
    SnsConfigurationError,
    SnsError,
    SnsPushProvider,
    SnsSmsProvider,
    classify_sns_error,
    endpoint_item_id,
)
from resilience import ErrorClass
from tests.support.clock import FakeClock
from tests.support.records import make_record

if TYPE_CHECKING:
    from notifications.models import NotificationRecord

APPLICATION = "arn:aws:sns:us-east-1:123456789012:app/GCM/herald"
TABLE = "notifications"
TOKEN = "device-token-abc"
PHONE = "+447700900123"


def client_error(code: str, status: int = 400, message: str = "refused", operation: str = "Publish") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


@dataclass
class FakeSns:
    """Records SNS calls; `failures[operation]` lists errors the next calls raise, in order."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    created: int = 0

    def _call(self, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((operation, params))
        pending = self.failures.get(operation)
        if pending:
            raise pending.pop(0)

    def publish(self, **params: Any) -> dict[str, Any]:
        self._call("Publish", params)
        return {"MessageId": f"msg-{len(self.calls)}"}

    def create_platform_endpoint(self, **params: Any) -> dict[str, Any]:
        self._call("CreatePlatformEndpoint", params)
        self.created += 1
        return {"EndpointArn": f"arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/e{self.created}"}

    def delete_endpoint(self, **params: Any) -> dict[str, Any]:
        self._call("DeleteEndpoint", params)
        return {}

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


@dataclass
class FakeDynamoDB:
    """A table of items by `id` that honours the two conditions the endpoint cache writes with."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: dict[str, BaseException] = field(default_factory=dict)

    def _call(self, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((operation, params))
        if operation in self.failures:
            raise self.failures[operation]

    def get_item(self, **params: Any) -> dict[str, Any]:
        self._call("GetItem", params)
        item = self.items.get(params["Key"]["id"]["S"])
        return {"Item": item} if item else {}

    def put_item(self, **params: Any) -> dict[str, Any]:
        self._call("PutItem", params)
        key = params["Item"]["id"]["S"]
        assert params["ConditionExpression"] == "attribute_not_exists(#n0)"
        if key in self.items:
            raise client_error("ConditionalCheckFailedException", operation="PutItem")
        self.items[key] = params["Item"]
        return {}

    def delete_item(self, **params: Any) -> dict[str, Any]:
        self._call("DeleteItem", params)
        key = params["Key"]["id"]["S"]
        assert params["ConditionExpression"] == "#n0 = :v0"
        if self.items.get(key, {}).get("endpoint_arn") != params["ExpressionAttributeValues"][":v0"]:
            raise client_error("ConditionalCheckFailedException", operation="DeleteItem")
        del self.items[key]
        return {}

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


def sms_record(**overrides: Any) -> NotificationRecord:
    return make_record(**({"channel": Channel.SMS, "recipient": Recipient(phone=PHONE)} | overrides))


def push_record(token: str = TOKEN, **overrides: Any) -> NotificationRecord:
    fields = {"channel": Channel.PUSH, "recipient": Recipient(device_token=token), "subject": "Hi", "body": "Shipped"}
    return make_record(**(fields | overrides))


def push_provider(sns: FakeSns, dynamodb: FakeDynamoDB, clock: FakeClock | None = None) -> SnsPushProvider:
    return SnsPushProvider(
        APPLICATION,
        TABLE,
        client=sns,  # type: ignore[arg-type]
        dynamodb=dynamodb,  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )


# ---------------------------------------------------------------------- SMS


def test_an_sms_is_published_to_the_phone_number_as_transactional() -> None:
    # Given
    sns = FakeSns()
    provider = SnsSmsProvider(client=sns)  # type: ignore[arg-type]

    # When
    receipt = provider.send(sms_record(), timeout=5)

    # Then
    assert (provider.name, provider.channel, provider.breaker_name(sms_record())) == (
        "sns-sms",
        Channel.SMS,
        "provider:sns-sms",
    )
    assert receipt.provider == "sns-sms" and receipt.message_id == "msg-1"
    assert sns.calls == [
        (
            "Publish",
            {
                "PhoneNumber": PHONE,
                "Message": "hello",
                "MessageAttributes": {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}},
            },
        )
    ]


def test_the_sms_type_is_configurable_and_checked() -> None:
    # Given
    sns = FakeSns()

    # When
    SnsSmsProvider(client=sns, sms_type="Promotional").send(sms_record(), timeout=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sms_type"):
        SnsSmsProvider(client=sns, sms_type="Urgent")  # type: ignore[arg-type]

    # Then
    assert sns.calls[0][1]["MessageAttributes"]["AWS.SNS.SMS.SMSType"]["StringValue"] == "Promotional"


def test_an_sms_recipient_without_a_phone_number_is_undeliverable() -> None:
    # Given
    sns = FakeSns()
    provider = SnsSmsProvider(client=sns)  # type: ignore[arg-type]

    # When
    with pytest.raises(UndeliverableError):
        provider.send(sms_record(recipient=Recipient(email="someone@example.com")), timeout=5)

    # Then
    assert sns.calls == []


def test_an_sms_refusal_carries_snss_code_and_status_but_not_the_number() -> None:
    # Given
    sns = FakeSns(failures={"Publish": [client_error("OptedOut", 400, f"{PHONE} has opted out")]})
    provider = SnsSmsProvider(client=sns)  # type: ignore[arg-type]

    # When
    with pytest.raises(SnsError) as refused:
        provider.send(sms_record(), timeout=5)

    # Then
    assert (refused.value.provider_code, refused.value.status_code) == ("OptedOut", 400)
    assert PHONE not in refused.value.message
    assert classify_sns_error(refused.value) is ErrorClass.PERMANENT


def test_an_unreachable_sns_is_an_sns_error_without_a_code() -> None:
    # Given
    sns = FakeSns(failures={"Publish": [EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com")]})
    provider = SnsSmsProvider(client=sns)  # type: ignore[arg-type]

    # When
    with pytest.raises(SnsError) as failed:
        provider.send(sms_record(), timeout=5)

    # Then
    assert failed.value.provider_code is None and failed.value.status_code is None
    assert failed.value.message == "SNS unreachable (EndpointConnectionError)"
    assert isinstance(failed.value.__cause__, EndpointConnectionError)  # what tells "nothing was sent"


# ---------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("code", "status", "verdict"),
    [
        # InvalidParameter (400): "a request parameter does not comply with the associated constraints" (a
        # number SNS cannot send to, a malformed token, a message too long): this message.
        ("InvalidParameter", 400, ErrorClass.PERMANENT),
        # InvalidParameterValue, whose wire code is ParameterValueInvalid (400): the same, for a value.
        ("ParameterValueInvalid", 400, ErrorClass.PERMANENT),
        ("InvalidParameterValue", 400, ErrorClass.PERMANENT),
        # ValidationException (400): "a parameter in the request is invalid".
        ("ValidationException", 400, ErrorClass.PERMANENT),
        # EndpointDisabled (400): the platform (FCM, APNs) reported this device token invalid.
        ("EndpointDisabled", 400, ErrorClass.PERMANENT),
        # OptedOut (400): "the specified phone number opted out of receiving SMS messages from your account".
        ("OptedOut", 400, ErrorClass.PERMANENT),
        # Throttled (and the Throttling spellings): the account's request rate or SMS spend: retry later.
        ("Throttled", 400, ErrorClass.TRANSIENT),
        ("Throttling", 400, ErrorClass.TRANSIENT),
        ("ThrottledException", 400, ErrorClass.TRANSIENT),
        # InternalError (500): "an internal service error".
        ("InternalError", 500, ErrorClass.TRANSIENT),
        # KMS* (400/403): the KMS key of the topic or platform data is disabled, missing, throttled or not
        # ours to use: configuration, though SNS answers 400.
        ("KMSDisabled", 400, ErrorClass.TRANSIENT),
        ("KMSThrottling", 400, ErrorClass.TRANSIENT),
        ("KMSAccessDenied", 400, ErrorClass.TRANSIENT),
        ("KMSOptInRequired", 403, ErrorClass.TRANSIENT),
        # AuthorizationError (403): "the user has been denied access": our role's policy.
        ("AuthorizationError", 403, ErrorClass.TRANSIENT),
        # InvalidSecurity (403): the request's signature: our side.
        ("InvalidSecurity", 403, ErrorClass.TRANSIENT),
        # PlatformApplicationDisabled (400): the platform refused the application's credentials (FCM key, APNs
        # certificate): configuration, though SNS answers 400.
        ("PlatformApplicationDisabled", 400, ErrorClass.TRANSIENT),
        # NotFound (404): the platform application does not exist: configuration.
        ("NotFound", 404, ErrorClass.TRANSIENT),
        # A code SNS does not document for these calls: left to the rest of the chain.
        ("SomethingNew", 400, None),
    ],
)
def test_each_sns_error_code_is_judged_as_sns_documents_it(code: str, status: int, verdict: ErrorClass | None) -> None:
    # Given
    error = SnsError(f"SNS refused the push ({code})", provider_code=code, status_code=status)

    # When
    judged = classify_sns_error(error)

    # Then
    assert judged is verdict


def test_a_refused_platform_application_is_configuration_and_others_are_left_to_the_chain() -> None:
    # Given
    refused_application = SnsConfigurationError(
        "SNS refused the platform application", provider_code="InvalidParameter"
    )
    others = [SnsError("SNS unreachable (ReadTimeoutError)"), DeliveryError("x", status_code=400), ValueError("x")]

    # When
    verdicts = [classify_sns_error(error) for error in [refused_application, *others]]

    # Then
    assert verdicts == [ErrorClass.TRANSIENT, None, None, None]


# ---------------------------------------------------------------------- push


def test_a_push_creates_an_endpoint_caches_it_and_publishes_a_message_per_platform() -> None:
    # Given
    sns, dynamodb, clock = FakeSns(), FakeDynamoDB(), FakeClock()
    provider = push_provider(sns, dynamodb, clock)

    # When
    receipt = provider.send(push_record(data={"order": 42}), timeout=5)

    # Then
    assert (provider.name, provider.channel, provider.breaker_name(push_record())) == (
        "sns-push",
        Channel.PUSH,
        "provider:sns-push",
    )
    assert receipt.provider == "sns-push" and receipt.message_id is not None
    assert sns.operations() == ["CreatePlatformEndpoint", "Publish"]
    assert sns.calls[0][1] == {"PlatformApplicationArn": APPLICATION, "Token": TOKEN}
    publish = sns.calls[1][1]
    assert publish["TargetArn"].endswith("/e1") and publish["MessageStructure"] == "json"
    message = json.loads(publish["Message"])
    assert message["default"] == "Shipped"
    assert json.loads(message["GCM"]) == {
        "notification": {"title": "Hi", "body": "Shipped"},
        "data": {"order": "42", "notification_id": "n-1"},
    }
    apns = {"aps": {"alert": {"title": "Hi", "body": "Shipped"}}, "notification_id": "n-1"}
    assert json.loads(message["APNS"]) == apns and json.loads(message["APNS_SANDBOX"]) == apns
    [item] = dynamodb.items.values()
    assert item == {
        "id": {"S": endpoint_item_id(APPLICATION, TOKEN)},
        "endpoint_arn": {"S": publish["TargetArn"]},
        "created_at": {"S": "2023-11-14T22:13:20.000Z"},
        "expires_at": {"N": str(int(clock.now) + 90 * 86_400)},
    }


def test_the_endpoint_item_is_keyed_by_a_hash_never_by_the_token() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()

    # When
    push_provider(sns, dynamodb).send(push_record(), timeout=5)

    # Then
    [key] = dynamodb.items
    assert key.startswith(ENDPOINT_ID_PREFIX) and len(key) == len(ENDPOINT_ID_PREFIX) + 64
    assert TOKEN not in json.dumps([params for _, params in dynamodb.calls])
    assert endpoint_item_id(APPLICATION, TOKEN) != endpoint_item_id(APPLICATION.replace("herald", "other"), TOKEN)


def test_a_repeat_push_from_memory_costs_one_publish() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    provider = push_provider(sns, dynamodb)
    provider.send(push_record(), timeout=5)
    sns.calls.clear()
    dynamodb.calls.clear()

    # When
    provider.send(push_record(), timeout=5)

    # Then
    assert sns.operations() == ["Publish"]
    assert dynamodb.calls == []


def test_another_environment_reads_the_cached_endpoint_instead_of_creating_one() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    push_provider(sns, dynamodb).send(push_record(), timeout=5)
    sns.calls.clear()

    # When
    push_provider(sns, dynamodb).send(push_record(), timeout=5)

    # Then
    assert sns.operations() == ["Publish"]
    assert sns.calls[0][1]["TargetArn"].endswith("/e1")


def test_the_memory_cache_is_bounded_and_forgets_the_least_recently_used_token() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    provider = push_provider(sns, dynamodb)
    provider.endpoints._max_entries = 2
    for token in ("t1", "t2", "t1", "t3"):  # t2 is now the least recently used
        provider.send(push_record(token), timeout=5)
    dynamodb.calls.clear()

    # When
    provider.send(push_record("t1"), timeout=5)
    provider.send(push_record("t3"), timeout=5)
    provider.send(push_record("t2"), timeout=5)

    # Then
    assert dynamodb.operations() == ["GetItem"]
    assert dynamodb.calls[0][1]["Key"]["id"]["S"] == endpoint_item_id(APPLICATION, "t2")


def test_losing_the_cache_write_race_still_publishes_to_the_endpoint() -> None:
    # Given: another environment cached the token between our read and our write
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    winner = {"id": {"S": endpoint_item_id(APPLICATION, TOKEN)}, "endpoint_arn": {"S": "arn:winner"}}
    original_get = dynamodb.get_item

    def read_then_lose(**params: Any) -> dict[str, Any]:
        answer = original_get(**params)
        dynamodb.items[winner["id"]["S"]] = winner
        return answer

    dynamodb.get_item = read_then_lose  # type: ignore[method-assign]

    # When
    receipt = push_provider(sns, dynamodb).send(push_record(), timeout=5)

    # Then: the first item stands; ours is the same ARN in SNS, so it is used as is
    assert receipt.message_id is not None
    assert dynamodb.items[winner["id"]["S"]] == winner
    assert sns.calls[-1][1]["TargetArn"].endswith("/e1")


def test_a_failing_status_table_does_not_stop_a_push() -> None:
    # Given
    unavailable = client_error("ProvisionedThroughputExceededException", 400, operation="GetItem")
    sns, dynamodb = FakeSns(), FakeDynamoDB(failures={"GetItem": unavailable, "PutItem": unavailable})

    # When
    receipt = push_provider(sns, dynamodb).send(push_record(), timeout=5)

    # Then
    assert receipt.message_id is not None
    assert sns.operations() == ["CreatePlatformEndpoint", "Publish"]


def test_a_disabled_endpoint_fails_permanently_and_is_forgotten_so_a_new_registration_gets_a_fresh_one() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    provider = push_provider(sns, dynamodb)
    provider.send(push_record(), timeout=5)
    sns.failures["Publish"] = [client_error("EndpointDisabled", 400, "Endpoint is disabled")]

    # When
    with pytest.raises(SnsError) as refused:
        provider.send(push_record(), timeout=5)
    provider.send(push_record(), timeout=5)

    # Then
    assert refused.value.provider_code == "EndpointDisabled"
    assert classify_sns_error(refused.value) is ErrorClass.PERMANENT
    assert sns.operations() == [
        "CreatePlatformEndpoint",
        "Publish",
        "Publish",  # disabled
        "DeleteEndpoint",
        "CreatePlatformEndpoint",
        "Publish",
    ]
    assert sns.calls[3][1] == {"EndpointArn": sns.calls[1][1]["TargetArn"]}
    assert [item["endpoint_arn"]["S"] for item in dynamodb.items.values()] == [sns.calls[-1][1]["TargetArn"]]
    assert sns.calls[-1][1]["TargetArn"].endswith("/e2")


def test_forgetting_a_disabled_endpoint_leaves_a_newer_endpoint_cached_by_another_sender() -> None:
    # Given: after our publish failed, another sender cached a fresh endpoint for the token
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    provider = push_provider(sns, dynamodb)
    provider.send(push_record(), timeout=5)
    key = endpoint_item_id(APPLICATION, TOKEN)
    sns.failures["Publish"] = [client_error("EndpointDisabled", 400, "Endpoint is disabled")]
    original_publish = sns.publish

    def fail_after_another_sender_recached(**params: Any) -> dict[str, Any]:
        dynamodb.items[key] = {"id": {"S": key}, "endpoint_arn": {"S": "arn:fresh"}}
        return original_publish(**params)

    sns.publish = fail_after_another_sender_recached  # type: ignore[method-assign]

    # When
    with pytest.raises(SnsError):
        provider.send(push_record(), timeout=5)

    # Then
    assert dynamodb.items[key]["endpoint_arn"] == {"S": "arn:fresh"}


def test_an_endpoint_deleted_outside_herald_is_created_again_within_the_same_send() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()
    provider = push_provider(sns, dynamodb)
    provider.send(push_record(), timeout=5)
    sns.failures["Publish"] = [client_error("NotFound", 404, "Endpoint does not exist")]

    # When
    receipt = provider.send(push_record(), timeout=5)

    # Then
    assert receipt.message_id is not None
    assert sns.operations()[2:] == ["Publish", "CreatePlatformEndpoint", "Publish"]
    assert sns.calls[-1][1]["TargetArn"].endswith("/e2")
    assert [item["endpoint_arn"]["S"] for item in dynamodb.items.values()] == [sns.calls[-1][1]["TargetArn"]]


def test_a_token_with_an_endpoint_of_other_attributes_reuses_that_endpoint() -> None:
    # Given: SNS's documented answer when the token already has an endpoint with other attributes
    existing = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/0f1e2d3c"
    message = (
        f"Invalid parameter: Token Reason: Endpoint {existing} already exists with the same Token, "
        "but different attributes."
    )
    sns = FakeSns(failures={"CreatePlatformEndpoint": [client_error("InvalidParameter", 400, message)]})

    # When
    push_provider(sns, FakeDynamoDB()).send(push_record(), timeout=5)

    # Then
    assert sns.calls[-1][1]["TargetArn"] == existing


def test_a_refused_token_is_permanent_and_a_refused_platform_application_is_configuration() -> None:
    # Given
    bad_token = client_error("InvalidParameter", 400, "Invalid parameter: Token Reason: malformed")
    bad_application = client_error("InvalidParameter", 400, "Invalid parameter: PlatformApplicationArn Reason: bad")
    sns = FakeSns(failures={"CreatePlatformEndpoint": [bad_token, bad_application]})
    provider = push_provider(sns, FakeDynamoDB())

    # When
    with pytest.raises(SnsError) as token_refused:
        provider.send(push_record(), timeout=5)
    with pytest.raises(SnsConfigurationError) as application_refused:
        provider.send(push_record(), timeout=5)

    # Then
    assert classify_sns_error(token_refused.value) is ErrorClass.PERMANENT
    assert classify_sns_error(application_refused.value) is ErrorClass.TRANSIENT
    assert TOKEN not in token_refused.value.message
    assert "Publish" not in sns.operations()


def test_a_push_recipient_without_a_device_token_is_undeliverable() -> None:
    # Given
    sns, dynamodb = FakeSns(), FakeDynamoDB()

    # When
    with pytest.raises(UndeliverableError):
        push_provider(sns, dynamodb).send(push_record(recipient=Recipient(phone=PHONE)), timeout=5)

    # Then
    assert sns.calls == [] and dynamodb.calls == []
