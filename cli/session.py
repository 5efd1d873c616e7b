"""What every command gets: the resolved target, an HTTP client for it, and the clocks (injectable for tests).

Tests pass a `Dependencies` as Click's context object (`CliRunner().invoke(app, args, obj=Dependencies(...))`);
the root callback turns it into the `Session` the commands read with `session(ctx)`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cli.errors import ApiError
from cli.http import Answer, HeraldHttp
from cli.target import KeyRole, StackReader, Target, TargetOptions, default_stack_reader

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import typer

DEFAULT_TIMEOUT_SECONDS = 10.0
NO_SUCH_ROUTE = "No such route"  # the gateway's 404 for a route the API does not have (template.yaml)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Dependencies:
    """The outside world, with real defaults: environment, AWS for --stack, and the clocks."""

    env: Mapping[str, str] | None = None  # None: os.environ when the command runs
    stack_reader: Callable[[str | None, str | None], StackReader] = default_stack_reader
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = _utc_now


@dataclass
class Session:
    """One invocation's target and tools."""

    target: Target
    deps: Dependencies
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    _http: HeraldHttp | None = field(default=None, init=False, repr=False)

    @classmethod
    def start(cls, options: TargetOptions, deps: Dependencies, *, timeout: float) -> Session:
        env = os.environ if deps.env is None else deps.env
        return cls(Target(options, env=env, stack_reader=deps.stack_reader), deps, timeout)

    @property
    def http(self) -> HeraldHttp:
        if self._http is None:
            self._http = HeraldHttp(self.target.url, timeout=self.timeout)
        return self._http

    def call(
        self,
        role: KeyRole,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int | None] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One request with this role's key; `ApiError` for an error answer, `Unreachable` for none."""
        key = self.target.require_key(role)
        answer = self.http.request(method, path, key=key, body=body, query=query, headers=headers, timeout=timeout)
        try:
            return answer.ok_or_raise()
        except ApiError as error:
            if error.status == 404 and error.message == NO_SUCH_ROUTE:  # API Gateway's answer, not the function's
                error.details.append(f"{self.target.url} does not serve {method} {path}: an older Herald?")
            raise


def session(ctx: typer.Context) -> Session:
    """The session the root callback stored on the context."""
    found = ctx.find_object(Session)
    if found is None:  # only if a command is invoked without the root callback
        raise RuntimeError("herald: no session; invoke commands through cli.main.app")
    return found
