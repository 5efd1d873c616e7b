"""Start and stop moto's server, Herald's embedded AWS, as a child process on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from local import REPO_ROOT

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def aws_environment(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment variables that point every boto3 client at the embedded AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto accepts any credentials
        "AWS_SESSION_TOKEN": "testing",
    }


@dataclass
class MotoServer:
    """moto's HTTP server in a child process, bound to 127.0.0.1 only.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    port: int
    host: str = LOOPBACK
    startup_timeout: float = 30.0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        env = {**os.environ, **aws_environment(self.url)}
        # moto's server must not itself be pointed at an endpoint: it is the endpoint.
        env.pop("AWS_ENDPOINT_URL", None)
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            # moto's server, with DynamoDB requests serialised (see local.aws.embedded_aws for why)
            [sys.executable, "-m", "local.aws.embedded_aws", "-H", self.host, "-p", str(self.port)],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"moto server exited with code {code} (is port {self.port} free?)")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):  # noqa: S310 - loopback URL
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.url} within {self.startup_timeout} s")

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback URL
            pass

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
