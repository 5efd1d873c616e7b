"""Create the template's queues, tables, API keys, usage plans, secrets and SES identity in the embedded AWS.

Resources the embedded AWS holds (``AWS::SQS::Queue``, ``AWS::DynamoDB::Table``, ``AWS::ApiGateway::ApiKey``,
``AWS::ApiGateway::UsagePlan``, ``AWS::ApiGateway::UsagePlanKey``, ``AWS::SecretsManager::Secret``) are
created with boto3 calls from their template properties, dependencies first (a dead-letter queue before the
queues that redrive to it, a key before the secret named after it), so their physical ids are the embedded
AWS's own. Resources the runtime itself plays (functions, the REST API and its stage, schedules and scheduled
rules) only get local physical ids and ARNs, so every ``Ref``/``GetAtt`` resolves.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets as secrets_module
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.apigateway.keys import stored_key_value
from local.lambda_.handlers import function_arn, function_name
from local.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping

    from local.aws.template import Stack

logger = get_logger("provision")

QUEUE_TYPE = "AWS::SQS::Queue"
TABLE_TYPE = "AWS::DynamoDB::Table"
SECRET_TYPE = "AWS::SecretsManager::Secret"
API_KEY_TYPE = "AWS::ApiGateway::ApiKey"
USAGE_PLAN_TYPE = "AWS::ApiGateway::UsagePlan"
USAGE_PLAN_KEY_TYPE = "AWS::ApiGateway::UsagePlanKey"
EVENTS_RULE_TYPE = "AWS::Events::Rule"
SCHEDULE_TYPE = "AWS::Scheduler::Schedule"
_API_GATEWAY_TYPES = frozenset({API_KEY_TYPE, USAGE_PLAN_TYPE, USAGE_PLAN_KEY_TYPE})
_CREATED_TYPES = frozenset({QUEUE_TYPE, TABLE_TYPE, SECRET_TYPE}) | _API_GATEWAY_TYPES
GENERATED_KEY_LENGTH = 40  # the length of a key value API Gateway generates
SENDER_EMAIL_PARAMETER = "SenderEmail"  # the SES identity email is sent from; verified locally

# CloudFormation queue properties that are SQS queue attributes under the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_QUEUE_JSON_ATTRIBUTES = ("RedrivePolicy", "RedriveAllowPolicy")
_QUEUE_OTHER = ("QueueName", "Tags")

_TABLE_PASSTHROUGH = (
    "AttributeDefinitions",
    "BillingMode",
    "DeletionProtectionEnabled",
    "GlobalSecondaryIndexes",
    "KeySchema",
    "LocalSecondaryIndexes",
    "ProvisionedThroughput",
    "StreamSpecification",
    "TableClass",
)
_TABLE_OTHER = ("TableName", "Tags", "SSESpecification", "TimeToLiveSpecification", "PointInTimeRecoverySpecification")

# StageKeys and ApiStages name the REST API, which the runtime emulates instead of creating: left out on purpose.
_API_KEY_PROPERTIES = (
    "CustomerId", "Description", "Enabled", "GenerateDistinctId", "Name", "StageKeys", "Tags", "Value",
)  # fmt: skip
_USAGE_PLAN_PROPERTIES = ("ApiStages", "Description", "Quota", "Tags", "Throttle", "UsagePlanName")


@dataclass
class Provisioned:
    """What was created, each by logical id."""

    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    secrets: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    api_keys: dict[str, str] = field(default_factory=dict)  # logical id -> key id
    usage_plans: dict[str, str] = field(default_factory=dict)  # logical id -> usage plan id
    email_identities: list[str] = field(default_factory=list)


def local_id(stack: Stack, logical_id: str, length: int = 10) -> str:
    """A stable, API-Gateway-looking id (lowercase alphanumerics) for an emulated resource."""
    digest = hashlib.sha256(f"{stack.stack_name}/{logical_id}".encode()).hexdigest()
    return digest[:length]


def name_emulated_resources(stack: Stack) -> None:
    """Give physical ids/ARNs to the resources the runtime plays instead of creating (idempotent)."""
    for logical_id, resource in stack.resources.items():
        resource_type = resource["Type"]
        if resource_type == "AWS::Lambda::Function":
            name = function_name(stack, logical_id)
            stack.physical_ids[logical_id] = name
            stack.arns[logical_id] = function_arn(stack, name)
        elif resource_type == "AWS::ApiGateway::Stage":
            stack.physical_ids[logical_id] = str(stack.resolve(resource["Properties"]["StageName"]))
        elif resource_type == "AWS::Lambda::LayerVersion":
            arn = f"arn:aws:lambda:{stack.region}:{stack.account_id}:layer:{stack.stack_name}-{logical_id}:1"
            stack.physical_ids[logical_id] = arn
            stack.arns[logical_id] = arn
        elif resource_type == "AWS::IAM::Role":
            stack.physical_ids[logical_id] = f"{stack.stack_name}-{logical_id}"
            stack.arns[logical_id] = f"arn:aws:iam::{stack.account_id}:role/{stack.stack_name}-{logical_id}"
        elif resource_type == "AWS::Logs::LogGroup":  # not emulated: logs go to the console; named for ARNs
            name = f"/aws/herald-local/{stack.stack_name}-{logical_id}"
            stack.physical_ids[logical_id] = name
            stack.arns[logical_id] = f"arn:aws:logs:{stack.region}:{stack.account_id}:log-group:{name}:*"
        elif resource_type in {EVENTS_RULE_TYPE, SCHEDULE_TYPE}:  # played by local.lambda_.schedules
            name, arn = schedule_name_and_arn(stack, logical_id)
            stack.physical_ids[logical_id], stack.arns[logical_id] = name, arn
        elif resource_type not in _CREATED_TYPES:
            stack.physical_ids.setdefault(logical_id, local_id(stack, logical_id))


def schedule_name_and_arn(stack: Stack, logical_id: str) -> tuple[str, str]:
    """What ``Ref`` and ``GetAtt .Arn`` return for an ``AWS::Events::Rule`` or ``AWS::Scheduler::Schedule``.

    The template's ``Name`` (SAM names a ``ScheduleV2`` schedule after its logical id), else
    ``<stack>-<LogicalId>`` where CloudFormation would generate one; a rule on a custom bus has the bus in its ARN,
    a schedule its group (``default`` unless ``GroupName`` says otherwise).
    """
    resource = stack.resources[logical_id]
    properties = resource.get("Properties", {})
    name = str(stack.resolve(properties.get("Name")) or f"{stack.stack_name}-{logical_id}")
    if resource["Type"] == SCHEDULE_TYPE:
        group = str(stack.resolve(properties.get("GroupName")) or "default")
        return name, f"arn:aws:scheduler:{stack.region}:{stack.account_id}:schedule/{group}/{name}"
    bus = str(stack.resolve(properties.get("EventBusName")) or "default").rsplit("/", 1)[-1]
    path = name if bus == "default" else f"{bus}/{name}"
    return name, f"arn:aws:events:{stack.region}:{stack.account_id}:rule/{path}"


def _references(value: Any) -> set[str]:
    """Logical ids that ``value`` names through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                found |= {name.split(".", 1)[0] for name in _sub_names(text)}
                if isinstance(argument, list):
                    found |= _references(argument[1])
            else:
                found |= _references(argument)
    return found


