"""Which Herald the CLI talks to, and with which keys.

In order of precedence: `--url`, `--api-key`, `--admin-key` (or `HERALD_API_URL`, `HERALD_API_KEY`,
`HERALD_ADMIN_API_KEY`); then `--stack NAME`, whose CloudFormation outputs give `ApiUrl`, `ApiKeyId` and
`AdminApiKeyId` (key values read from API Gateway); then the local runtime, `http://127.0.0.1:$HERALD_API_PORT`
(3000) with its keys. The local keys are sent only to that default target, never to a URL given. A stack is read
lazily, once, and only for what the command needs.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from cli.errors import Unreachable, UsageProblem
from local.settings import DEFAULT_ADMIN_API_KEY, DEFAULT_API_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

LOCAL_HOST = "127.0.0.1"
DEFAULT_LOCAL_PORT = 3000
PORT_VARIABLE = "HERALD_API_PORT"
URL_OUTPUT = "ApiUrl"
API_KEY_OUTPUT = "ApiKeyId"
ADMIN_KEY_OUTPUT = "AdminApiKeyId"


class KeyRole(StrEnum):
    """Which key a command sends: a client's (notifications, health) or the admin key (`/admin/*`)."""

    CLIENT = "client"
    ADMIN = "admin"


@dataclass(frozen=True)
class TargetOptions:
    """The targeting options as given (each already merged with its environment variable by the CLI)."""

    url: str | None = None
    api_key: str | None = None
    admin_key: str | None = None
    stack: str | None = None
    region: str | None = None
    profile: str | None = None


class StackReader(Protocol):
    """What the CLI needs of AWS for `--stack`: the stack's outputs, and an API key's value."""

    def outputs(self, stack: str) -> dict[str, str]: ...

    def api_key_value(self, key_id: str) -> str: ...


class Boto3StackReader:
    """CloudFormation `DescribeStacks` and API Gateway `GetApiKey(includeValue=True)`, clients injectable."""

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        cloudformation: Any = None,
        apigateway: Any = None,
    ) -> None:
        self._region = region
        self._profile = profile
        self._cloudformation = cloudformation
        self._apigateway = apigateway

    def outputs(self, stack: str) -> dict[str, str]:
        try:
            answer = self._client("cloudformation").describe_stacks(StackName=stack)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationError":  # "Stack with id X does not exist"
                raise UsageProblem(f"no stack {stack!r}: {_aws_message(error)}") from error
            raise Unreachable(f"cannot read stack {stack!r}: {_aws_message(error)}") from error
        except (NoCredentialsError, NoRegionError) as error:
            raise UsageProblem(f"cannot read stack {stack!r}: {error}") from error
        except BotoCoreError as error:
            raise Unreachable(f"cannot read stack {stack!r}: {error}") from error
        stacks = answer.get("Stacks") or []
        if not stacks:
            raise UsageProblem(f"no stack {stack!r}")
        return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}

    def api_key_value(self, key_id: str) -> str:
        try:
            answer = self._client("apigateway").get_api_key(apiKey=key_id, includeValue=True)
        except ClientError as error:
            raise Unreachable(f"cannot read API key {key_id}: {_aws_message(error)}") from error
        except (NoCredentialsError, NoRegionError) as error:
            raise UsageProblem(f"cannot read API key {key_id}: {error}") from error
        except BotoCoreError as error:
            raise Unreachable(f"cannot read API key {key_id}: {error}") from error
        value: str = answer["value"]
        return value

    def _client(self, service: str) -> Any:
        given = self._cloudformation if service == "cloudformation" else self._apigateway
        if given is not None:
            return given
        import boto3  # noqa: PLC0415 - only --stack needs AWS, and boto3 takes a while to import

        client = boto3.Session(profile_name=self._profile, region_name=self._region).client(service)
        if service == "cloudformation":
            self._cloudformation = client
        else:
            self._apigateway = client
        return client


def default_stack_reader(region: str | None, profile: str | None) -> StackReader:
    return Boto3StackReader(region, profile)


class Target:
    """One Herald API and its keys, resolved from the options (see the module docstring)."""

    def __init__(
        self,
        options: TargetOptions,
        *,
        env: Mapping[str, str],
        stack_reader: Callable[[str | None, str | None], StackReader] = default_stack_reader,
    ) -> None:
        self._options = options
        self._env = env
        self._stack_reader_factory = stack_reader
        self._reader: StackReader | None = None
        self._outputs: dict[str, str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The API's base URL, without a trailing slash; `UsageProblem` when it is not an http(s) URL."""
        if self._url is None:
            if self._options.url:
                url = self._options.url
            elif self._options.stack:
                url = self._stack_output(URL_OUTPUT)
            else:
                url = f"http://{LOCAL_HOST}:{self._local_port()}"
            self._url = _checked_url(url)
        return self._url

    def key(self, role: KeyRole) -> str | None:
        """The key for this role, or None when there is none to send."""
        given = self._options.admin_key if role is KeyRole.ADMIN else self._options.api_key
        if given:
            return given
        if self._options.stack:
            return self._stack_reader().api_key_value(
                self._stack_output(ADMIN_KEY_OUTPUT if role is KeyRole.ADMIN else API_KEY_OUTPUT)
            )
        if not self._options.url:  # the default target, the local runtime: its well-known keys
            return DEFAULT_ADMIN_API_KEY if role is KeyRole.ADMIN else DEFAULT_API_KEY
        return None

    def require_key(self, role: KeyRole) -> str:
        key = self.key(role)
        if key:
            return key
        if role is KeyRole.ADMIN:
            raise UsageProblem(
                f"no admin key for {self.url}: pass --admin-key, set HERALD_ADMIN_API_KEY or use --stack"
            )
        raise UsageProblem(f"no API key for {self.url}: pass --api-key, set HERALD_API_KEY or use --stack")

    def _local_port(self) -> int:
        raw = self._env.get(PORT_VARIABLE, "")
        if not raw:
            return DEFAULT_LOCAL_PORT
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise UsageProblem(f"{PORT_VARIABLE} must be a port number (1-65535), got {raw!r}")
        return int(raw)

    def _stack_reader(self) -> StackReader:
        if self._reader is None:
            self._reader = self._stack_reader_factory(self._options.region, self._options.profile)
        return self._reader

    def _stack_output(self, name: str) -> str:
        stack = self._options.stack or ""
        if self._outputs is None:
            self._outputs = self._stack_reader().outputs(stack)
        value = self._outputs.get(name)
        if not value:
            raise UsageProblem(f"stack {stack!r} has no output {name}: is it a Herald stack?")
        return value


def _checked_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageProblem(f"the API URL must be http(s)://host[:port][/stage], got {url!r}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _aws_message(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return str(details.get("Message") or details.get("Code") or error)
