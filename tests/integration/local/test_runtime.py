"""The assembled runtime in-process, with fake handlers: environment, API, pollers, start and stop."""

from __future__ import annotations

import io
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.apigateway.keys import stored_key_value
from local.aws.moto_server import aws_environment, free_port
from local.lambda_.handlers import EnvironmentConflictError, FunctionTimeoutError, LocalFunction, merged_environment
from local.runtime import READY_LINE, Runtime
from local.settings import LocalSettings

if TYPE_CHECKING:
    from collections.abc import Callable


def test_runtime_serves_the_api_and_feeds_the_sender_from_the_queues(
    http: Callable[..., Any], wait_until: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given fake API and sender handlers that use the environment the template gives them
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    delivered: list[str] = []

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        sqs = boto3.client("sqs")  # credentials, region and endpoint all come from the runtime's environment
        sqs.send_message(QueueUrl=os.environ["STANDARD_QUEUE_URL"], MessageBody=event["body"])
        return {"statusCode": 202, "body": '{"status": "queued"}'}

    def sender(event: dict[str, Any], context: Any) -> dict[str, Any]:
        delivered.extend(record["body"] for record in event["Records"])
        return {"batchItemFailures": []}

    admin_callers: list[str] = []

    def admin(event: dict[str, Any], context: Any) -> dict[str, Any]:
        admin_callers.append(event["requestContext"]["identity"]["apiKeyId"])
        return {"statusCode": 200, "body": '{"clients": []}'}

    settings = LocalSettings(
        api_port=free_port(), aws_port=free_port(), api_key="k-1", admin_api_key="k-admin",
        resource_prefix=f"rt{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    out = io.StringIO()

    # When the runtime runs, a notification is posted right after start, and the operator lists clients
    handlers = {"ApiFunction": api, "SenderFunction": sender, "AdminFunction": admin}
    with Runtime(settings, handlers=handlers, out=out) as runtime:
        reply = http("POST", f"{runtime.api_url}/notifications", {"x-api-key": "k-1"}, b'{"n": 1}')
        admin_reply = http("GET", f"{runtime.api_url}/admin/clients", {"x-api-key": "k-admin"})
        wait_until(lambda: delivered, timeout=10)
        environment_while_running = dict(os.environ)
        key_ids = (runtime.api_key_id, runtime.admin_api_key_id)
        apigateway = boto3.client("apigateway", **_embedded_aws(runtime))
        keys = {key["id"]: key for key in apigateway.get_api_keys(includeValues=True)["items"]}

    # Then the request was accepted, the sender got it through the template's event source, and the
    # environment had the functions' variables plus the local settings; all of it is undone on stop
    assert reply.status == 202
    assert delivered == ['{"n": 1}']
    # The configured keys are keys of the embedded AWS (stored padded: shorter than API Gateway's 20 characters),
    # and the admin function saw the operator's key by its id there; the functions learn the ids from the template
    assert {keys[key_id]["value"] for key_id in key_ids} == {stored_key_value("k-1"), stored_key_value("k-admin")}
    assert admin_reply.status == 200
    assert admin_callers == [key_ids[1]]
    assert environment_while_running["ADMIN_CLIENT_ID"] == key_ids[1]
    assert environment_while_running["DEFAULT_CLIENT_ID"] == key_ids[0]
    assert environment_while_running["WEBHOOK_ALLOW_PRIVATE_TARGETS"] == "true"
    assert environment_while_running["HERALD_API_KEY"] == "k-1"
    assert environment_while_running["NOTIFICATIONS_TABLE"] == f"{settings.resource_prefix}-NotificationsTable"
    assert "AWS_ENDPOINT_URL" not in os.environ
    assert out.getvalue().rstrip().splitlines()[-1] == READY_LINE
    assert f"API             {runtime.api_url}" in out.getvalue()
    for port in (settings.api_port, settings.aws_port):
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(1)
            sock.connect(("127.0.0.1", port))


def _embedded_aws(runtime: Runtime) -> dict[str, str]:
    """boto3 client arguments for the runtime's embedded AWS."""
    environment = aws_environment(runtime.aws_endpoint, runtime.settings.region)
    return {
        "endpoint_url": runtime.aws_endpoint,
        "region_name": runtime.settings.region,
        "aws_access_key_id": environment["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": environment["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": environment["AWS_SESSION_TOKEN"],
    }


def test_runtime_key_ids_are_unknown_before_start() -> None:
    # Given a runtime not started
    runtime = Runtime(LocalSettings(api_port=free_port(), aws_port=free_port()))

    # When its key ids are asked for
    # Then it says the keys do not exist yet, rather than inventing ids
    with pytest.raises(RuntimeError, match="HeraldApiApiKey"):
        _ = runtime.api_key_id
    with pytest.raises(RuntimeError, match="AdminApiKey"):
        _ = runtime.admin_api_key_id


def test_two_functions_setting_one_variable_differently_is_an_error() -> None:
    # Given two functions that disagree on a variable
    functions = {
        name: LocalFunction(name, name, f"arn:{name}", "m.h", environment={"LOG_LEVEL": level})
        for name, level in (("A", "INFO"), ("B", "DEBUG"))
    }

    # When their environments are merged
    # Then the runtime refuses, naming the variable and both functions
    with pytest.raises(EnvironmentConflictError, match="LOG_LEVEL.*A.*B"):
        merged_environment(functions)


def test_settings_come_from_herald_environment_variables() -> None:
    # Given every runtime variable set
    env = {
        "HERALD_API_PORT": "3100", "HERALD_AWS_PORT": "4600", "HERALD_API_KEY": "a", "HERALD_ADMIN_API_KEY": "b",
        "HERALD_POLLERS_PER_QUEUE": "3", "HERALD_FUNCTION_CONCURRENCY": "2", "HERALD_POLL_WAIT_SECONDS": "0",
    }  # fmt: skip

    # When settings are read
    settings = LocalSettings.from_env(env)

    # Then each one is honoured, and nonsense is refused with the variable's name
    assert (settings.api_port, settings.aws_port, settings.api_key, settings.admin_api_key) == (3100, 4600, "a", "b")
    assert (settings.pollers_per_queue, settings.function_concurrency, settings.poll_wait_seconds) == (3, 2, 0)
    assert LocalSettings.from_env({}) == LocalSettings()
    with pytest.raises(ValueError, match="HERALD_POLLERS_PER_QUEUE"):
        LocalSettings.from_env({"HERALD_POLLERS_PER_QUEUE": "many"})


def test_invocation_longer_than_the_function_timeout_is_a_failure() -> None:
    # Given a function with a zero-second timeout and a handler that takes a little time
    function = LocalFunction(
        "Slow", "slow", "arn:slow", "m.h", timeout_seconds=0, handler=lambda e, c: time.sleep(0.01)
    )

    # When it is invoked
    # Then it fails as Lambda would have stopped it
    with pytest.raises(FunctionTimeoutError):
        function.invoke({})
