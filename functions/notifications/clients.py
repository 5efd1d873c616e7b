"""Clients: who may send, and whose key signs their webhooks.

A client is an API Gateway API key on the stack's usage plan (its id is the client id, the owner of every
notification it makes) plus a Standard Webhooks signing key in Secrets Manager at
``herald-clients/<client id>/webhook-signing``. `ClientRegistry` creates, lists, rotates and revokes them over
those two services; `ClientSigningKeys` is how the sender finds the key of a notification's client.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from notifications import signing
from notifications.errors import DeliveryError, DependencyUnavailable, HeraldError, UndeliverableError
from notifications.observability import logger
from notifications.providers.secrets import SecretMissing, SecretUnreadable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from notifications.clock import Clock
    from notifications.models import NotificationRecord
    from notifications.providers.secrets import ProviderSecrets

SECRET_PREFIX = "herald-clients/"  # the sender's and the admin function's policies name this prefix
KEY_NAME_PREFIX = "herald-client-"
CLIENT_KEY_SECONDS = 60  # how long a sender keeps a client's signing key (CLIENT_KEY_MAX_AGE_SECONDS)
_API_KEY_CHARS = 40


def signing_secret_name(client_id: str) -> str:
    return f"{SECRET_PREFIX}{client_id}/webhook-signing"


class ClientNotFound(HeraldError):
    code = "not_found"


class ClientConflict(HeraldError):
    """The change cannot be made to this client now (a protected client, a concurrent rotation)."""

    code = "conflict"


class ClientsUnavailable(DependencyUnavailable):
    """API Gateway or Secrets Manager failed; nothing was left half made."""


class Client(BaseModel):
    """A client as the admin API shows it (never its key or secret after creation)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    enabled: bool
    created_at: datetime | None = None


class CreatedClient(Client):
    """A new client with its credentials: the only time they are shown."""

    api_key: str
    webhook_signing_secret: str


class Rotation(BaseModel):
    """A started rotation: the new secret (shown once), and until when the previous one still signs."""

    model_config = ConfigDict(frozen=True)

    id: str
    webhook_signing_secret: str
    previous_secret_valid_until: datetime
    # Senders keep a key up to this long: webhooks carry the new signature from at most this many seconds on.
    new_secret_in_use_within_seconds: int = CLIENT_KEY_SECONDS


