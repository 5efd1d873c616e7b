"""The whole of Herald on one machine: embedded AWS, resources from the template, API, pollers and schedules.

Usage::

    with Runtime() as herald:            # or herald = Runtime().start(); ...; herald.stop()
        requests.get(f"{herald.api_url}/health/live")

``Runtime(handlers={"SenderFunction": fake})`` replaces a function's handler (tests); otherwise each
handler is imported from the template's ``Handler`` after the functions' environment is in place.
Scheduled functions run every ``HERALD_HEALTH_INTERVAL`` seconds; ``run_schedules_once()`` runs them now (tests).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

import boto3

from local.apigateway.gateway import ApiGateway
from local.apigateway.server import ApiServer
from local.aws.moto_server import MotoServer, aws_environment
from local.aws.provision import Provisioned, provision
from local.aws.template import TEMPLATE_PATH, Stack
from local.lambda_.handlers import load_functions, merged_environment
from local.lambda_.pollers import SqsPoller, sqs_event_sources
from local.lambda_.schedules import Scheduler, TickOutcome, scheduled_functions
from local.logs import get_logger
from local.provider_setup import LocalProviders, set_up_providers
from local.sandbox import Sandbox
from local.settings import LocalSettings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from local.lambda_.handlers import Handler, LocalFunction

READY_LINE = "Herald is ready"
WEBHOOK_SECRET = "WebhookSigningSecret"  # the template's secret holding the webhook signing key
DEFAULT_CLIENT_KEY = "HeraldApiApiKey"  # the template's key of the default client (settings.api_key)
ADMIN_KEY = "AdminApiKey"  # the template's operator key (settings.admin_api_key)
LOCAL_ONLY_ENVIRONMENT = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # webhooks to 127.0.0.1 sandboxes
    "REDRIVE_WITH_MOVE_TASK": "false",  # moto has no SQS move tasks: an unfiltered redrive goes message by message
    # moto answers each receive from the whole queue: no long polling is needed to see every dead letter, and
    # the monitor's reconciliation (every few seconds here) holds them for milliseconds, not a second.
    "DEAD_LETTER_WAIT_SECONDS": "0",
}

logger = get_logger("runtime")


class AwsClients:
    """boto3 clients for the embedded AWS, whatever the process environment says."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        environment = aws_environment(endpoint_url, region)
        self._session = boto3.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=environment["AWS_SESSION_TOKEN"],
            region_name=region,
        )
        self.endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self.endpoint_url)