def _sub_names(text: str) -> list[str]:
    return re.findall(r"\$\{([^}!]+)\}", text)


def creation_order(stack: Stack, types: set[str]) -> list[str]:
    """Logical ids of the resources of ``types``, each after the ones of ``types`` it references."""
    wanted = {name for name, resource in stack.resources.items() if resource["Type"] in types}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"circular reference through {name}")
        visiting.add(name)
        resource = stack.resources[name]
        for dependency in sorted(_references(resource.get("Properties", {})) | set(_depends_on(resource))):
            if dependency in wanted:
                visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in sorted(wanted):
        visit(name)
    return order


def _depends_on(resource: dict[str, Any]) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _numbers(value: Any) -> Any:
    """CloudFormation passes numeric strings of JSON policies as numbers, e.g. maxReceiveCount."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _warn_unsupported(logical_id: str, properties: dict[str, Any], known: tuple[str, ...]) -> None:
    for name in sorted(set(properties) - set(known)):
        logger.warning("template property not emulated locally", extra={"resource": logical_id, "property": name})


def queue_request(stack: Stack, logical_id: str, prefix: str) -> dict[str, Any]:
    """The ``sqs.create_queue`` arguments for one ``AWS::SQS::Queue`` (references resolved)."""
    properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    _warn_unsupported(logical_id, properties, _QUEUE_ATTRIBUTES + _QUEUE_JSON_ATTRIBUTES + _QUEUE_OTHER)
    name = properties.get("QueueName") or f"{prefix}-{logical_id}"
    if _scalar(properties.get("FifoQueue", False)) == "true" and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {key: _scalar(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
    for key in _QUEUE_JSON_ATTRIBUTES:
        if key in properties:
            policy = properties[key]
            attributes[key] = policy if isinstance(policy, str) else json.dumps(_numbers(policy))
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if properties.get("Tags"):
        request["tags"] = {tag["Key"]: str(tag["Value"]) for tag in properties["Tags"]}
    return request


def _ints(value: Any) -> Any:
    """DynamoDB wants capacity units as numbers; template values may be strings after resolution."""
    if isinstance(value, list):
        return [_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: int(item) if key.endswith("CapacityUnits") else _ints(item) for key, item in value.items()}
    return value


def table_request(stack: Stack, logical_id: str, prefix: str) -> dict[str, Any]:
    """The ``dynamodb.create_table`` arguments for one ``AWS::DynamoDB::Table`` (references resolved)."""
    properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    _warn_unsupported(logical_id, properties, _TABLE_PASSTHROUGH + _TABLE_OTHER)
    request: dict[str, Any] = {key: _ints(properties[key]) for key in _TABLE_PASSTHROUGH if key in properties}
    request["TableName"] = properties.get("TableName") or f"{prefix}-{logical_id}"
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {"Enabled": _scalar(sse.get("SSEEnabled", False)) == "true"} | {
            key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
        }
    if "BillingMode" not in request and "ProvisionedThroughput" not in request:
        request["BillingMode"] = "PROVISIONED"
    if properties.get("Tags"):
        request["Tags"] = [{"Key": tag["Key"], "Value": str(tag["Value"])} for tag in properties["Tags"]]
    return request


def provision(
    stack: Stack,
    clients: Any,
    prefix: str,
    secret_values: Mapping[str, str] | None = None,
    api_key_values: Mapping[str, str] | None = None,
) -> Provisioned:
    """Create every queue, table, API key, usage plan and secret of ``stack`` and verify the sender's SES identity.

    ``clients`` is a ``boto3.Session`` (or anything with ``.client(name)``) pointed at the embedded AWS.
    Fills ``stack.physical_ids`` (queue URL, table name, key id, usage plan id, secret ARN) and ``stack.arns``
    as it goes. A secret gets its ``secret_values`` entry (the local runtime's known webhook key), else its
    template ``SecretString``, else a value made as ``GenerateSecretString`` describes; it is named by its
    template ``Name``, else ``<prefix>-<LogicalId>``. An API key gets its ``api_key_values`` entry (the local
    runtime's documented keys), else its template ``Value``, else a generated 40-character value.

    Raises
    ------
    ValueError
        ``api_key_values`` names a resource that is not an ``AWS::ApiGateway::ApiKey`` of the template.
    """
    name_emulated_resources(stack)
    key_values = dict(api_key_values or {})
    unknown = sorted(set(key_values) - set(stack.of_type(API_KEY_TYPE)))
    if unknown:
        raise ValueError(f"api_key_values names {', '.join(unknown)}: not an {API_KEY_TYPE} of the template")
    sqs = clients.client("sqs")
    dynamodb = clients.client("dynamodb")
    provisioned = Provisioned()
    for logical_id in creation_order(stack, {QUEUE_TYPE, TABLE_TYPE}):
        if stack.resources[logical_id]["Type"] == QUEUE_TYPE:
            url = sqs.create_queue(**queue_request(stack, logical_id, prefix))["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            stack.physical_ids[logical_id], stack.arns[logical_id] = url, arn
            provisioned.queues[logical_id] = url
        else:
            _create_table(stack, dynamodb, logical_id, prefix)
            provisioned.tables[logical_id] = stack.physical_ids[logical_id]
        logger.info("created", extra={"resource": logical_id, "physical_id": stack.physical_ids[logical_id]})
    _create_api_gateway_resources(stack, clients.client("apigateway"), prefix, key_values, provisioned)
    for logical_id in creation_order(stack, {SECRET_TYPE}):  # after the keys: a secret's Name may name one
        secrets = clients.client("secretsmanager")
        value = (secret_values or {}).get(logical_id) or secret_string(stack, logical_id)
        name = stack.resolve(stack.resources[logical_id].get("Properties", {}).get("Name")) or f"{prefix}-{logical_id}"
        arn = secrets.create_secret(Name=str(name), SecretString=value)["ARN"]
        stack.physical_ids[logical_id] = stack.arns[logical_id] = provisioned.secrets[logical_id] = arn
        logger.info("created", extra={"resource": logical_id})
    sender = stack.parameters.get(SENDER_EMAIL_PARAMETER)
    if sender:
        clients.client("sesv2").create_email_identity(EmailIdentity=sender)
        provisioned.email_identities.append(sender)
    return provisioned


def _create_api_gateway_resources(
    stack: Stack, apigateway: Any, prefix: str, key_values: Mapping[str, str], provisioned: Provisioned
) -> None:
    """The API keys, usage plans and usage plan keys, each after what it references (a key before its plan key)."""
    for logical_id in creation_order(stack, set(_API_GATEWAY_TYPES)):
        resource_type = stack.resources[logical_id]["Type"]
        if resource_type == API_KEY_TYPE:
            request = api_key_request(stack, logical_id, prefix, key_values.get(logical_id))
            physical_id = provisioned.api_keys[logical_id] = apigateway.create_api_key(**request)["id"]
        elif resource_type == USAGE_PLAN_TYPE:
            request = usage_plan_request(stack, logical_id, prefix)
            physical_id = provisioned.usage_plans[logical_id] = apigateway.create_usage_plan(**request)["id"]
        else:
            properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
            physical_id = apigateway.create_usage_plan_key(
                usagePlanId=str(properties["UsagePlanId"]),
                keyId=str(properties["KeyId"]),
                keyType=str(properties.get("KeyType", "API_KEY")),
            )["id"]
        stack.physical_ids[logical_id] = physical_id
        logger.info("created", extra={"resource": logical_id, "physical_id": physical_id})


def api_key_request(stack: Stack, logical_id: str, prefix: str, value: str | None = None) -> dict[str, Any]:
    """The ``apigateway.create_api_key`` arguments for one ``AWS::ApiGateway::ApiKey`` (references resolved).

    The value is ``value``, else the template's ``Value``, else 40 random letters and digits, as API Gateway
    would generate; a value shorter than API Gateway's minimum is stored padded
    (:func:`~local.apigateway.keys.stored_key_value`). ``StageKeys`` are left out: the REST API is emulated.
    """
    properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    _warn_unsupported(logical_id, properties, _API_KEY_PROPERTIES)
    chosen = value or properties.get("Value") or generated_key_value()
    request: dict[str, Any] = {
        "name": str(properties.get("Name") or f"{prefix}-{logical_id}"),
        "enabled": _scalar(properties.get("Enabled", False)) == "true",  # CloudFormation's default: disabled
        "value": stored_key_value(str(chosen)),
    }
    if "Description" in properties:
        request["description"] = str(properties["Description"])
    if "CustomerId" in properties:
        request["customerId"] = str(properties["CustomerId"])
    if "GenerateDistinctId" in properties:
        request["generateDistinctId"] = _scalar(properties["GenerateDistinctId"]) == "true"
    if properties.get("Tags"):
        request["tags"] = {tag["Key"]: str(tag["Value"]) for tag in properties["Tags"]}
    return request


def generated_key_value() -> str:
    """A key value as API Gateway generates one: 40 random letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets_module.choice(alphabet) for _ in range(GENERATED_KEY_LENGTH))


def usage_plan_request(stack: Stack, logical_id: str, prefix: str) -> dict[str, Any]:
    """The ``apigateway.create_usage_plan`` arguments for one ``AWS::ApiGateway::UsagePlan`` (references resolved).

    Throttle and Quota as the template says; no ``apiStages``, since the REST API is emulated, not in the
    embedded AWS (the gateway applies the plan to its one API).
    """
    properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    _warn_unsupported(logical_id, properties, _USAGE_PLAN_PROPERTIES)
    request: dict[str, Any] = {"name": str(properties.get("UsagePlanName") or f"{prefix}-{logical_id}")}
    if "Description" in properties:
        request["description"] = str(properties["Description"])
    throttle = properties.get("Throttle") or {}
    if throttle:
        request["throttle"] = {
            name: convert(throttle[key])
            for key, name, convert in (("RateLimit", "rateLimit", float), ("BurstLimit", "burstLimit", int))
            if key in throttle
        }
    quota = properties.get("Quota") or {}
    if quota:
        request["quota"] = {
            name: convert(quota[key])
            for key, name, convert in (("Limit", "limit", int), ("Offset", "offset", int), ("Period", "period", str))
            if key in quota
        }
    if properties.get("Tags"):
        request["tags"] = {tag["Key"]: str(tag["Value"]) for tag in properties["Tags"]}
    return request


def secret_string(stack: Stack, logical_id: str) -> str:
    """A secret's value as CloudFormation would make it: its SecretString, or GenerateSecretString's JSON."""
    properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    if "SecretString" in properties:
        return str(properties["SecretString"])
    spec = properties.get("GenerateSecretString", {})
    alphabet = string.ascii_letters + string.digits
    if _scalar(spec.get("ExcludePunctuation", False)) != "true":
        alphabet += string.punctuation
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    alphabet = "".join(character for character in alphabet if character not in excluded)
    generated = "".join(secrets_module.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    key = spec.get("GenerateStringKey")
    if key is None:
        return generated
    document = json.loads(str(spec.get("SecretStringTemplate", "{}")))
    document[str(key)] = generated
    return json.dumps(document)


def _create_table(stack: Stack, dynamodb: Any, logical_id: str, prefix: str) -> None:
    request = table_request(stack, logical_id, prefix)
    description = dynamodb.create_table(**request)["TableDescription"]
    name = request["TableName"]
    stack.physical_ids[logical_id], stack.arns[logical_id] = name, description["TableArn"]
    properties = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and _scalar(ttl.get("Enabled", False)) == "true":
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    pitr = properties.get("PointInTimeRecoverySpecification")
    if pitr and _scalar(pitr.get("PointInTimeRecoveryEnabled", False)) == "true":
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
