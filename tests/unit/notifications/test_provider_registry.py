"""Which providers serve each channel, in which order: the settings, and the providers built from them."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import pytest
from pydantic import ValidationError

from api.settings import ApiSettings
from notifications.models import Channel
from notifications.providers.config import ProviderSettings
from notifications.providers.registry import ProviderClients, build_providers

ALL = frozenset(Channel)
EVERYTHING = {
    "EMAIL_FROM": "no-reply@example.com",
    "EMAIL_PROVIDERS": "sendgrid, ses",
    "SMS_PROVIDERS": "twilio,sns",
    "PUSH_PROVIDERS": "fcm,sns",
    "SENDGRID_SECRET": "herald/sendgrid",
    "TWILIO_SECRET": "herald/twilio",
    "TWILIO_FROM": "+15005550006",
    "FCM_SECRET": "herald/fcm",
    "SNS_PLATFORM_APPLICATION_ARN": "arn:aws:sns:us-east-1:123456789012:app/GCM/herald",
    "PROVIDER_EVENTS_URL": "https://api.example.com/v1/",
}


def built(environment: dict[str, str], enabled: frozenset[Channel] = ALL) -> dict[Channel, list[str]]:
    settings = ProviderSettings.model_validate(environment)
    clients = ProviderClients(dynamodb=Mock(), ses=Mock(), sns=Mock(), secretsmanager=Mock())
    providers = build_providers(
        settings, enabled, notifications_table="notifications", webhook=Mock(name="webhook"), clients=clients
    )
    return {channel: [provider.name for provider in found] for channel, found in providers.items()}


def test_each_channel_gets_its_providers_in_the_configured_order() -> None:
    # When
    names = built(EVERYTHING)

    # Then
    assert names[Channel.EMAIL] == ["sendgrid", "ses"]
    assert names[Channel.SMS] == ["twilio", "sns-sms"]
    assert names[Channel.PUSH] == ["fcm", "sns-push"]
    assert Channel.WEBHOOK in names


def test_a_provider_without_its_configuration_is_left_out_and_a_channel_without_any_has_none() -> None:
    # Given: a plain deployment: no provider secrets, no push platform application
    plain: dict[str, Any] = {"EMAIL_FROM": "no-reply@example.com"}

    # When
    names = built(plain)

    # Then: SES and SNS need nothing more; push has no provider at all
    assert names[Channel.EMAIL] == ["ses"]
    assert names[Channel.SMS] == ["sns-sms"]
    assert Channel.PUSH not in names
    settings = ProviderSettings.model_validate(plain)
    assert "fcm for push needs FCM_SECRET" in settings.unusable(ALL)


def test_the_api_refuses_exactly_the_channels_the_sender_could_not_deliver() -> None:
    # Given
    environment = {
        "NOTIFICATIONS_TABLE": "t",
        "PRIORITY_QUEUE_URL": "q",
        "STANDARD_QUEUE_URL": "q",
        "BATCH_QUEUE_URL": "q",
        "RETRY_QUEUE_URL": "q",
        "DEAD_LETTER_QUEUE_URL": "q",
        "RESILIENCE_TABLE": "r",
        "IDEMPOTENCY_SECRET_NAME": "idempotency",
        "ENABLED_CHANNELS": "email,sms,push,webhook",
        "EMAIL_FROM": "no-reply@example.com",
    }

    # When
    settings = ApiSettings.model_validate(environment)

    # Then
    assert settings.deliverable_channels == {Channel.EMAIL, Channel.SMS, Channel.WEBHOOK}
    assert ApiSettings.model_validate(environment | EVERYTHING).deliverable_channels == ALL


def test_twilio_is_told_where_to_send_its_status_callbacks() -> None:
    # When
    settings = ProviderSettings.model_validate(EVERYTHING)
    clients = ProviderClients(dynamodb=Mock(), ses=Mock(), sns=Mock(), secretsmanager=Mock())
    providers = build_providers(settings, frozenset({Channel.SMS}), notifications_table="t", clients=clients)

    # Then
    twilio = providers[Channel.SMS][0]
    assert twilio.status_callback(Mock(id="n-1")) == (  # type: ignore[attr-defined]
        "https://api.example.com/v1/provider-events/twilio?notification_id=n-1"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EMAIL_PROVIDERS", "ses,mailgun", "unknown providers ['mailgun']"),
        ("SMS_PROVIDERS", "twilio,twilio", "repeats a provider"),
        ("PUSH_PROVIDERS", "ses", "unknown providers ['ses']"),
    ],
)
def test_an_unknown_or_repeated_provider_is_refused_at_start(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ProviderSettings.model_validate({**EVERYTHING, variable: value})
