"""SMS and mobile push through Amazon SNS.

`SnsSmsProvider` publishes straight to a phone number. `SnsPushProvider` publishes to a platform endpoint:
SNS's handle on one device token in one platform application (FCM, APNs...). `PlatformEndpoints` creates one
endpoint per token, once, and remembers it in the notifications (status) table under a hash of the token,
with a bounded in-memory cache in front, so a repeat send costs one `Publish`.

The adapters describe failures (`SnsError` with SNS's error code and HTTP status) and never judge them:
`classify_sns_error` does, following SNS's documented errors. The client's own timeouts bound each call
(`notifications.aws`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.clock import Clock, iso, system_clock
from notifications.errors import DeliveryError, UndeliverableError
from notifications.models import Channel
from notifications.observability import logger
from notifications.providers import ProviderReceipt
from resilience import ErrorClass
from resilience.conditional import Equals, NotExists
from resilience.conditional.dynamodb import render, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

    from notifications.models import NotificationRecord
    from resilience.conditional import Condition, Value

SMS_PROVIDER = "sns-sms"
PUSH_PROVIDER = "sns-push"
SmsType = Literal["Transactional", "Promotional"]

ENDPOINT_ID_PREFIX = "push-endpoint#"
ID, ENDPOINT_ARN, CREATED_AT, EXPIRES_AT = "id", "endpoint_arn", "created_at", "expires_at"
ENDPOINT_RETENTION_SECONDS = 90 * 86_400
"""How long a cached endpoint item lives (the table's TTL); an expired one is simply created again, and SNS
answers the same endpoint for the same token."""
MEMORY_ENTRIES = 1024

# SNS's error codes (Publish, CreatePlatformEndpoint), by what they are about.
# About this message, its number or its token: resending it cannot help.
#   InvalidParameter / ParameterValueInvalid / InvalidParameterValue (400): a parameter does not comply with
#   its constraints (a phone number SNS cannot send to, a malformed token, a message too long).
#   ValidationException (400): "a parameter in the request is invalid".
#   EndpointDisabled (400): the platform (FCM, APNs) reported the device token invalid.
#   OptedOut (400): the phone number opted out of SMS from this account.
_ABOUT_THE_MESSAGE = frozenset(
    {"InvalidParameter", "ParameterValueInvalid", "InvalidParameterValue", "ValidationException"}
    | {"EndpointDisabled", "OptedOut"}
)
# About our account, configuration or SNS's service: counted against the breaker so the channel fails over;
# once the throttle lifts or an operator fixes the configuration, a retry delivers.
#   Throttled / Throttling / ThrottledException: the account's sending rate (or the SMS spend limit).
#   InternalError (500): SNS failed.
#   KMS* (KMSThrottling, KMSDisabled, KMSInvalidState, KMSNotFound, KMSOptInRequired, KMSAccessDenied): the
#   key that encrypts the topic or the platform application's data.
#   AuthorizationError / InvalidSecurity (403): our role may not publish, or the request is badly signed.
#   PlatformApplicationDisabled (400): the platform application's credentials (FCM key, APNs certificate)
#   were refused by the platform.
#   NotFound (404): the platform application does not exist (a stale endpoint is recovered from first).
_ABOUT_OUR_SIDE = frozenset(
    {"Throttled", "Throttling", "ThrottledException", "ThrottlingException", "InternalError", "InternalFailure"}
    | {"AuthorizationError", "InvalidSecurity", "PlatformApplicationDisabled", "NotFound"}
)
# SNS's answer when an endpoint for the token exists with other attributes (custom user data, disabled):
# "Invalid parameter: Token Reason: Endpoint <arn> already exists with the same Token, but different attributes."
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:[\w-]+:sns:\S+) already exists with the same Token")
# SNS's answer to a publish to an endpoint deleted outside Herald (moto answers NotFound).
_NO_ENDPOINT = re.compile(r"No endpoint found", re.IGNORECASE)


class SnsError(DeliveryError):
    """SNS answered with an error (its code in `provider_code`, its status in `status_code`) or could not be
    reached (no code)."""


class SnsConfigurationError(SnsError):
    """SNS refused the platform application itself (its ARN is malformed or names none): configuration."""


def classify_sns_error(error: BaseException) -> ErrorClass | None:
    """SNS's rules: a refused number, token or message is permanent; throttling, SNS's own failures, KMS, our
    permissions and the platform application are transient. Other codes (and any other error) are left to the
    rest of the chain."""
    if not isinstance(error, SnsError):
        return None
    if isinstance(error, SnsConfigurationError):
        return ErrorClass.TRANSIENT
    code = error.provider_code
    if code is None:
        return None
    if code in _ABOUT_THE_MESSAGE:
        return ErrorClass.PERMANENT
    if code in _ABOUT_OUR_SIDE or code.startswith("KMS"):
        return ErrorClass.TRANSIENT
    return None


class SnsSmsProvider:
    """SMS with SNS `Publish` to a phone number (no topic).

    Parameters
    ----------
    client : SNSClient | None
        Injected in tests; `notifications.aws.client("sns")` by default.
    sms_type : str
        `Transactional` (critical messages, delivered with the highest reliability) or `Promotional`.
    """

    name = SMS_PROVIDER
    channel = Channel.SMS

    def __init__(self, client: SNSClient | None = None, sms_type: SmsType = "Transactional") -> None:
        if sms_type not in ("Transactional", "Promotional"):
            raise ValueError(f"sms_type must be Transactional or Promotional, not {sms_type!r}")
        self._client = client or aws.client("sns")
        self._sms_type = sms_type

    def breaker_name(self, record: NotificationRecord) -> str:
        return f"provider:{self.name}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        if record.recipient.phone is None:
            raise UndeliverableError("recipient has no phone number")
        try:
            response = self._client.publish(
                PhoneNumber=record.recipient.phone,
                Message=record.body,
                MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": self._sms_type}},
            )
        except ClientError as error:
            raise _refused("SNS refused the SMS", error) from error
        except BotoCoreError as error:
            raise SnsError(f"SNS unreachable ({type(error).__name__})") from error
        return ProviderReceipt(provider=self.name, message_id=response.get("MessageId"))


def endpoint_item_id(platform_application_arn: str, device_token: str) -> str:
    """The status table key of a token's cached endpoint: a hash, never the token itself."""
    digest = hashlib.sha256((platform_application_arn + device_token).encode()).hexdigest()
    return ENDPOINT_ID_PREFIX + digest


class PlatformEndpoints:
    """Device token -> SNS platform endpoint ARN: from memory, else the status table, else SNS.

    The status table is a cache here, not the truth (SNS's `CreatePlatformEndpoint` is idempotent and answers
    the same endpoint for the same token), so its failures are logged and skipped, never a delivery failure.

    Parameters
    ----------
    platform_application_arn : str
        The SNS platform application the endpoints belong to.
    table : str
        The notifications (status) table; endpoint items have `id` = `push-endpoint#<sha256 hex>`.
    sns, dynamodb
        The clients.
    clock : Clock
        Epoch seconds, for `created_at` and the item's TTL.
    max_entries : int
        How many endpoints the in-memory cache keeps (least recently used dropped first).
    """

    def __init__(
        self,
        platform_application_arn: str,
        table: str,
        *,
        sns: SNSClient,
        dynamodb: DynamoDBClient,
        clock: Clock = system_clock,
        max_entries: int = MEMORY_ENTRIES,
    ) -> None:
        self._application = platform_application_arn
        self._table = table
        self._sns = sns
        self._dynamodb = dynamodb
        self._clock = clock
        self._max_entries = max_entries
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def arn_for(self, device_token: str) -> str:
        """The endpoint of `device_token`, created in SNS the first time.

        Raises
        ------
        SnsError
            SNS refused to create the endpoint or could not be reached.
        """
        key = endpoint_item_id(self._application, device_token)
        with self._lock:
            arn = self._memory.get(key)
            if arn is not None:
                self._memory.move_to_end(key)
                return arn
        arn = self._read(key)
        if arn is None:
            arn = self._create(device_token)
            self._write(key, arn)
        self._remember(key, arn)
        return arn

    def forget(self, device_token: str, arn: str, *, delete_endpoint: bool) -> None:
        """Stop using `arn` for `device_token` (best effort): out of memory, out of the table and, when
        `delete_endpoint`, out of SNS, so the next send creates a fresh endpoint."""
        key = endpoint_item_id(self._application, device_token)
        with self._lock:
            if self._memory.get(key) == arn:
                del self._memory[key]
        # Race prevented: deleting the item of a fresh endpoint another sender has just cached for this
        # token (after the device registered again) instead of the stale one this sender saw.
        condition: Condition = (Equals(ENDPOINT_ARN, arn),)
        try:
            self._dynamodb.delete_item(TableName=self._table, Key={ID: {"S": key}}, **render(condition=condition))
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                logger.warning("push endpoint item not deleted", extra={"error_type": _code(error)})
        except BotoCoreError as error:
            logger.warning("push endpoint item not deleted", extra={"error_type": type(error).__name__})
        if delete_endpoint:
            try:
                self._sns.delete_endpoint(EndpointArn=arn)
            except (ClientError, BotoCoreError) as error:
                logger.warning("push endpoint not deleted", extra={"error_type": type(error).__name__})

    def _read(self, key: str) -> str | None:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={ID: {"S": key}},
                ProjectionExpression="#arn",
                ExpressionAttributeNames={"#arn": ENDPOINT_ARN},
            )
        except (ClientError, BotoCoreError) as error:
            logger.warning("push endpoint cache unreadable; asking SNS", extra={"error_type": type(error).__name__})
            return None
        value = response.get("Item", {}).get(ENDPOINT_ARN, {}).get("S")
        return value if isinstance(value, str) and value else None

    def _create(self, device_token: str) -> str:
        try:
            response = self._sns.create_platform_endpoint(PlatformApplicationArn=self._application, Token=device_token)
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", ""))
            existing = _EXISTING_ENDPOINT.search(message)
            if existing:  # ours or another system's, with other attributes: publishing to it says if it works
                return existing.group(1)
            if "PlatformApplicationArn" in message:
                raise SnsConfigurationError(
                    f"SNS refused the platform application ({_code(error)})",
                    provider_code=_code(error),
                    status_code=_status(error),
                ) from error
            raise _refused("SNS refused the device token", error) from error
        except BotoCoreError as error:
            raise SnsError(f"SNS unreachable ({type(error).__name__})") from error
        return response["EndpointArn"]

    def _write(self, key: str, arn: str) -> None:
        now = self._clock()
        item: dict[str, Value] = {
            ID: key,
            ENDPOINT_ARN: arn,
            CREATED_AT: iso(now),
            EXPIRES_AT: int(now) + ENDPOINT_RETENTION_SECONDS,
        }
        # Race prevented: two senders caching one new token at once. The first item stands; the second sender
        # holds the same ARN (SNS answers one endpoint per token) and uses its own. The condition also keeps
        # this write from ever replacing another item of the table.
        condition: Condition = (NotExists(ID),)
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={name: serialize(value) for name, value in item.items()},
                **render(condition=condition),
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                logger.warning("push endpoint not cached", extra={"error_type": _code(error)})
        except BotoCoreError as error:
            logger.warning("push endpoint not cached", extra={"error_type": type(error).__name__})

    def _remember(self, key: str, arn: str) -> None:
        with self._lock:
            self._memory[key] = arn
            self._memory.move_to_end(key)
            while len(self._memory) > self._max_entries:
                self._memory.popitem(last=False)