class Runtime:
    """Start and stop everything; usable as a context manager. Start it once per process."""

    def __init__(
        self,
        settings: LocalSettings | None = None,
        handlers: Mapping[str, Handler] | None = None,
        template_path: Path = TEMPLATE_PATH,
        parameter_overrides: Mapping[str, str] | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings or LocalSettings.from_env()
        self._handlers = dict(handlers or {})
        self._template_path = template_path
        self._overrides = dict(parameter_overrides or {})
        self._out = out
        self.moto = MotoServer(port=self.settings.aws_port)
        self.sandbox = Sandbox(port=self.settings.sandbox_port, sendgrid_events_url=self.sendgrid_events_url)
        self.providers = LocalProviders(parameters={}, environment={})
        self.stack: Stack | None = None
        self.provisioned = Provisioned()
        self.functions: dict[str, LocalFunction] = {}
        self.api_server: ApiServer | None = None
        self.pollers: list[SqsPoller] = []
        self.scheduler: Scheduler | None = None
        self.clients: AwsClients | None = None
        self._saved_environment: dict[str, str | None] = {}

    # ------------------------------------------------------------------ facts
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.sandbox_port}"

    @property
    def sendgrid_events_url(self) -> str:
        return f"{self.api_url}/provider-events/sendgrid"

    @property
    def aws_endpoint(self) -> str:
        return self.moto.url

    @property
    def api_key_id(self) -> str:
        """Id of the default client's key (``HeraldApiApiKey``) in the embedded AWS: its requests' ``apiKeyId``."""
        return self._key_id(DEFAULT_CLIENT_KEY)

    @property
    def admin_api_key_id(self) -> str:
        """Id of the operator's key (``AdminApiKey``) in the embedded AWS."""
        return self._key_id(ADMIN_KEY)

    def _key_id(self, logical_id: str) -> str:
        key_id = self.provisioned.api_keys.get(logical_id)
        if key_id is None:
            raise RuntimeError(f"{logical_id} is not in the embedded AWS: start the runtime first")
        return key_id

    @property
    def environment(self) -> dict[str, str]:
        """What the functions see on top of the process environment (template variables + local settings)."""
        return {
            **merged_environment(self.functions),
            **LOCAL_ONLY_ENVIRONMENT,
            **self.providers.environment,
            **aws_environment(self.aws_endpoint, self.settings.region),
            "HERALD_API_KEY": self.settings.api_key,
            "HERALD_ADMIN_API_KEY": self.settings.admin_api_key,
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Runtime:
        """Start the embedded AWS, create the resources, load the functions, serve the API, start polling."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._announce()
        return self

    def _start(self) -> None:
        settings = self.settings
        self.moto.start()
        self.clients = AwsClients(self.moto.url, settings.region)
        self.sandbox.start()
        self.providers = set_up_providers(
            self.clients, self.sandbox.credentials, sandbox_url=self.sandbox.url, api_url=self.api_url
        )
        overrides = {**self.providers.parameters, **self._overrides}
        stack = Stack.from_file(self._template_path, overrides, settings.region)
        stack.stack_name = settings.resource_prefix
        self.stack = stack
        # The ready client signs with the known local secret, stored as the template's secret holds it.
        webhook_key = {"key": settings.webhook_signing_secret.removeprefix("whsec_")}
        self.provisioned = provision(
            stack,
            self.clients,
            settings.resource_prefix,
            secret_values={WEBHOOK_SECRET: json.dumps(webhook_key)},
            # The documented keys, held by the embedded AWS like any key the admin function creates.
            api_key_values={DEFAULT_CLIENT_KEY: settings.api_key, ADMIN_KEY: settings.admin_api_key},
        )
        self.functions = load_functions(stack, self._handlers, settings.function_concurrency)
        self._apply_environment(self.environment)
        for function in self.functions.values():
            function.load()  # import after the environment is in place: handlers read settings at import
        gateway = ApiGateway.from_stack(
            stack,
            {function.arn: function.invoke for function in self.functions.values()},
            self.clients.client("apigateway"),
            port=settings.api_port,
        )
        self.api_server = ApiServer(gateway, settings.api_port).start()
        sqs = self.clients.client("sqs")
        for source in sqs_event_sources(stack):
            poller = SqsPoller(
                source,
                self.functions[source.function_logical_id].invoke,
                sqs,
                concurrency=settings.pollers_per_queue,
                wait_seconds=settings.poll_wait_seconds,
            )
            self.pollers.append(poller.start())
        self.scheduler = Scheduler(
            scheduled_functions(stack),
            {logical_id: function.invoke for logical_id, function in self.functions.items()},
            settings.schedule_interval_seconds,
        )
        # Each scheduled function runs once before the runtime says it is ready (so the health views have a
        # snapshot from the start, as a deployment has one within its first minute), then on the interval.
        self.scheduler.tick()
        self.scheduler.start()
        logger.info(
            "started",
            extra={
                "api": self.api_url,
                "aws": self.aws_endpoint,
                "pollers": len(self.pollers),
                "schedules": len(self.scheduler.schedules),
            },
        )

    def run_schedules_once(self) -> dict[str, TickOutcome]:
        """Run every scheduled function once, now, in this thread (as a tick would): outcomes by schedule.

        A schedule whose background run is still going is skipped (``TickOutcome.SKIPPED``); tests that drive the
        schedules by hand set ``schedule_interval_seconds`` high, so that no background tick comes in between.
        """
        if self.scheduler is None:
            raise RuntimeError("the runtime is not running: start it first")
        return self.scheduler.tick()

    def stop(self) -> None:
        """Stop the scheduler, pollers (finishing the batch in hand), the API server and the embedded AWS (idempotent).

        The scheduler stops within a second; a scheduled run still going after that is left to finish on its own.
        """
        if self.scheduler is not None:
            self.scheduler.request_stop()
        for poller in self.pollers:
            poller.request_stop()
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        if self.api_server is not None:
            self.api_server.stop()
            self.api_server = None
        self.sandbox.stop()
        self.moto.stop()
        self._restore_environment()

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    def _apply_environment(self, variables: dict[str, str]) -> None:
        for key, value in variables.items():
            self._saved_environment.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_environment(self) -> None:
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environment.clear()

    def _announce(self) -> None:
        out = self._out or sys.stdout
        settings = self.settings
        lines = [
            "Herald is running on this machine (embedded AWS, no Docker, no AWS account)",
            f"  API             {self.api_url}",
            f"  API key         {settings.api_key}   (send it as the x-api-key header)",
            f"  Admin API key   {settings.admin_api_key}",
            f"  AWS endpoint    {self.aws_endpoint}   (AWS_ENDPOINT_URL; any credentials, region {settings.region})",
            f"  Sandboxes       {self.sandbox_url}   (SendGrid, Twilio, FCM: GET /_messages, POST /_faults)",
            "  Queues",
            *(f"    {logical:<22} {url}" for logical, url in self.provisioned.queues.items()),
            "  Tables",
            *(f"    {logical:<22} {name}" for logical, name in self.provisioned.tables.items()),
            "  Event sources",
            *(
                f"    {p.source.logical_id:<30} {p.source.queue_arn.rsplit(':', 1)[-1]} -> "
                f"{p.source.function_logical_id} (batch {p.source.batch_size}, x{p.concurrency})"
                for p in self.pollers
            ),
            "  Schedules",
            *self._schedule_lines(),
            "Press Ctrl-C (or send SIGTERM) to stop.",
            READY_LINE,
        ]
        out.write("\n".join(lines) + "\n")
        out.flush()

    def _schedule_lines(self) -> list[str]:
        if self.scheduler is None:
            return []
        every = self.scheduler.interval_seconds
        return [  # the interval, not the expression, says when each runs locally (HERALD_HEALTH_INTERVAL)
            f"    {s.logical_id:<30} {s.expression} -> {s.function_logical_id} (locally every {every:g} s)"
            for s in self.scheduler.schedules
        ]
