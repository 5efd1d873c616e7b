"""boto3 clients with timeouts that fit inside a Lambda invocation (boto3's default connect timeout is 60 s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

_CONNECT_SECONDS, _READ_SECONDS, _ATTEMPTS = 2, 5, 3
_CONFIG = Config(
    connect_timeout=_CONNECT_SECONDS,
    read_timeout=_READ_SECONDS,
    retries={"mode": "standard", "max_attempts": _ATTEMPTS},
)
# The longest one AWS call may take with these settings (every attempt timing out).
SLOWEST_CALL_SECONDS = float((_CONNECT_SECONDS + _READ_SECONDS) * _ATTEMPTS)
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 1})
# The API answers within its function's timeout: each call gets less, and one retry.
_API_CONNECT_SECONDS, _API_READ_SECONDS, _API_ATTEMPTS = 1, 2, 2
_API_CONFIG = Config(
    connect_timeout=_API_CONNECT_SECONDS,
    read_timeout=_API_READ_SECONDS,
    retries={"mode": "standard", "max_attempts": _API_ATTEMPTS},
)
# The longest one API call may take: every attempt timing out, plus standard mode's backoff before the
# retry (a random delay of at most 1 s before the second attempt).
API_SLOWEST_CALL_SECONDS = float((_API_CONNECT_SECONDS + _API_READ_SECONDS) * _API_ATTEMPTS + 1)
# The most AWS calls one single accept makes: the put, the send, and taking the record back.
API_CALLS_PER_ACCEPT = 3


@overload
def client(service: Literal["dynamodb"], *, probe: bool = False, api: bool = False) -> DynamoDBClient: ...
@overload
def client(service: Literal["sqs"], *, probe: bool = False, api: bool = False) -> SQSClient: ...
@overload
def client(service: Literal["sesv2"], *, probe: bool = False, api: bool = False) -> SESV2Client: ...
@overload
def client(service: Literal["sns"], *, probe: bool = False, api: bool = False) -> SNSClient: ...
@overload
def client(service: Literal["apigateway"], *, probe: bool = False, api: bool = False) -> APIGatewayClient: ...
@overload
def client(service: Literal["cloudwatch"], *, probe: bool = False, api: bool = False) -> CloudWatchClient: ...
@overload
def client(service: Literal["secretsmanager"], *, probe: bool = False, api: bool = False) -> SecretsManagerClient: ...
def client(service: str, *, probe: bool = False, api: bool = False) -> Any:
    """A client for one AWS service; `probe` clients fail fast for health checks, `api` ones fit the API's
    timeout (`API_CALLS_PER_ACCEPT` x `API_SLOWEST_CALL_SECONDS` within ApiFunction's Timeout)."""
    return boto3.client(service, config=_PROBE_CONFIG if probe else _API_CONFIG if api else _CONFIG)
