"""Settings of the local runtime, each overridable by an environment variable.

========================== ================= ===============================================================
Variable                   Default           Meaning
========================== ================= ===============================================================
HERALD_API_PORT            3000              Port of the emulated API Gateway on 127.0.0.1
HERALD_AWS_PORT            4566              Port of the embedded AWS (moto's server) on 127.0.0.1
HERALD_SANDBOX_PORT        4010              Port of the sandbox providers (SendGrid, Twilio, FCM) on 127.0.0.1
HERALD_API_KEY             local-dev-key     The default client's key (HeraldApiApiKey), sent in ``x-api-key``
HERALD_ADMIN_API_KEY       local-admin-key   The admin key (only /admin/* routes take it)
WEBHOOK_SIGNING_SECRET     (the local one)   The ready client's ``whsec_`` secret: webhooks are signed with it, and
                                             the example receiver checks it (stored in the embedded Secrets Manager)
HERALD_POLLERS_PER_QUEUE   1                 Concurrent pollers per SQS event source mapping
HERALD_FUNCTION_CONCURRENCY 1                Concurrent invocations per function (1 = one execution environment,
                                             needed while handlers keep per-invocation state at module level)
HERALD_POLL_WAIT_SECONDS   1                 SQS long-poll wait of each poller receive (0-20); bounds shutdown time
HERALD_HEALTH_INTERVAL     5                 Interval of scheduled functions (e.g. the health monitor), instead of
                                             their schedule expression (seconds, 1-3600)
HERALD_RESOURCE_PREFIX     herald-local      Prefix of local physical names: ``<prefix>-<LogicalId>`` (unless
                                             the template names the resource)
HERALD_REGION              us-east-1         Region of the embedded AWS and of every ARN
HERALD_LOG_LEVEL_RUNTIME   INFO              Log level of the runtime's own logs (handlers use POWERTOOLS_LOG_LEVEL)
HERALD_<PARAMETER>         template default  Any template parameter, e.g. HERALD_MAX_RECEIVE_COUNT,
                                             HERALD_SENDER_BATCH_SIZE, HERALD_API_THROTTLE_RATE_LIMIT
                                             (see ``local.aws.template.parameter_env_name``)
========================== ================= ===============================================================

Both keys are created in the embedded AWS (API Gateway keys on the usage plan), beside any key the admin API
creates; a value shorter than API Gateway's 20 characters is stored padded (``local.apigateway.keys``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_API_KEY = "local-dev-key"
DEFAULT_ADMIN_API_KEY = "local-admin-key"
# The local runtime's webhook secret ("herald-local-development-secret"): known, so examples verify. A
# deployment generates its own at deploy time (template.yaml, WebhookSigningSecret).
DEFAULT_WEBHOOK_SIGNING_SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = 65535) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from error
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "")
    return value if value else default


@dataclass(frozen=True)
class LocalSettings:
    """Everything the local runtime lets a user tune; read once at start-up."""

    api_port: int = 3000
    aws_port: int = 4566
    sandbox_port: int = 4010
    api_key: str = DEFAULT_API_KEY
    admin_api_key: str = DEFAULT_ADMIN_API_KEY
    webhook_signing_secret: str = DEFAULT_WEBHOOK_SIGNING_SECRET
    pollers_per_queue: int = 1
    function_concurrency: int = 1
    poll_wait_seconds: int = 1
    schedule_interval_seconds: int = 5  # HERALD_HEALTH_INTERVAL: every scheduled function, whatever its expression
    resource_prefix: str = "herald-local"
    region: str = "us-east-1"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalSettings:
        """Read every ``HERALD_*`` runtime setting from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        settings = cls(
            api_port=_int(env, "HERALD_API_PORT", 3000, minimum=1),
            aws_port=_int(env, "HERALD_AWS_PORT", 4566, minimum=1),
            sandbox_port=_int(env, "HERALD_SANDBOX_PORT", 4010, minimum=1),
            api_key=_str(env, "HERALD_API_KEY", DEFAULT_API_KEY),
            admin_api_key=_str(env, "HERALD_ADMIN_API_KEY", DEFAULT_ADMIN_API_KEY),
            webhook_signing_secret=_str(env, "WEBHOOK_SIGNING_SECRET", DEFAULT_WEBHOOK_SIGNING_SECRET),
            pollers_per_queue=_int(env, "HERALD_POLLERS_PER_QUEUE", 1, minimum=1, maximum=64),
            function_concurrency=_int(env, "HERALD_FUNCTION_CONCURRENCY", 1, minimum=1, maximum=256),
            poll_wait_seconds=_int(env, "HERALD_POLL_WAIT_SECONDS", 1, minimum=0, maximum=20),
            schedule_interval_seconds=_int(env, "HERALD_HEALTH_INTERVAL", 5, minimum=1, maximum=3600),
            resource_prefix=_str(env, "HERALD_RESOURCE_PREFIX", "herald-local"),
            region=_str(env, "HERALD_REGION", "us-east-1"),
            log_level=_str(env, "HERALD_LOG_LEVEL_RUNTIME", "INFO").upper(),
        )
        if len({settings.api_port, settings.aws_port, settings.sandbox_port}) != 3:
            raise ValueError("HERALD_API_PORT, HERALD_AWS_PORT and HERALD_SANDBOX_PORT must differ")
        if settings.api_key == settings.admin_api_key:
            raise ValueError("HERALD_API_KEY and HERALD_ADMIN_API_KEY must differ")
        return settings
