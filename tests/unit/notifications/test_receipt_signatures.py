"""Signatures on delivery reports: SendGrid's ECDSA over timestamp + body, Twilio's HMAC-SHA1 over URL + fields."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from notifications.errors import HeraldError
from notifications.receipts.signatures import (
    SignatureInvalid,
    SignatureMissing,
    load_sendgrid_key,
    twilio_signature,
    verify_sendgrid,
    verify_twilio,
)
from tests.support.events import load_event

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = 1_795_922_135.0
TOLERANCE = 300
BODY = (
    b'[{"event":"delivered","sg_event_id":"HhO8TWp8SkGHm5qVVGbh3Q==","timestamp":1795922110,"notification_id":"n-1"}]'
)


def _public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# ---------------------------------------------------------------------- SendGrid
def test_a_request_signed_with_the_verification_keys_private_half_is_accepted(key: ec.EllipticCurvePrivateKey) -> None:
    # Given a body signed as SendGrid signs it, with a timestamp of now
    timestamp = str(int(NOW))
    signature = _sign(key, timestamp, BODY)

    # When it is verified with SendGrid's verification key
    # Then it passes: nothing is raised
    verify_sendgrid(_public_b64(key), signature, timestamp, BODY, now=NOW, tolerance_seconds=TOLERANCE)


def test_a_signature_by_another_key_is_invalid(key: ec.EllipticCurvePrivateKey) -> None:
    # Given a well-formed signature made with some other P-256 key
    timestamp = str(int(NOW))
    signature = _sign(ec.generate_private_key(ec.SECP256R1()), timestamp, BODY)

    # When / Then it is refused as invalid (HTTP 403), not as missing
    with pytest.raises(SignatureInvalid):
        verify_sendgrid(_public_b64(key), signature, timestamp, BODY, now=NOW, tolerance_seconds=TOLERANCE)


def test_a_tampered_body_is_invalid(key: ec.EllipticCurvePrivateKey) -> None:
    # Given a genuine signature, and a body changed by one event after signing
    timestamp = str(int(NOW))
    signature = _sign(key, timestamp, BODY)
    tampered = BODY.replace(b'"delivered"', b'"bounce"')

    # When / Then the signature no longer matches
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_sendgrid(_public_b64(key), signature, timestamp, tampered, now=NOW, tolerance_seconds=TOLERANCE)


def test_a_timestamp_changed_after_signing_is_invalid(key: ec.EllipticCurvePrivateKey) -> None:
    # Given a signature over one timestamp, sent with another one that is still inside the window
    signature = _sign(key, str(int(NOW) - 100), BODY)

    # When / Then the signature does not cover the timestamp sent: refused
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_sendgrid(_public_b64(key), signature, str(int(NOW)), BODY, now=NOW, tolerance_seconds=TOLERANCE)


@pytest.mark.parametrize("offset", [-(TOLERANCE + 1), TOLERANCE + 1, -86_400])
def test_a_genuine_signature_outside_the_window_is_stale(key: ec.EllipticCurvePrivateKey, offset: int) -> None:
    # Given a request genuinely signed, but with a timestamp too old (a replay) or too far ahead
    timestamp = str(int(NOW) + offset)
    signature = _sign(key, timestamp, BODY)

    # When / Then it is refused as invalid
    with pytest.raises(SignatureInvalid, match="window"):
        verify_sendgrid(_public_b64(key), signature, timestamp, BODY, now=NOW, tolerance_seconds=TOLERANCE)


@pytest.mark.parametrize("offset", [-TOLERANCE, TOLERANCE])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(key: ec.EllipticCurvePrivateKey, offset: int) -> None:
    # Given a genuine request whose timestamp lies exactly at the tolerance, either way
    timestamp = str(int(NOW) + offset)

    # When / Then it is accepted
    verify_sendgrid(
        _public_b64(key), _sign(key, timestamp, BODY), timestamp, BODY, now=NOW, tolerance_seconds=TOLERANCE
    )


@pytest.mark.parametrize(("signature", "timestamp"), [(None, "1795922135"), ("", "1795922135"), ("c2ln", None)])
def test_no_signature_or_no_timestamp_is_missing(
    key: ec.EllipticCurvePrivateKey, signature: str | None, timestamp: str | None
) -> None:
    # Given a request without the signature header or without the timestamp header
    # When / Then it is refused as unauthenticated (HTTP 401)
    with pytest.raises(SignatureMissing):
        verify_sendgrid(_public_b64(key), signature, timestamp, BODY, now=NOW, tolerance_seconds=TOLERANCE)


@pytest.mark.parametrize(("signature", "timestamp"), [("not base64!", "1795922135"), ("c2ln", "yesterday")])
def test_a_garbled_signature_or_timestamp_is_invalid(
    key: ec.EllipticCurvePrivateKey, signature: str, timestamp: str
) -> None:
    # Given headers that are present but not what SendGrid sends
    # When / Then the request is refused as invalid, without an unexpected error
    with pytest.raises(SignatureInvalid):
        verify_sendgrid(_public_b64(key), signature, timestamp, BODY, now=NOW, tolerance_seconds=TOLERANCE)


def test_missing_and_invalid_are_herald_errors_with_their_own_codes() -> None:
    # Given / When / Then the two refusals are told apart by code, for 401 and 403
    assert issubclass(SignatureMissing, HeraldError)
    assert issubclass(SignatureInvalid, HeraldError)
    assert SignatureMissing.code != SignatureInvalid.code


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1()])
def test_a_verification_key_on_another_curve_is_refused(curve: ec.EllipticCurve) -> None:
    # Given a public key that is ECDSA, but not P-256
    other = _public_b64(ec.generate_private_key(curve))

    # When / Then it is not accepted as SendGrid's verification key
    with pytest.raises(ValueError, match="P-256"):
        load_sendgrid_key(other)


def test_a_verification_key_that_is_not_a_key_is_refused() -> None:
    # Given / When / Then text that is not base64 DER is refused
    with pytest.raises(ValueError, match="DER"):
        load_sendgrid_key(base64.b64encode(b"not a key").decode())


# ---------------------------------------------------------------------- Twilio
# Twilio's published request-validation example (twilio-ruby's spec of its RequestValidator).
TWILIO_TOKEN = "2bd9e9638872de601313dc77410d3b23"
TWILIO_URL = "http://twiliotests.heroku.com/validate/sms"
TWILIO_PARAMS = {
    "ToState": "CA",
    "FromState": "CA",
    "AccountSid": "ACba8bc05eacf94afdae398e642c9cc32d",
    "SmsMessageSid": "SM2003cbd5e6a3701999aa3e5f20ff2787",
    "Body": "Orly",
    "From": "+14159354345",
    "FromCity": "SAN FRANCISCO",
    "SmsStatus": "received",
    "FromZip": "94107",
    "FromCountry": "US",
    "To": "+14158141819",
    "ToCity": "SAN FRANCISCO",
    "ToZip": "94105",
    "ToCountry": "US",
    "ApiVersion": "2010-04-01",
    "SmsSid": "SM2003cbd5e6a3701999aa3e5f20ff2787",
}
TWILIO_SIGNATURE = "mxeiv65lEe0b8L6LdVw2jgJi8yw="

SAMPLE_TOKEN = "a3f9c2e1d4b5a6978877665544332211"  # the auth token the sample event was signed with
SAMPLE_URL = (
    "https://abc123defg.execute-api.us-east-1.amazonaws.com/v1/provider-events/twilio"
    "?notification_id=0b8f1e3c-5a7d-4e2b-9c6f-1d2e3f4a5b6c"
)


def test_twilios_published_example_verifies() -> None:
    # Given Twilio's own example request and the signature Twilio's libraries expect for it
    # When it is verified
    # Then it passes, and the computed signature is exactly Twilio's
    verify_twilio(TWILIO_TOKEN, TWILIO_URL, TWILIO_PARAMS, TWILIO_SIGNATURE)
    assert twilio_signature(TWILIO_TOKEN, TWILIO_URL, TWILIO_PARAMS) == TWILIO_SIGNATURE


def test_the_sample_status_callback_verifies_with_its_form_fields_in_any_order() -> None:
    # Given the sample status callback event, its fields parsed from the body and then reversed
    event = load_event("api_post_provider_event_twilio.json")
    fields = parse_qsl(event["body"], keep_blank_values=True)

    # When / Then it verifies against the URL Twilio called, whatever the order the fields came in
    verify_twilio(SAMPLE_TOKEN, SAMPLE_URL, fields, event["headers"]["X-Twilio-Signature"])
    verify_twilio(SAMPLE_TOKEN, SAMPLE_URL, list(reversed(fields)), event["headers"]["X-Twilio-Signature"])


def test_a_twilio_signature_made_with_another_token_is_invalid() -> None:
    # Given / When / Then the published example checked with another account's token is refused
    with pytest.raises(SignatureInvalid):
        verify_twilio("0" * 32, TWILIO_URL, TWILIO_PARAMS, TWILIO_SIGNATURE)


@pytest.mark.parametrize(
    "url",
    [
        SAMPLE_URL.replace("0b8f1e3c", "0b8f1e3d"),  # another notification's callback
        SAMPLE_URL.replace("https://", "http://"),
        SAMPLE_URL.replace("/v1/", "/v2/"),
        SAMPLE_URL.split("?", 1)[0],  # the query string dropped
    ],
)
def test_a_tampered_url_is_invalid(url: str) -> None:
    # Given the sample callback's genuine signature, and a URL other than the one Twilio signed
    event = load_event("api_post_provider_event_twilio.json")
    fields = parse_qsl(event["body"], keep_blank_values=True)

    # When / Then the signature does not match
    with pytest.raises(SignatureInvalid):
        verify_twilio(SAMPLE_TOKEN, url, fields, event["headers"]["X-Twilio-Signature"])


@pytest.mark.parametrize(
    "change",
    [
        lambda fields: {**fields, "MessageStatus": "delivered"},  # the outcome flipped
        lambda fields: {**fields, "ErrorCode": ""},
        lambda fields: {**fields, "Extra": "1"},  # a field added
        lambda fields: {name: value for name, value in fields.items() if name != "ErrorCode"},  # a field dropped
    ],
)
def test_tampered_form_fields_are_invalid(change: Callable[[dict[str, str]], dict[str, str]]) -> None:
    # Given the sample callback's genuine signature, and its fields changed after signing
    event = load_event("api_post_provider_event_twilio.json")
    fields = dict(parse_qsl(event["body"], keep_blank_values=True))
    tampered = change(fields)

    # When / Then the signature does not match
    with pytest.raises(SignatureInvalid):
        verify_twilio(SAMPLE_TOKEN, SAMPLE_URL, tampered, event["headers"]["X-Twilio-Signature"])


@pytest.mark.parametrize("signature", [None, ""])
def test_no_twilio_signature_is_missing(signature: str | None) -> None:
    # Given / When / Then a callback without X-Twilio-Signature is unauthenticated (HTTP 401)
    with pytest.raises(SignatureMissing):
        verify_twilio(TWILIO_TOKEN, TWILIO_URL, TWILIO_PARAMS, signature)


WITH_PORT = SAMPLE_URL.replace(".amazonaws.com/", ".amazonaws.com:443/")


@pytest.mark.parametrize(("signed_url", "checked_url"), [(WITH_PORT, SAMPLE_URL), (SAMPLE_URL, WITH_PORT)])
def test_twilio_may_sign_the_https_url_with_or_without_its_default_port(signed_url: str, checked_url: str) -> None:
    # Given a signature over one form of the URL (Twilio signs an https URL with or without :443)
    signature = twilio_signature(SAMPLE_TOKEN, signed_url, TWILIO_PARAMS)

    # When / Then it verifies against the other form of the same URL
    verify_twilio(SAMPLE_TOKEN, checked_url, TWILIO_PARAMS, signature)


def test_a_port_other_than_the_default_is_part_of_the_url() -> None:
    # Given a signature over the URL on port 8443
    signature = twilio_signature(SAMPLE_TOKEN, SAMPLE_URL.replace(".amazonaws.com/", ".amazonaws.com:8443/"), {})

    # When / Then it does not verify for the default port
    with pytest.raises(SignatureInvalid):
        verify_twilio(SAMPLE_TOKEN, SAMPLE_URL, {}, signature)
