"""Which Herald `herald` talks to, with which key: options, environment, --stack, and the local default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from cli.errors import Unreachable, UsageProblem
from cli.session import Dependencies
from cli.target import Boto3StackReader, KeyRole, Target, TargetOptions
from local.settings import DEFAULT_ADMIN_API_KEY, DEFAULT_API_KEY

if TYPE_CHECKING:
    from tests.unit.cli.conftest import FakeHerald, Herald


class FakeStack:
    """A deployed stack's outputs and API keys, counting what the CLI reads."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self._outputs = outputs
        self.keys = {"key-id-client": "client-value", "key-id-admin": "admin-value"}
        self.reads: list[str] = []

    def outputs(self, stack: str) -> dict[str, str]:
        self.reads.append(f"outputs:{stack}")
        return self._outputs

    def api_key_value(self, key_id: str) -> str:
        self.reads.append(f"key:{key_id}")
        return self.keys[key_id]


def stack_outputs(url: str = "https://abc.execute-api.eu-west-1.amazonaws.com/prod") -> dict[str, str]:
    return {"ApiUrl": url, "ApiKeyId": "key-id-client", "AdminApiKeyId": "key-id-admin"}


def target(options: TargetOptions, env: dict[str, str] | None = None, stack: FakeStack | None = None) -> Target:
    return Target(options, env=env or {}, stack_reader=lambda region, profile: stack or FakeStack({}))


def test_the_default_target_is_the_local_runtime_with_its_keys() -> None:
    # Given: no option and no variable
    resolved = target(TargetOptions())

    # When / Then: the local runtime on 127.0.0.1:3000 with the local keys (local/settings.py)
    assert resolved.url == "http://127.0.0.1:3000"
    assert resolved.key(KeyRole.CLIENT) == DEFAULT_API_KEY
    assert resolved.key(KeyRole.ADMIN) == DEFAULT_ADMIN_API_KEY


def test_herald_api_port_moves_the_local_target() -> None:
    # Given: the runtime's own port variable
    resolved = target(TargetOptions(), env={"HERALD_API_PORT": "3917"})

    # When / Then
    assert resolved.url == "http://127.0.0.1:3917"


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-1"])
def test_a_bad_herald_api_port_is_a_usage_problem(port: str) -> None:
    # Given: a port that is no port
    resolved = target(TargetOptions(), env={"HERALD_API_PORT": port})

    # When / Then
    with pytest.raises(UsageProblem, match="HERALD_API_PORT"):
        _ = resolved.url


def test_a_given_url_gets_no_local_key_and_loses_its_trailing_slash() -> None:
    # Given: a URL, even on this machine, and no key
    resolved = target(TargetOptions(url="http://127.0.0.1:4000/prod/"))

    # When / Then: the local keys go only to the default target
    assert resolved.url == "http://127.0.0.1:4000/prod"
    assert resolved.key(KeyRole.CLIENT) is None
    with pytest.raises(UsageProblem, match="--admin-key"):
        resolved.require_key(KeyRole.ADMIN)


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://", "file:///etc/passwd"])
def test_a_url_that_is_not_http_is_a_usage_problem(url: str) -> None:
    with pytest.raises(UsageProblem, match="http"):
        _ = target(TargetOptions(url=url)).url


def test_a_stack_gives_the_url_and_keys_read_only_when_needed() -> None:
    # Given: a stack with Herald's outputs
    stack = FakeStack(stack_outputs())
    resolved = target(TargetOptions(stack="herald"), stack=stack)

    # When: only the URL and the admin key are needed
    url = resolved.url
    admin = resolved.key(KeyRole.ADMIN)

    # Then: the outputs are read once, and only the admin key's value
    assert url == "https://abc.execute-api.eu-west-1.amazonaws.com/prod"
    assert admin == "admin-value"
    assert stack.reads == ["outputs:herald", "key:key-id-admin"]


def test_explicit_options_win_over_the_stack() -> None:
    # Given: a stack, and a URL and client key given
    stack = FakeStack(stack_outputs())
    resolved = target(TargetOptions(stack="herald", url="https://other.example/v1", api_key="mine"), stack=stack)

    # When / Then: the given ones are used; the stack gives only what was not given
    assert resolved.url == "https://other.example/v1"
    assert resolved.key(KeyRole.CLIENT) == "mine"
    assert resolved.key(KeyRole.ADMIN) == "admin-value"


