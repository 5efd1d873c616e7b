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


class SecretMissing(SecretUnreadable):
    """There is no secret of that name (Secrets Manager's ResourceNotFoundException)."""


def _not_found(error: BaseException) -> bool:
    """Whether Secrets Manager said there is no such secret, anywhere in the chain Powertools wrapped."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ProviderSecrets:
    """Reads JSON secrets by name, each cached for `max_age_seconds` (thread-safe enough: a race reads twice)."""

    def __init__(self, max_age_seconds: int, client: SecretsManagerClient | None = None) -> None:
        self._max_age = max_age_seconds
        self._provider = SecretsProvider(boto3_client=client or aws.client("secretsmanager"))

    def json(self, name: str, *, max_age_seconds: int | None = None) -> Callable[[], Mapping[str, Any]]:
        """A callable answering secret `name` as a dict (cached `max_age_seconds`, else the cache's age); it
        raises `SecretUnreadable` (`SecretMissing` when there is no such secret) when it cannot."""
        max_age = self._max_age if max_age_seconds is None else max_age_seconds

        def read() -> Mapping[str, Any]:
            try:
                value = self._provider.get(name, max_age=max_age, transform="json")
            except Exception as error:  # noqa: BLE001 - Powertools wraps and re-raises many kinds
                kind = SecretMissing if _not_found(error) else SecretUnreadable
                raise kind(f"secret {name} unreadable ({type(error).__name__})") from error
            if not isinstance(value, dict):
                raise SecretUnreadable(f"secret {name} is not a JSON object")
            return value

        return read
