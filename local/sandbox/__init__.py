"""Sandbox providers for the local runtime: one loopback HTTP server that answers like SendGrid, Twilio and FCM.

It records every accepted message with its notification id (``GET /_messages``), takes fault injection per
provider (``POST /_faults``) and sends signed delivery callbacks (SendGrid's event webhook, Twilio's status
callbacks) back to Herald's API, so the receipt loop runs on one machine::

    with Sandbox(sendgrid_events_url=f"{api}/provider-events/sendgrid") as sandbox:
        sandbox.url              # point SENDGRID_BASE_URL, TWILIO_BASE_URL and FCM_BASE_URL here
        sandbox.credentials      # the API key, auth token, service account and event key to give Herald
"""

from local.sandbox.credentials import SandboxCredentials
from local.sandbox.faults import Fault, FaultSpec, Provider
from local.sandbox.server import Sandbox

__all__ = ["Fault", "FaultSpec", "Provider", "Sandbox", "SandboxCredentials"]
