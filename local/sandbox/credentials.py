"""The sandbox's credentials: what Herald is given to call it, and the keys the sandbox signs and verifies with."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

FCM_PROJECT_ID = "herald-local"
FCM_CLIENT_EMAIL = f"herald-sender@{FCM_PROJECT_ID}.iam.gserviceaccount.com"
TOKEN_PATH = "/token"


@dataclass(frozen=True)
class SandboxCredentials:
    """Everything the sandbox checks callers with and signs callbacks with.

    Herald is given the first five fields (as its secrets and settings); `sendgrid_event_private_key` stays with
    the sandbox. The FCM service account's public key, which `/token` verifies assertions with, is derived from
    its private key.

    Attributes
    ----------
    sendgrid_api_key
        The key SendGrid's `Authorization: Bearer` must carry.
    twilio_account_sid, twilio_auth_token
        Twilio's Basic auth pair; the auth token also signs status callbacks.
    fcm_service_account
        A Firebase service account, as Google's JSON key file holds it; `token_uri` is the sandbox's `/token`.
    sendgrid_event_public_key
        Base64 of the DER SubjectPublicKeyInfo of the ECDSA P-256 key that signs SendGrid events (SendGrid's
        "verification key"): Herald's API verifies events with it.
    sendgrid_event_private_key
        The matching private key, PEM (PKCS #8): the sandbox signs events with it.
    """

    sendgrid_api_key: str = field(repr=False)
    twilio_account_sid: str
    twilio_auth_token: str = field(repr=False)
    fcm_service_account: dict[str, str] = field(repr=False)
    sendgrid_event_public_key: str
    sendgrid_event_private_key: str = field(repr=False)

    @classmethod
    def generate(cls, sandbox_url: str) -> SandboxCredentials:
        """Fresh random credentials and keys for a sandbox answering at `sandbox_url` (e.g. http://127.0.0.1:4010)."""
        event_key = ec.generate_private_key(ec.SECP256R1())
        event_public = event_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        service_account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(
            sendgrid_api_key=f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}",
            twilio_account_sid=f"AC{secrets.token_hex(16)}",
            twilio_auth_token=secrets.token_hex(16),
            fcm_service_account={
                "type": "service_account",
                "project_id": FCM_PROJECT_ID,
                "private_key_id": secrets.token_hex(20),
                "private_key": _pem(service_account_key),
                "client_email": FCM_CLIENT_EMAIL,
                "client_id": str(secrets.randbelow(10**21)),
                "token_uri": f"{sandbox_url.rstrip('/')}{TOKEN_PATH}",
            },
            sendgrid_event_public_key=base64.b64encode(event_public).decode("ascii"),
            sendgrid_event_private_key=_pem(event_key),
        )

    # ------------------------------------------------------------------ as Herald's secrets hold them
    def sendgrid_secret(self) -> str:
        """The JSON of Herald's SendGrid secret (`SENDGRID_SECRET`)."""
        return json.dumps({"api_key": self.sendgrid_api_key})

    def twilio_secret(self) -> str:
        """The JSON of Herald's Twilio secret (`TWILIO_SECRET`)."""
        return json.dumps({"account_sid": self.twilio_account_sid, "auth_token": self.twilio_auth_token})

    def fcm_secret(self) -> str:
        """The JSON of Herald's FCM secret (`FCM_SECRET`): the service account key file."""
        return json.dumps(self.fcm_service_account)

    # ------------------------------------------------------------------ the keys as objects
    @cached_property
    def event_signing_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.sendgrid_event_private_key.encode("ascii"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("sendgrid_event_private_key must be an ECDSA key")
        return key

    @cached_property
    def service_account_public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_private_key(self.fcm_service_account["private_key"].encode("ascii"), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the FCM service account's private_key must be an RSA key")
        return key.public_key()


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
