"""Checking that a delivery report really comes from the provider: SendGrid's ECDSA, Twilio's HMAC-SHA1.

A receipt route takes no API key (providers cannot send one): the signature is its authentication. A
request without one is `SignatureMissing` (HTTP 401); one whose signature does not match, or whose
signed timestamp is too old or too far ahead, is `SignatureInvalid` (HTTP 403).

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256, so a captured request cannot be
replayed once its timestamp leaves the tolerance window. Twilio signs the URL it called and the POST
fields, with no timestamp at all: a stale Twilio request cannot be told from a fresh one, so a captured
callback can be replayed for as long as the auth token is unchanged. That is harmless here because
applying a receipt is idempotent and never moves a status backwards (`receipts.transitions`), but it is
why Twilio's check has no `now` and no tolerance.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from notifications.errors import HeraldError

_DEFAULT_PORTS = {"https": 443, "http": 80}


class SignatureError(HeraldError):
    """A provider's request could not be authenticated."""

    code = "signature_error"


class SignatureMissing(SignatureError):
    """The request carries no signature (or no signed timestamp): HTTP 401."""

    code = "signature_missing"


class SignatureInvalid(SignatureError):
    """The signature does not match the request, or its timestamp is stale: HTTP 403."""

    code = "signature_invalid"


# ---------------------------------------------------------------------- SendGrid
@functools.lru_cache(maxsize=8)
def load_sendgrid_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's "verification key": base64 of the DER SubjectPublicKeyInfo of a P-256 public key.

    Raises
    ------
    ValueError
        The text is not such a key (a configuration error, not a bad request).
    """
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64.strip(), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as error:
        raise ValueError("not base64 of a DER-encoded public key") from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_sendgrid(
    public_key_b64: str,
    signature_b64: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: float,
) -> None:
    """Check a SendGrid Event Webhook request; return quietly when it is authentic and fresh.

    Parameters
    ----------
    public_key_b64 : str
        SendGrid's verification key (base64 DER, ECDSA P-256).
    signature_b64 : str | None
        The `X-Twilio-Email-Event-Webhook-Signature` header: base64 of a DER ECDSA signature.
    timestamp : str | None
        The `X-Twilio-Email-Event-Webhook-Timestamp` header: epoch seconds, as text.
    body : bytes
        The raw request body, exactly as received.
    now : float
        The current time in epoch seconds (injected).
    tolerance_seconds : float
        How far the signed timestamp may lie from `now`, either way.

    Raises
    ------
    SignatureMissing
        No signature or no timestamp.
    SignatureInvalid
        The timestamp is malformed or outside the window, or the signature does not verify.
    """
    if not signature_b64 or not timestamp:
        raise SignatureMissing("the request carries no signed event webhook signature and timestamp")
    try:
        signed_at = int(timestamp.strip())
    except ValueError:
        raise SignatureInvalid("the signature timestamp is not a number of seconds") from None
    # Checked first: it is cheap, and it refuses a replayed request whatever its signature.
    if abs(now - signed_at) > tolerance_seconds:
        raise SignatureInvalid("the signature timestamp is outside the allowed window")
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the signature is not base64") from None
    key = load_sendgrid_key(public_key_b64)
    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureInvalid("the signature does not match the request") from None


# ---------------------------------------------------------------------- Twilio
def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Twilio's `X-Twilio-Signature` of a request: base64(HMAC-SHA1(auth token, url + sorted name+value pairs)).

    Fields are taken by name in sorted order, each name immediately followed by its value (a name sent
    twice contributes each distinct value in sorted order), as Twilio's own request validators do.
    """
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], signature: str | None
) -> None:
    """Check a Twilio request (a status callback); return quietly when it is authentic.

    There is no timestamp in Twilio's scheme, so no staleness check is possible (see the module's note).
    The URL is tried as given and with its default port added or removed, as Twilio's validators do,
    because Twilio may sign either form of an https URL.

    Parameters
    ----------
    auth_token : str
        The account's auth token (the HMAC key).
    url : str
        The full URL Twilio called, query string included: rebuilt from configuration, never from the
        request's Host header, which the caller controls.
    params : Mapping[str, str] | Iterable[tuple[str, str]]
        The POST form fields, decoded.
    signature : str | None
        The `X-Twilio-Signature` header.

    Raises
    ------
    SignatureMissing
        No signature.
    SignatureInvalid
        The signature matches none of the URL's forms.
    """
    if not signature:
        raise SignatureMissing("the request carries no X-Twilio-Signature header")
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    given = signature.strip().encode()
    matches = False
    for candidate in _url_forms(url):
        # Every form is compared, in constant time, so the answer's timing tells nothing.
        matches |= hmac.compare_digest(twilio_signature(auth_token, candidate, pairs).encode(), given)
    if not matches:
        raise SignatureInvalid("the signature does not match the request")


def _url_forms(url: str) -> list[str]:
    """The URL as given, and with its scheme's default port made explicit or dropped."""
    parts = urlsplit(url)
    forms = [url]
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.hostname is None:
        return forms
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    if parts.port is None:
        forms.append(urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{default}")))
    elif parts.port == default:
        bare = host.rsplit(":", 1)[0]
        forms.append(urlunsplit(parts._replace(netloc=f"{userinfo}{bare}")))
    return forms
