"""Start the whole local runtime (``python -m local``) once per session and share it with every e2e test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.aws.moto_server import aws_environment, free_port
from local.runtime import READY_LINE
from local.settings import DEFAULT_ADMIN_API_KEY, DEFAULT_API_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
RESOURCE_PREFIX = "herald-e2e"
REGION = "us-east-1"
# Short waits, so an outage and its recovery play out in seconds; the delivery rules are the defaults'.
E2E_ENVIRONMENT = {
    "RESILIENCE_BREAKER_WAIT_OPEN_SECONDS": "3",
    "RESILIENCE_BREAKER_CACHE_TTL_SECONDS": "1",
    "HERALD_RETRY_BASE_SECONDS": "1",
    "CLIENT_KEY_MAX_AGE_SECONDS": "1",  # a rotated signing key is in use within a second
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), every e2e test runs on one worker, so they share one runtime."""
    e2e = Path(__file__).parent
    for item in items:
        if e2e in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("e2e"))


@dataclass
class RunningHerald:
    """A running local Herald: where to reach it and how to look inside its embedded AWS."""

    base_url: str  # e.g. http://127.0.0.1:53123 (no stage prefix, as locally documented)
    sandbox_url: str  # the sandbox providers (SendGrid, Twilio, FCM)
    api_key: str
    admin_api_key: str
    aws_endpoint_url: str
    resource_prefix: str
    log_path: Path  # the runtime's stdout and stderr
    aws_env: dict[str, str] = field(default_factory=dict)  # AWS_* variables pointing at the embedded AWS

    def client(self, service: str) -> Any:
        """A boto3 client for the embedded AWS (e.g. to read queues, tables or sent email)."""
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.aws_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.aws_env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=self.aws_env["AWS_SESSION_TOKEN"],
        )

    def queue_url(self, logical_id: str) -> str:
        """URL of a template queue by logical id, e.g. ``queue_url("DeadLetterQueue")``."""
        url: str = self.client("sqs").get_queue_url(QueueName=f"{self.resource_prefix}-{logical_id}")["QueueUrl"]
        return url

    def table_name(self, logical_id: str) -> str:
        return f"{self.resource_prefix}-{logical_id}"

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _wait_until_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if READY_LINE in log_path.read_text(encoding="utf-8", errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    output = log_path.read_text(encoding="utf-8", errors="replace")
    _stop(process)
    state = f"exited with {process.returncode}" if process.returncode is not None else "timed out"
    pytest.fail(f"local runtime not ready ({state}); its output:\n{output}", pytrace=False)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean stop), then kill the runtime's own process group if it does not exit."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group holds only the runtime and its moto child
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def herald() -> Iterator[RunningHerald]:
    """The local runtime on free loopback ports, ready; stopped at the end of the session."""
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    api_port, aws_port, sandbox_port = sorted(ports)
    env = {
        **os.environ,
        "HERALD_API_PORT": str(api_port),
        "HERALD_AWS_PORT": str(aws_port),
        "HERALD_SANDBOX_PORT": str(sandbox_port),
        "HERALD_API_KEY": DEFAULT_API_KEY,
        "HERALD_ADMIN_API_KEY": DEFAULT_ADMIN_API_KEY,
        "HERALD_RESOURCE_PREFIX": RESOURCE_PREFIX,
        "PYTHONUNBUFFERED": "1",
        **E2E_ENVIRONMENT,
    }
    env.pop("AWS_ENDPOINT_URL", None)
    with tempfile.TemporaryDirectory(prefix="herald-e2e-") as directory:
        log_path = Path(directory) / "runtime.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [sys.executable, "-m", "local"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a hung stop can be cleaned up by group
            )
        try:
            _wait_until_ready(process, log_path)
            aws_endpoint = f"http://127.0.0.1:{aws_port}"
            yield RunningHerald(
                base_url=f"http://127.0.0.1:{api_port}",
                sandbox_url=f"http://127.0.0.1:{sandbox_port}",
                api_key=DEFAULT_API_KEY,
                admin_api_key=DEFAULT_ADMIN_API_KEY,
                aws_endpoint_url=aws_endpoint,
                resource_prefix=RESOURCE_PREFIX,
                log_path=log_path,
                aws_env=aws_environment(aws_endpoint, REGION),
            )
        finally:
            _stop(process)
