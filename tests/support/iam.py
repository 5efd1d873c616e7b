"""What AWS a function's code really calls, checked against that function's policy in template.yaml.

moto does not enforce IAM, so a call the policy forgot passes every test here and fails in AWS. The
`AwsCallRecorder` hooks botocore's `before-call` event on a session: every request any client of the
session makes is recorded as (IAM action, resource ARN). `denied_calls` then reads the function's
role from the translated template (SAM turns `Policies` into an `AWS::IAM::Role`) and lists the
recorded calls that no `Allow` statement covers.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

    from local.aws.template import Stack


@dataclass(frozen=True)
class AwsCall:
    action: str  # e.g. sqs:ChangeMessageVisibility
    resource: str  # the ARN the call acts on, or "*" when the action has no resource


_IAM_PREFIX = {"monitoring": "cloudwatch"}
# Batch requests IAM authorises as their single-message action.
_BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# TransactWriteItems is authorised per item, as the item's own action.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@dataclass
class AwsCallRecorder:
    """Records every AWS request made through clients of the sessions it is attached to."""

    stack: Stack
    calls: set[AwsCall] = field(default_factory=set)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (action, parameters), in order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, session: boto3.Session) -> boto3.Session:
        session.events.register("before-parameter-build", self._record)
        return session

    def detach(self, session: boto3.Session) -> None:
        session.events.unregister("before-parameter-build", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        # "ses" for the sesv2 client, as IAM names it; CloudWatch signs as "monitoring" but IAM says "cloudwatch"
        signing = model.service_model.signing_name
        service = _IAM_PREFIX.get(signing, signing)
        action = f"{service}:{model.name}"
        if service == "apigateway":  # IAM authorises API Gateway's management API by HTTP method and path
            found = {AwsCall(f"apigateway:{model.http['method']}", self._apigateway_resource(model, params))}
        else:
            found = self.authorised_as(service, model.name, params)
        with self._lock:
            self.calls.update(found)
            self.requests.append((action, dict(params)))

    def authorised_as(self, service: str, operation: str, params: dict[str, Any]) -> set[AwsCall]:
        """The IAM actions and resources AWS checks for one request (a batch or transaction: each part)."""
        if service == "dynamodb" and operation == "TransactWriteItems":
            return {
                AwsCall(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", self._table(part["TableName"]))
                for item in params.get("TransactItems", [])
                for kind, part in item.items()
            }
        if service == "ses" and operation == "SendEmail":
            # SES authorises the sending identity (the From address's) and the configuration set, if named.
            region, account = self.stack.region, self.stack.account_id
            sender = str(params.get("FromEmailAddress", ""))
            calls = {AwsCall("ses:SendEmail", f"arn:aws:ses:{region}:{account}:identity/{sender}")}
            if "ConfigurationSetName" in params:
                name = params["ConfigurationSetName"]
                calls.add(AwsCall("ses:SendEmail", f"arn:aws:ses:{region}:{account}:configuration-set/{name}"))
            return calls
        if service == "dynamodb" and operation in {"BatchWriteItem", "BatchGetItem"}:
            return {AwsCall(f"dynamodb:{operation}", self._table(table)) for table in params.get("RequestItems", {})}
        action = _BATCH_ACTIONS.get(f"{service}:{operation}", f"{service}:{operation}")
        return {AwsCall(action, self._resource(service, params))}

    def _table(self, name: str) -> str:
        return f"arn:aws:dynamodb:{self.stack.region}:{self.stack.account_id}:table/{name}"

    def _resource(self, service: str, params: dict[str, Any]) -> str:
        region, account = self.stack.region, self.stack.account_id
        if service == "dynamodb" and "TableName" in params:
            table = self._table(params["TableName"])
            return f"{table}/index/{params['IndexName']}" if "IndexName" in params else table
        if service == "sqs" and "QueueUrl" in params:
            return f"arn:aws:sqs:{region}:{account}:{params['QueueUrl'].rstrip('/').rsplit('/', 1)[-1]}"
        if service == "sqs" and "SourceArn" in params:  # StartMessageMoveTask: authorised on the source queue
            return str(params["SourceArn"])
        if service == "sns":
            # Publish to a phone number has no resource ("*"); to an endpoint or topic, its ARN.
            found = params.get("TargetArn") or params.get("TopicArn") or params.get("PlatformApplicationArn")
            return str(found) if found else "*"
        if service == "secretsmanager" and ("SecretId" in params or "Name" in params):  # Name: CreateSecret's
            secret = str(params.get("SecretId", params.get("Name")))
            # A name stands for its ARN, which AWS ends with "-" and six random characters.
            return (
                secret
                if secret.startswith("arn:")
                else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}-AbCdEf"
            )
        return "*"

    def _apigateway_resource(self, model: Any, params: dict[str, Any]) -> str:
        """`arn:aws:apigateway:<region>::/usageplans/<id>/keys`: the request's path, its parameters filled in."""
        path = str(model.http["requestUri"]).split("?", 1)[0]
        for name, shape in model.input_shape.members.items():
            location_name = shape.serialization.get("name", name)
            if shape.serialization.get("location") == "uri" and name in params:
                path = path.replace("{" + location_name + "}", str(params[name]))
        return f"arn:aws:apigateway:{self.stack.region}::{path}"

    def actions(self) -> set[str]:
        return {call.action for call in self.calls}

    def made(self, action: str) -> list[dict[str, Any]]:
        """The parameters of every request of `action`, in order."""
        with self._lock:
            return [params for name, params in self.requests if name == action]


def role_statements(stack: Stack, function_logical_id: str) -> list[dict[str, Any]]:
    """Every Allow statement of the function's execution role, intrinsic functions resolved."""
    role = stack.resources[f"{function_logical_id}Role"]["Properties"]
    statements: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        document = stack.resolve(policy["PolicyDocument"])
        statements.extend(s for s in document["Statement"] if s.get("Effect") == "Allow")
    return statements


def _as_list(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def allows(statements: list[dict[str, Any]], call: AwsCall) -> bool:
    for statement in statements:
        actions = _as_list(statement.get("Action", []))
        resources = _as_list(statement.get("Resource", []))
        if any(fnmatch.fnmatchcase(call.action, pattern) for pattern in actions) and any(
            fnmatch.fnmatchcase(call.resource, pattern) for pattern in resources
        ):
            return True
    return False


def denied_calls(stack: Stack, function_logical_id: str, calls: set[AwsCall]) -> list[AwsCall]:
    """The recorded calls the function's policy would refuse in AWS, sorted."""
    statements = role_statements(stack, function_logical_id)
    return sorted((call for call in calls if not allows(statements, call)), key=lambda c: (c.action, c.resource))
