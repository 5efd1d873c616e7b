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
        service = model.service_model.signing_name  # "ses" for the sesv2 client, as IAM names it
        call = AwsCall(f"{service}:{model.name}", self._resource(service, params))
        with self._lock:
            self.calls.add(call)
            self.requests.append((call.action, dict(params)))

    def _resource(self, service: str, params: dict[str, Any]) -> str:
        region, account = self.stack.region, self.stack.account_id
        if service == "dynamodb" and "TableName" in params:
            return f"arn:aws:dynamodb:{region}:{account}:table/{params['TableName']}"
        if service == "sqs" and "QueueUrl" in params:
            return f"arn:aws:sqs:{region}:{account}:{params['QueueUrl'].rstrip('/').rsplit('/', 1)[-1]}"
        return "*"

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
