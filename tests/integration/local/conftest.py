"""The local runtime's pieces against a real moto server (a child process on loopback)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from local.aws.moto_server import MotoServer, free_port
from local.aws.provision import Provisioned, name_emulated_resources, provision
from local.aws.template import Stack
from local.runtime import AwsClients

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer(port=free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def aws(moto_server: MotoServer) -> AwsClients:
    return AwsClients(moto_server.url, REGION)


@dataclass
class ProvisionedStack:
    stack: Stack
    provisioned: Provisioned
    prefix: str


@pytest.fixture
def make_stack(aws: AwsClients) -> Callable[..., ProvisionedStack]:
    """Provision the template into moto under a fresh prefix (so tests never share a queue).

    ``api_key_values`` gives template API keys their values; one moto holds every test's keys, and API Gateway
    refuses a value twice, so make them with :func:`unique_key_value`.
    """

    def make(api_key_values: Mapping[str, str] | None = None, **parameters: str) -> ProvisionedStack:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        stack = Stack.from_file(overrides=parameters)
        stack.stack_name = prefix
        return ProvisionedStack(stack, provision(stack, aws, prefix, api_key_values=api_key_values), prefix)

    return make


def unique_key_value(label: str) -> str:
    """An API key value no other test uses (API Gateway keeps values unique within an account)."""
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def offline_stack() -> Callable[..., Stack]:
    """The translated template with local ids for what the runtime emulates (no AWS needed)."""

    def make(**parameters: str) -> Stack:
        stack = Stack.from_file(overrides=parameters)
        name_emulated_resources(stack)
        return stack

    return make


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> list[str]:
        """Every value of one header, in order (names compared case-insensitively)."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


def http(method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> Reply:
    """One HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            return Reply(response.status, list(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, list(error.headers.items()), error.read())


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture(name="http")
def http_fixture() -> Callable[..., Reply]:
    return http


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    return wait_until
