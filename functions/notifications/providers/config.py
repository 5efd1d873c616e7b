"""Which providers serve each channel, in which order, and where each one is found.

Read from the environment by the sender (to build the providers) and by the API (to refuse a channel
that has no provider). A provider listed for a channel but missing its configuration (no secret, no
platform application) is left out with a warning at start, so a plain deployment works with what it
has: SES for email and SNS for SMS need nothing beyond the AWS account.

=================================  =========================================================================
Variable                           Meaning
=================================  =========================================================================
EMAIL_PROVIDERS                    Ordered list: `ses`, `sendgrid` (default `ses,sendgrid`)
SMS_PROVIDERS                      Ordered list: `sns`, `twilio` (default `sns,twilio`)
PUSH_PROVIDERS                     Ordered list: `fcm`, `sns` (default `fcm,sns`)
SENDGRID_SECRET                    Secrets Manager name or ARN of `{"api_key": ...}`
SENDGRID_BASE_URL                  Default the real API; the local runtime points it at the sandbox
TWILIO_SECRET                      Secrets Manager name or ARN of `{"account_sid": ..., "auth_token": ...}`
TWILIO_FROM                        The sending number (E.164) or messaging service SID (`MG...`)
TWILIO_BASE_URL                    Default the real API
FCM_SECRET                         Secrets Manager name or ARN of the Firebase service account JSON
FCM_BASE_URL                       Default the real API
SNS_PLATFORM_APPLICATION_ARN       The SNS platform application push endpoints are created in
PROVIDER_EVENTS_URL                Public base URL of the API, for providers' delivery callbacks
SECRETS_MAX_AGE_SECONDS            How long a secret read from Secrets Manager is cached (default 300)
=================================  =========================================================================
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from notifications.models import Channel

# Where Twilio posts status callbacks, under PROVIDER_EVENTS_URL (the sender tells Twilio, the API checks it).
TWILIO_CALLBACK_PATH = "/provider-events/twilio"

# Every provider Herald has, per channel.
KNOWN_PROVIDERS: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("ses", "sendgrid"),
    Channel.SMS: ("sns", "twilio"),
    Channel.PUSH: ("fcm", "sns"),
    Channel.WEBHOOK: ("webhook",),
}


def _ordered(value: object) -> object:
    """`"sendgrid, ses"` -> ("sendgrid", "ses"): order kept, blanks dropped."""
    if isinstance(value, str):
        return tuple(part.strip().lower() for part in value.split(",") if part.strip())
    return value


ProviderList = Annotated[tuple[str, ...], BeforeValidator(_ordered)]


class ProviderSettings(BaseModel):
    """Provider lists and each provider's configuration (one part of a function's settings)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    email_providers: ProviderList = Field(default=("ses", "sendgrid"), alias="EMAIL_PROVIDERS")
    sms_providers: ProviderList = Field(default=("sns", "twilio"), alias="SMS_PROVIDERS")
    push_providers: ProviderList = Field(default=("fcm", "sns"), alias="PUSH_PROVIDERS")
    email_from: str = Field(default="", alias="EMAIL_FROM")
    sendgrid_secret: str = Field(default="", alias="SENDGRID_SECRET")
    sendgrid_base_url: str = Field(default="https://api.sendgrid.com", alias="SENDGRID_BASE_URL")
    twilio_secret: str = Field(default="", alias="TWILIO_SECRET")
    twilio_from: str = Field(default="", alias="TWILIO_FROM")
    twilio_base_url: str = Field(default="https://api.twilio.com", alias="TWILIO_BASE_URL")
    fcm_secret: str = Field(default="", alias="FCM_SECRET")
    fcm_base_url: str = Field(default="https://fcm.googleapis.com", alias="FCM_BASE_URL")
    sns_platform_application_arn: str = Field(default="", alias="SNS_PLATFORM_APPLICATION_ARN")
    provider_events_url: str = Field(default="", alias="PROVIDER_EVENTS_URL")
    secrets_max_age_seconds: int = Field(default=300, alias="SECRETS_MAX_AGE_SECONDS", ge=0, le=3600)

    @model_validator(mode="after")
    def _known_providers(self) -> ProviderSettings:
        for channel, names in self.listed().items():
            unknown = [name for name in names if name not in KNOWN_PROVIDERS[channel]]
            if unknown:
                known = ", ".join(KNOWN_PROVIDERS[channel])
                raise ValueError(f"{channel.upper()}_PROVIDERS names unknown providers {unknown}; known: {known}")
            if len(set(names)) != len(names):
                raise ValueError(f"{channel.upper()}_PROVIDERS repeats a provider")
        return self

    def listed(self) -> dict[Channel, tuple[str, ...]]:
        """Each channel's providers as configured, in order."""
        return {
            Channel.EMAIL: self.email_providers,
            Channel.SMS: self.sms_providers,
            Channel.PUSH: self.push_providers,
            Channel.WEBHOOK: ("webhook",),
        }

    def missing(self, channel: Channel, provider: str) -> str | None:
        """What a listed provider lacks to be used, in plain words, or None when it is ready."""
        needs: dict[tuple[Channel, str], tuple[str, str]] = {
            (Channel.EMAIL, "ses"): (self.email_from, "EMAIL_FROM"),
            (Channel.EMAIL, "sendgrid"): (self.sendgrid_secret and self.email_from, "SENDGRID_SECRET and EMAIL_FROM"),
            (Channel.SMS, "twilio"): (self.twilio_secret and self.twilio_from, "TWILIO_SECRET and TWILIO_FROM"),
            (Channel.PUSH, "fcm"): (self.fcm_secret, "FCM_SECRET"),
            (Channel.PUSH, "sns"): (self.sns_platform_application_arn, "SNS_PLATFORM_APPLICATION_ARN"),
        }
        value, names = needs.get((channel, provider), ("ready", ""))
        return None if value else f"{provider} for {channel} needs {names}"

    def usable(self, enabled: frozenset[Channel]) -> dict[Channel, tuple[str, ...]]:
        """Each enabled channel's providers that have their configuration, in order (maybe none)."""
        return {
            channel: tuple(name for name in names if self.missing(channel, name) is None)
            for channel, names in self.listed().items()
            if channel in enabled
        }

    def unusable(self, enabled: frozenset[Channel]) -> list[str]:
        """Why each listed provider of an enabled channel is left out (for one warning at start)."""
        return [
            reason
            for channel, names in self.listed().items()
            if channel in enabled
            for name in names
            if (reason := self.missing(channel, name)) is not None
        ]
