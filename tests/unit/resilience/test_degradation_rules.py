"""The degradation helper: which channel to use now, or defer with a suggested delay."""

from __future__ import annotations

from resilience import ChannelDecision, choose_channel


def test_the_requested_channel_wins_when_available() -> None:
    # Given email and its fallback sms both available
    # When a channel is chosen for email
    decision = choose_channel("email", ["sms"], {"email": True, "sms": True})

    # Then email is used, not as a fallback
    assert decision == ChannelDecision(channel="email")
    assert not decision.deferred


def test_the_first_available_fallback_is_used_in_order() -> None:
    # Given email down, push down, sms up
    available = {"email": False, "push": False, "sms": True, "webhook": True}.__getitem__

    # When a channel is chosen for email with fallbacks push, sms, webhook
    decision = choose_channel("email", ["push", "sms", "webhook"], available)

    # Then sms is used as a fallback
    assert decision == ChannelDecision(channel="sms", fallback=True)


def test_defer_until_the_soonest_candidate_is_expected_back() -> None:
    # Given every candidate down, email back in 42.3 s, sms in 120 s, push unknown
    hints = {"email": 42.3, "sms": 120.0, "push": None}

    # When a channel is chosen
    decision = choose_channel("email", ["sms", "push"], {"email": False}, retry_in=hints)

    # Then the notification is deferred until email may be back
    assert decision.deferred
    assert decision.defer_seconds == 43


def test_defer_uses_the_default_and_respects_sqs_bounds() -> None:
    # Given nothing available and no hint; and a hint beyond SQS's 900 s delay limit
    # When channels are chosen
    unknown = choose_channel("sms", [], {}, default_defer_seconds=60)
    far = choose_channel("sms", ["email"], lambda _: False, retry_in={"sms": 5000.0, "email": 3600.0})
    now = choose_channel("sms", [], {"sms": False}, retry_in={"sms": 0.0})

    # Then the delay is the default, capped at 900 s, and never below 1 s
    assert (unknown.defer_seconds, far.defer_seconds, now.defer_seconds) == (60, 900, 1)


def test_duplicate_and_repeated_channels_are_tried_once() -> None:
    # Given fallbacks that repeat the requested channel
    asked: list[str] = []

    def available(channel: str) -> bool:
        asked.append(channel)
        return False

    # When a channel is chosen
    choose_channel("email", ["email", "sms", "sms"], available)

    # Then each channel was asked about once, in order
    assert asked == ["email", "sms"]
