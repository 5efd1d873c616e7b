"""Each channel's providers, built from the settings in the order they are tried.

The sender builds them once per execution environment. A provider listed for a channel but lacking
its configuration is left out with one warning (`ProviderSettings.unusable`), so the API, which reads
the same settings, refuses that channel with 422 instead of accepting what nobody can deliver.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from notifications import aws
from notifications.models import Channel
from notifications.observability import logger
from notifications.providers.config import TWILIO_CALLBACK_PATH, ProviderSettings
from notifications.providers.fcm import FcmPushProvider
from notifications.providers.secrets import ProviderSecrets
from notifications.providers.sendgrid import SendGridEmailProvider
from notifications.providers.ses import SesEmailProvider
from notifications.providers.sns import SnsPushProvider, SnsSmsProvider
from notifications.providers.twilio import TwilioSmsProvider

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient

    from notifications.providers import Provider


@dataclass(frozen=True)
class ProviderClients:
    """AWS clients the providers use (injected in tests; real ones by default)."""

    dynamodb: DynamoDBClient | None = None
    ses: SESV2Client | None = None
    sns: SNSClient | None = None
    secretsmanager: SecretsManagerClient | None = None


def build_providers(
    settings: ProviderSettings,
    enabled: frozenset[Channel],
    *,
    notifications_table: str,
    ses_configuration_set: str | None = None,
    webhook: Provider | None = None,
    clients: ProviderClients | None = None,
    secrets: ProviderSecrets | None = None,
) -> dict[Channel, list[Provider]]:
    """Every enabled channel's usable providers, in order; `webhook` is the webhook channel's provider."""
    for reason in settings.unusable(enabled):
        logger.warning("provider left out", extra={"reason": reason})
    clients = clients or ProviderClients()
    secrets = secrets or ProviderSecrets(settings.secrets_max_age_seconds, client=clients.secretsmanager)
    factory = _Factory(
        settings,
        clients,
        secrets,
        notifications_table=notifications_table,
        ses_configuration_set=ses_configuration_set,
        webhook=webhook,
    )
    builders: dict[tuple[Channel, str], Callable[[], Provider]] = {
        (Channel.EMAIL, "ses"): factory.ses,
        (Channel.EMAIL, "sendgrid"): factory.sendgrid,
        (Channel.SMS, "sns"): factory.sns_sms,
        (Channel.SMS, "twilio"): factory.twilio,
        (Channel.PUSH, "fcm"): factory.fcm,
        (Channel.PUSH, "sns"): factory.sns_push,
        (Channel.WEBHOOK, "webhook"): factory.webhook,
    }
    return {
        channel: [builders[channel, name]() for name in names]
        for channel, names in settings.usable(enabled).items()
        if names and (channel is not Channel.WEBHOOK or webhook is not None)
    }


class _Factory:
    """Builds each provider from the settings; shares one Secrets Manager reader and one SNS client."""

    def __init__(
        self,
        settings: ProviderSettings,
        clients: ProviderClients,
        secrets: ProviderSecrets,
        *,
        notifications_table: str,
        ses_configuration_set: str | None,
        webhook: Provider | None,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._secrets = secrets
        self._table = notifications_table
        self._configuration_set = ses_configuration_set
        self._webhook = webhook

    @cached_property
    def _sns(self) -> SNSClient:
        return self._clients.sns or aws.client("sns")

    def ses(self) -> Provider:
        return SesEmailProvider(
            self._settings.email_from, client=self._clients.ses, configuration_set=self._configuration_set
        )

    def sendgrid(self) -> Provider:
        settings = self._settings
        return SendGridEmailProvider(
            sender=settings.email_from,
            credentials=self._secrets.json(settings.sendgrid_secret),
            base_url=settings.sendgrid_base_url,
        )

    def sns_sms(self) -> Provider:
        return SnsSmsProvider(client=self._sns)

    def twilio(self) -> Provider:
        settings = self._settings
        callback = settings.provider_events_url.rstrip("/")
        return TwilioSmsProvider(
            sender=settings.twilio_from,
            credentials=self._secrets.json(settings.twilio_secret),
            base_url=settings.twilio_base_url,
            status_callback_url=f"{callback}{TWILIO_CALLBACK_PATH}" if callback else None,
        )

    def fcm(self) -> Provider:
        settings = self._settings
        return FcmPushProvider(credentials=self._secrets.json(settings.fcm_secret), base_url=settings.fcm_base_url)

    def sns_push(self) -> Provider:
        return SnsPushProvider(
            self._settings.sns_platform_application_arn, self._table, client=self._sns, dynamodb=self._clients.dynamodb
        )

    def webhook(self) -> Provider:
        assert self._webhook is not None  # only asked for when given
        return self._webhook
