"""Provider credentials from Secrets Manager, through Powertools' parameters utility, cached.

Each provider gets a callable that answers the secret's JSON. Powertools caches the value for
`max_age` seconds per execution environment, so a busy sender reads each secret about once every five
minutes, and a rotated secret is in use within that time without a redeploy. Locally the runtime
creates the secrets in the embedded AWS, so this same code path runs there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from notifications import aws

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretUnreadable(RuntimeError):
    """The secret could not be read, or is not a JSON object (no value is ever part of the message)."""


class ProviderSecrets:
    """Reads JSON secrets by name, each cached for `max_age_seconds` (thread-safe enough: a race reads twice)."""

    def __init__(self, max_age_seconds: int, client: SecretsManagerClient | None = None) -> None:
        self._max_age = max_age_seconds
        self._provider = SecretsProvider(boto3_client=client or aws.client("secretsmanager"))

    def json(self, name: str) -> Callable[[], Mapping[str, Any]]:
        """A callable answering secret `name` as a dict; it raises `SecretUnreadable` when it cannot."""

        def read() -> Mapping[str, Any]:
            try:
                value = self._provider.get(name, max_age=self._max_age, transform="json")
            except Exception as error:  # noqa: BLE001 - Powertools wraps and re-raises many kinds
                raise SecretUnreadable(f"secret {name} unreadable ({type(error).__name__})") from error
            if not isinstance(value, dict):
                raise SecretUnreadable(f"secret {name} is not a JSON object")
            return value

        return read