class ClientRegistry:
    """Clients over API Gateway (keys on one usage plan) and Secrets Manager (their signing keys).

    ``protected`` ids (the admin key, the stack's default client) can be read but not revoked here: the
    template owns them.
    """

    def __init__(
        self,
        usage_plan_id: str,
        *,
        apigateway: APIGatewayClient,
        secretsmanager: SecretsManagerClient,
        clock: Clock,
        protected: frozenset[str] = frozenset(),
    ) -> None:
        self._plan = usage_plan_id
        self._apigateway = apigateway
        self._secrets = secretsmanager
        self._clock = clock
        self._protected = protected

    def create(self, name: str) -> CreatedClient:
        """A new API key on the usage plan and its signing key; on any failure nothing is left behind."""
        value = secrets.token_hex(_API_KEY_CHARS // 2)
        secret = signing.new_secret_value()
        try:
            key = self._apigateway.create_api_key(
                name=f"{KEY_NAME_PREFIX}{uuid.uuid4().hex[:12]}", description=name, enabled=True, value=value
            )
        except (ClientError, BotoCoreError) as error:
            raise ClientsUnavailable("could not create the client's API key; try again") from error
        client_id = key["id"]
        try:  # nobody knows the key's value before it is returned, so the order of these two does not matter
            self._apigateway.create_usage_plan_key(usagePlanId=self._plan, keyId=client_id, keyType="API_KEY")
            self._secrets.create_secret(
                Name=signing_secret_name(client_id),
                Description="Herald client webhook signing key (the whsec_ secret is whsec_ + key)",
                SecretString=json.dumps(secret),
            )
        except (ClientError, BotoCoreError) as error:
            self._undo_create(client_id)
            raise ClientsUnavailable("could not finish creating the client; nothing was kept, try again") from error
        return CreatedClient(
            id=client_id,
            name=name,
            enabled=True,
            created_at=key.get("createdDate"),
            api_key=value,
            webhook_signing_secret=signing.SECRET_PREFIX + secret["key"],
        )

    def list(self) -> list[Client]:
        """Every client on the usage plan, oldest first."""
        on_plan = {key["id"] for key in self._plan_keys()}
        clients = [self._client(key) for key in self._api_keys() if key.get("id") in on_plan]
        return sorted(clients, key=lambda client: (client.created_at or datetime.min.replace(tzinfo=UTC), client.id))

    def get(self, client_id: str) -> Client:
        """The client, if its key is on the usage plan (ClientNotFound otherwise)."""
        if not _plausible_id(client_id):
            raise ClientNotFound("no client with this id")
        try:
            self._apigateway.get_usage_plan_key(usagePlanId=self._plan, keyId=client_id)
            key = self._apigateway.get_api_key(apiKey=client_id, includeValue=False)
        except ClientError as error:
            if _code(error) == "NotFoundException":
                raise ClientNotFound("no client with this id") from error
            raise ClientsUnavailable("could not read the client; try again") from error
        except BotoCoreError as error:
            raise ClientsUnavailable("could not read the client; try again") from error
        return self._client(dict(key))

    def rotate(self, client_id: str, *, grace_seconds: int) -> Rotation:
        """A new signing key; the current one keeps signing (beside it) for `grace_seconds`.

        The write is conditional on the version read: of two rotations at once, one wins and the other gets
        ClientConflict, so no secret handed out is lost.
        """
        self.get(client_id)
        name = signing_secret_name(client_id)
        try:
            current = self._secrets.get_secret_value(SecretId=name)
            stored = json.loads(current["SecretString"])
            value = signing.rotated(stored, now=self._clock(), grace_seconds=grace_seconds)
            # Secrets Manager has no compare-and-set, but a version token is: the same token with other
            # content is refused. Deriving it from the version read makes a concurrent rotation lose.
            token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}#{current['VersionId']}"))
            self._secrets.put_secret_value(SecretId=name, SecretString=json.dumps(value), ClientRequestToken=token)
        except ClientError as error:
            if _code(error) in {"ResourceExistsException", "InvalidRequestException"}:
                raise ClientConflict("another rotation of this client's secret happened at the same time") from error
            if _code(error) == "ResourceNotFoundException":
                raise ClientNotFound("this client has no signing secret") from error
            raise ClientsUnavailable("could not rotate the signing secret; try again") from error
        except BotoCoreError as error:
            raise ClientsUnavailable("could not rotate the signing secret; try again") from error
        except (ValueError, signing.InvalidSecret) as error:
            raise ClientConflict("the client's stored signing secret is not valid; it was left as it is") from error
        return Rotation(
            id=client_id,
            webhook_signing_secret=signing.SECRET_PREFIX + value["key"],
            previous_secret_valid_until=datetime.fromtimestamp(value["previous_until"], UTC),
        )

    def revoke(self, client_id: str) -> Client:
        """Delete the client's API key: its requests are refused from then on. Its signing key stays, so the
        notifications it already sent are still delivered, signed."""
        if client_id in self._protected:
            raise ClientConflict("this key belongs to the stack (the admin key or the default client); not revoked")
        client = self.get(client_id)
        try:
            self._apigateway.delete_api_key(apiKey=client_id)
        except ClientError as error:
            if _code(error) == "NotFoundException":
                raise ClientNotFound("no client with this id") from error
            raise ClientsUnavailable("could not revoke the client; try again") from error
        except BotoCoreError as error:
            raise ClientsUnavailable("could not revoke the client; try again") from error
        return client.model_copy(update={"enabled": False})

    # ------------------------------------------------------------------ helpers
    def _undo_create(self, client_id: str) -> None:
        """Delete the half-made client's key (which takes it off the plan); the secret is made last, so there is
        none to delete."""
        try:
            self._apigateway.delete_api_key(apiKey=client_id)
        except (ClientError, BotoCoreError):
            logger.warning("a half-made client's API key could not be deleted", extra={"client_id": client_id})

    def _plan_keys(self) -> Iterator[dict[str, Any]]:
        try:
            for page in self._apigateway.get_paginator("get_usage_plan_keys").paginate(usagePlanId=self._plan):
                yield from (dict(item) for item in page.get("items", []))
        except (ClientError, BotoCoreError) as error:
            raise ClientsUnavailable("could not list the clients; try again") from error

    def _api_keys(self) -> Iterator[dict[str, Any]]:
        try:
            for page in self._apigateway.get_paginator("get_api_keys").paginate(includeValues=False):
                yield from (dict(item) for item in page.get("items", []))
        except (ClientError, BotoCoreError) as error:
            raise ClientsUnavailable("could not list the clients; try again") from error

    @staticmethod
    def _client(key: dict[str, Any]) -> Client:
        return Client(
            id=str(key["id"]),
            name=str(key.get("description") or key.get("name") or ""),
            enabled=bool(key.get("enabled", False)),
            created_at=key.get("createdDate"),
        )


class ClientSigningKeys:
    """The signing keys of a notification's client, read from Secrets Manager and kept `max_age_seconds`.

    A notification made before records had owners is signed with the default client's key.
    """

    def __init__(
        self, secrets_cache: ProviderSecrets, default_client: str, *, max_age_seconds: int = CLIENT_KEY_SECONDS
    ) -> None:
        self._secrets = secrets_cache
        self._default = default_client
        self._max_age = max_age_seconds

    def __call__(self, record: NotificationRecord) -> signing.SigningKeys:
        client = record.client or self._default
        try:
            stored = self._secrets.json(signing_secret_name(client), max_age_seconds=self._max_age)()
            return signing.keys_of(stored)
        except SecretMissing as error:
            raise UndeliverableError("the notification's client has no webhook signing key") from error
        except (SecretUnreadable, signing.InvalidSecret) as error:
            # Nothing was sent; the message comes back for another attempt.
            raise DeliveryError("the client's webhook signing key could not be read") from error


def _plausible_id(client_id: str) -> bool:
    return 0 < len(client_id) <= 64 and client_id.isascii() and client_id.isalnum()


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