def push_payload(record: NotificationRecord) -> str:
    """SNS's `MessageStructure=json` message: one body per platform, each carrying the notification id.

    `default` is for platforms without a body of their own; `GCM` is FCM's (legacy field names, which SNS
    maps onto FCM v1); `APNS` and `APNS_SANDBOX` are Apple's (production and development applications).
    """
    alert = {"body": record.body} if record.subject is None else {"title": record.subject, "body": record.body}
    data = {key: value if isinstance(value, str) else _json(value) for key, value in (record.data or {}).items()}
    data["notification_id"] = record.id
    apns = _json({"aps": {"alert": alert}, "notification_id": record.id})
    return _json(
        {
            "default": record.body,
            "GCM": _json({"notification": alert, "data": data}),
            "APNS": apns,
            "APNS_SANDBOX": apns,
        }
    )


class SnsPushProvider:
    """Mobile push with SNS `Publish` to the device token's platform endpoint.

    An endpoint SNS reports disabled (the platform said the token is invalid) fails the notification for good
    and is forgotten, in SNS too, so a token registered again gets a fresh endpoint; an endpoint deleted
    outside Herald is created again once within the same send.

    Parameters
    ----------
    platform_application_arn : str
        The SNS platform application (FCM, APNs...) the endpoints are created in.
    endpoints_table : str
        The notifications (status) table, where endpoints are cached.
    client, dynamodb
        Injected in tests; `notifications.aws` clients by default.
    clock : Clock
        Epoch seconds, for the cached items.
    """

    name = PUSH_PROVIDER
    channel = Channel.PUSH

    def __init__(
        self,
        platform_application_arn: str,
        endpoints_table: str,
        *,
        client: SNSClient | None = None,
        dynamodb: DynamoDBClient | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._client = client or aws.client("sns")
        self.endpoints = PlatformEndpoints(
            platform_application_arn,
            endpoints_table,
            sns=self._client,
            dynamodb=dynamodb or aws.client("dynamodb"),
            clock=clock,
        )

    def breaker_name(self, record: NotificationRecord) -> str:
        return f"provider:{self.name}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        device_token = record.recipient.device_token
        if device_token is None:
            raise UndeliverableError("recipient has no device token")
        message = push_payload(record)
        arn = self.endpoints.arn_for(device_token)
        try:
            message_id = self._publish(arn, message)
        except SnsError as error:
            if error.provider_code == "EndpointDisabled":
                self.endpoints.forget(device_token, arn, delete_endpoint=True)
                raise
            if not _stale(error):
                raise
            # The endpoint was deleted outside Herald: nothing was delivered; create it again, once.
            self.endpoints.forget(device_token, arn, delete_endpoint=False)
            message_id = self._publish(self.endpoints.arn_for(device_token), message)
        return ProviderReceipt(provider=self.name, message_id=message_id)

    def _publish(self, arn: str, message: str) -> str | None:
        try:
            response = self._client.publish(TargetArn=arn, MessageStructure="json", Message=message)
        except ClientError as error:
            raise _refused("SNS refused the push", error) from error
        except BotoCoreError as error:
            raise SnsError(f"SNS unreachable ({type(error).__name__})") from error
        return response.get("MessageId")


def _stale(error: SnsError) -> bool:
    """Whether a publish failed because its endpoint no longer exists."""
    if error.provider_code == "NotFound":
        return True
    cause = error.__cause__
    if error.provider_code == "InvalidParameter" and isinstance(cause, ClientError):
        return bool(_NO_ENDPOINT.search(str(cause.response.get("Error", {}).get("Message", ""))))
    return False


def _refused(what: str, error: ClientError) -> SnsError:
    code = _code(error) or "Unknown"
    return SnsError(f"{what} ({code})", provider_code=code, status_code=_status(error))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int | None:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
