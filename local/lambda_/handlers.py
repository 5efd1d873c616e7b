"""The template's Lambda functions, run in this process: environment, handler import and invocation.

Every ``AWS::Lambda::Function`` of the translated template becomes a :class:`LocalFunction`. The
runtime merges all their (resolved) environment variables into ``os.environ`` before importing any
handler, because handlers read their settings at import or on first call.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local import REPO_ROOT
from local.lambda_.context import LambdaContext
from local.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping

    from local.aws.template import Stack

Handler = Callable[[Any, Any], Any]
"""A Lambda handler: ``handler(event, context) -> response``."""

CODE_PATHS = (REPO_ROOT / "functions", REPO_ROOT / "layers" / "resilience")
"""Where Lambda would find the code: the function's CodeUri and the layer (both on ``sys.path`` locally)."""

DEFAULT_TIMEOUT_SECONDS = 3  # CloudFormation's default for AWS::Lambda::Function
DEFAULT_MEMORY_MB = 128

logger = get_logger("lambda")


class FunctionTimeoutError(Exception):
    """The handler ran longer than the function's Timeout; Lambda would have stopped it."""


class EnvironmentConflictError(ValueError):
    """Two functions set one environment variable to different values; one process cannot hold both."""


@dataclass
class LocalFunction:
    """One Lambda function of the template, invoked in-process.

    At most ``concurrency`` invocations run at once (each one an "execution environment"): handlers
    keep per-invocation state in module-level objects (routers, batch processors) as they may in Lambda.
    """

    logical_id: str
    name: str
    arn: str
    handler_path: str
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: dict[str, str] = field(default_factory=dict)
    handler: Handler | None = None
    concurrency: int = 1
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.concurrency)

    def load(self) -> Handler:
        """Import the handler named by the template (``package.module.function``) unless one was injected."""
        if self.handler is None:
            self.handler = import_handler(self.handler_path)
        return self.handler

    def invoke(self, event: Any) -> Any:
        """Run the handler on ``event`` as Lambda would; re-raise its exception, or a timeout as an error."""
        handler = self.load()
        with self._slots:
            context = LambdaContext.for_invocation(self.name, self.arn, self.memory_mb, self.timeout_seconds)
            started = time.monotonic()
            try:
                response = handler(event, context)  # an exception propagates: the caller logs it, as its service would
            finally:
                duration_ms = round((time.monotonic() - started) * 1000, 1)
                logger.debug(
                    "invocation finished",
                    extra={"function": self.logical_id, "request_id": context.aws_request_id, "ms": duration_ms},
                )
            if duration_ms > self.timeout_seconds * 1000:
                logger.error(
                    "function timed out",
                    extra={"function": self.logical_id, "request_id": context.aws_request_id, "ms": duration_ms},
                )
                raise FunctionTimeoutError(f"{self.logical_id} exceeded its {self.timeout_seconds} s timeout")
            return response


def add_code_paths() -> None:
    """Put the function code and the layer first on ``sys.path``, where Lambda would find them."""
    sys.path[:0] = [str(path) for path in CODE_PATHS if str(path) not in sys.path]


def import_handler(handler_path: str) -> Handler:
    """Import ``api.app.lambda_handler`` from the function code (``functions/``, the layer on ``sys.path``)."""
    add_code_paths()
    module_name, _, attribute = handler_path.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {handler_path!r} must be <module>.<function>")
    module = importlib.import_module(module_name)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ValueError(f"handler {handler_path!r}: {module_name} has no callable {attribute}")
    return handler  # type: ignore[no-any-return]


def function_name(stack: Stack, logical_id: str) -> str:
    """The local physical name of a function (what ``Ref`` returns)."""
    properties = stack.resources[logical_id].get("Properties", {})
    explicit = properties.get("FunctionName")
    return str(stack.resolve(explicit)) if explicit else f"{stack.stack_name}-{logical_id}"


def function_arn(stack: Stack, name: str) -> str:
    return f"arn:aws:lambda:{stack.region}:{stack.account_id}:function:{name}"


def load_functions(
    stack: Stack, handlers: Mapping[str, Handler] | None = None, concurrency: int = 1
) -> dict[str, LocalFunction]:
    """Every function of the stack, environment resolved (resources must be provisioned first).

    ``handlers`` maps logical ids to callables that replace the template's handler (tests inject fakes).
    """
    functions: dict[str, LocalFunction] = {}
    for logical_id, properties in stack.of_type("AWS::Lambda::Function").items():
        variables = stack.resolve(properties.get("Environment", {}).get("Variables", {}))
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=stack.physical_ids[logical_id],
            arn=stack.arns[logical_id],
            handler_path=str(properties["Handler"]),
            timeout_seconds=int(stack.resolve(properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
            memory_mb=int(stack.resolve(properties.get("MemorySize", DEFAULT_MEMORY_MB))),
            environment={str(key): str(value) for key, value in variables.items()},
            handler=(handlers or {}).get(logical_id),
            concurrency=concurrency,
        )
    return functions


def merged_environment(functions: Mapping[str, LocalFunction]) -> dict[str, str]:
    """The union of every function's variables; a variable two functions set differently is an error."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function in functions.values():
        for key, value in function.environment.items():
            if key in merged and merged[key] != value:
                raise EnvironmentConflictError(
                    f"environment variable {key} is {merged[key]!r} in {owner[key]} but {value!r} in "
                    f"{function.logical_id}; functions share one process locally, so give them one value "
                    "or different names"
                )
            merged[key] = value
            owner.setdefault(key, function.logical_id)
    return merged
