"""The providers of the local runtime: sandboxes for SendGrid, Twilio and FCM, and their credentials.

The runtime starts the sandbox server, stores each sandbox's credentials in the embedded AWS's
Secrets Manager (so the sender reads them as in AWS, through Powertools' parameters), creates an SNS
platform application for SNS mobile push, and routes each channel through the sandbox first and the
AWS provider second, so failover can be watched: inject an outage into the first, watch the second
deliver. Any of these template parameters can still be set with `HERALD_<PARAMETER>`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local.aws.template import parameter_env_name

if TYPE_CHECKING:
    from local.sandbox import SandboxCredentials

SENDGRID_SECRET = "herald/sendgrid"
TWILIO_SECRET = "herald/twilio"
FCM_SECRET = "herald/fcm"
TWILIO_FROM = "+15005550006"  # Twilio's documented test sender number
PLATFORM_APPLICATION = "herald-local-push"


@dataclass(frozen=True)
class LocalProviders:
    """What the runtime gives the template (parameters) and the functions (environment) for providers."""

    parameters: dict[str, str]
    environment: dict[str, str]


def set_up_providers(
    clients: Any, credentials: SandboxCredentials, *, sandbox_url: str, api_url: str
) -> LocalProviders:
    """Store the sandboxes' credentials and create the push application in the embedded AWS."""
    secrets = clients.client("secretsmanager")
    for name, value in (
        (SENDGRID_SECRET, {"api_key": credentials.sendgrid_api_key}),
        (TWILIO_SECRET, {"account_sid": credentials.twilio_account_sid, "auth_token": credentials.twilio_auth_token}),
        (FCM_SECRET, credentials.fcm_service_account),
    ):
        secrets.create_secret(Name=name, SecretString=json.dumps(value))
    application = clients.client("sns").create_platform_application(
        Name=PLATFORM_APPLICATION, Platform="GCM", Attributes={"PlatformCredential": "local-sandbox"}
    )["PlatformApplicationArn"]
    parameters = {
        "EmailProviders": "sendgrid,ses",
        "SmsProviders": "twilio,sns",
        "PushProviders": "fcm,sns",
        "SendGridSecretName": SENDGRID_SECRET,
        "SendGridEventPublicKey": credentials.sendgrid_event_public_key,
        "TwilioSecretName": TWILIO_SECRET,
        "TwilioFrom": TWILIO_FROM,
        "FcmSecretName": FCM_SECRET,
        "PushPlatformApplicationArn": application,
    }
    environment = {
        "SENDGRID_BASE_URL": sandbox_url,
        "TWILIO_BASE_URL": sandbox_url,
        "FCM_BASE_URL": sandbox_url,
        "PROVIDER_EVENTS_URL": api_url,  # where the sandboxes' receipts (and Twilio's callbacks) go
    }
    # A parameter the user set with HERALD_<PARAMETER> wins over these local defaults.
    chosen = {name: value for name, value in parameters.items() if not os.environ.get(parameter_env_name(name))}
    return LocalProviders(parameters=chosen, environment=environment)