def test_a_stack_without_herald_outputs_is_a_usage_problem() -> None:
    resolved = target(TargetOptions(stack="not-herald"), stack=FakeStack({"Other": "x"}))
    with pytest.raises(UsageProblem, match="no output ApiUrl"):
        _ = resolved.url


class FakeCloudFormation:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def describe_stacks(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        outputs = [{"OutputKey": key, "OutputValue": value} for key, value in stack_outputs().items()]
        return {"Stacks": [{"StackName": kwargs["StackName"], "Outputs": outputs}]}


class FakeApiGateway:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def get_api_key(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"id": kwargs["apiKey"], "value": "the-key-value"}


def test_the_boto3_reader_reads_outputs_and_asks_for_key_values() -> None:
    # Given: CloudFormation and API Gateway clients
    cloudformation, apigateway = FakeCloudFormation(), FakeApiGateway()
    reader = Boto3StackReader(cloudformation=cloudformation, apigateway=apigateway)

    # When
    outputs = reader.outputs("herald")
    value = reader.api_key_value("key-id-admin")

    # Then: DescribeStacks by name, and GetApiKey with its value included
    assert outputs["AdminApiKeyId"] == "key-id-admin"
    assert cloudformation.calls == [{"StackName": "herald"}]
    assert apigateway.calls == [{"apiKey": "key-id-admin", "includeValue": True}]
    assert value == "the-key-value"


def test_a_missing_stack_is_a_usage_problem_and_aws_out_of_reach_is_unreachable() -> None:
    # Given: CloudFormation saying the stack does not exist, then AWS out of reach
    missing = ClientError(
        {"Error": {"Code": "ValidationError", "Message": "Stack with id nope does not exist"}}, "DescribeStacks"
    )
    offline = EndpointConnectionError(endpoint_url="https://cloudformation.eu-west-1.amazonaws.com")

    # When / Then
    with pytest.raises(UsageProblem, match="does not exist"):
        Boto3StackReader(cloudformation=FakeCloudFormation(missing)).outputs("nope")
    with pytest.raises(Unreachable, match="cannot read stack"):
        Boto3StackReader(cloudformation=FakeCloudFormation(offline)).outputs("herald")


# ---------------------------------------------------------------------- through the command line
def test_the_stack_option_targets_the_stacks_url_with_its_client_key(herald: Herald, fake: FakeHerald) -> None:
    # Given: a stack whose ApiUrl is the fake Herald
    stack = FakeStack(stack_outputs(url=fake.url + "/"))
    fake.answer("GET", "/health/detailed", body={"mode": "NORMAL", "reason": "all well", "checks": []})

    # When
    result = herald(
        "health",
        target=["--stack", "herald", "--region", "eu-west-1"],
        deps=Dependencies(stack_reader=lambda region, profile: stack),
    )

    # Then: the stack's client key was sent to the stack's URL
    assert result.exit_code == 0, result.output
    [request] = fake.seen("GET", "/health/detailed")
    assert request.headers["x-api-key"] == "client-value"


def test_the_environment_variables_target_like_the_options(herald: Herald, fake: FakeHerald) -> None:
    # Given: the URL and admin key in the environment only
    fake.answer("GET", "/admin/clients", body={"clients": []})

    # When
    result = herald("clients", "list", target=[], env={"HERALD_API_URL": fake.url, "HERALD_ADMIN_API_KEY": "from-env"})

    # Then
    assert result.exit_code == 0, result.output
    assert fake.seen("GET", "/admin/clients")[0].headers["x-api-key"] == "from-env"


def test_an_admin_command_without_an_admin_key_is_bad_usage(herald: Herald, fake: FakeHerald) -> None:
    # Given: a URL and a client key, but no admin key
    # When
    result = herald("breakers", "list", target=["--url", fake.url, "--api-key", "client"])

    # Then: exit 2, saying how to give one, and nothing was sent
    assert result.exit_code == 2
    assert "--admin-key" in result.stderr
    assert fake.requests == []


def test_a_bad_local_port_variable_is_bad_usage(herald: Herald) -> None:
    result = herald("health", target=[], env={"HERALD_API_PORT": "not-a-port"})
    assert result.exit_code == 2
    assert "HERALD_API_PORT" in result.stderr
