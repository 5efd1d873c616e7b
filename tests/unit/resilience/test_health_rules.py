"""The degradation-mode rules (resilience.health.assess): every mode boundary, and the texts people read."""

from __future__ import annotations

import pytest

from resilience import (
    BreakerState,
    ChannelUse,
    ConfigurationError,
    DependencyCheck,
    HealthThresholds,
    Mode,
    ProviderHealth,
    QueueHealth,
    assess,
    load_health_thresholds,
)
from resilience.health import NORMAL_REASON, channel_label

EMAIL = ChannelUse("email", ("sendgrid", "ses"))
SMS = ChannelUse("sms", ("twilio", "sns-sms"))
PUSH = ChannelUse("push", ("fcm",))
CHANNELS = (EMAIL, SMS, PUSH)


def check(name: str, *, ok: bool = True, error: str | None = None) -> DependencyCheck:
    return DependencyCheck(name=name, ok=ok, latency_ms=12.5, error=error, checked_at=1_700_000_000.0)


def queue(
    name: str = "standard", *, age: float | None = None, visible: int = 0, dead_letter: bool = False
) -> QueueHealth:
    return QueueHealth(
        name=name, visible=visible, in_flight=0, delayed=0, oldest_age_seconds=age, is_dead_letter=dead_letter
    )


def down(channel: str, *names: str, state: str = "OPEN") -> list[ProviderHealth]:
    return [ProviderHealth(name, channel, state) for name in names]


HEALTHY_CHECKS = [check("dynamodb"), check("sqs:standard"), check("sqs:priority")]


def test_all_well_is_normal() -> None:
    # Given every dependency reachable, every provider CLOSED, queues fresh
    providers = [ProviderHealth(p, use.channel, BreakerState.CLOSED) for use in CHANNELS for p in use.providers]

    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, providers, [queue(age=5), queue("dead-letter", dead_letter=True)], CHANNELS)

    # Then it is NORMAL, says so, and has nothing to tell callers or to alarm on
    assert result.mode is Mode.NORMAL
    assert result.reason == NORMAL_REASON == "all dependencies reachable and every provider delivering"
    assert (result.down_channels, result.degraded_channels, result.notices, result.alarms) == ((), (), {}, ())


def test_one_provider_down_with_another_up_is_partial_and_needs_no_notice() -> None:
    # Given sendgrid's breaker OPEN while ses delivers
    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, down("email", "sendgrid"), [], CHANNELS)

    # Then email still has a way out: PARTIAL, and callers are told nothing (delivery is unaffected)
    assert result.mode is Mode.PARTIAL
    assert result.reason == "email is degraded to one provider: sendgrid is failing (OPEN); ses is delivering"
    assert result.degraded_channels == ("email",)
    assert result.down_channels == ()
    assert result.notices == {}


@pytest.mark.parametrize(
    ("state", "mode"),
    [
        (BreakerState.CLOSED, Mode.NORMAL),
        (BreakerState.DISABLED, Mode.NORMAL),  # switched off by an operator: every call flows
        (BreakerState.HALF_OPEN, Mode.PARTIAL),  # only probes pass
        (BreakerState.OPEN, Mode.PARTIAL),
        (BreakerState.FORCED_OPEN, Mode.PARTIAL),
    ],
)
def test_a_provider_is_down_when_its_breaker_holds_ordinary_traffic_back(state: BreakerState, mode: Mode) -> None:
    # Given one email provider's breaker in `state`, the other CLOSED
    # When the mode is assessed (the state given by its name, as a monitor reads it)
    result = assess([], down("email", "sendgrid", state=str(state)), [], CHANNELS)

    # Then only the states that reject ordinary calls count as down
    assert result.mode is mode


def test_every_provider_of_one_channel_down_is_degraded_with_a_notice() -> None:
    # Given both SMS providers OPEN, email and push well
    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, down("sms", "twilio", "sns-sms"), [], CHANNELS)

    # Then SMS has no way out: DEGRADED, and API callers are told their message waits
    assert result.mode is Mode.DEGRADED
    assert result.reason == "SMS delivery is delayed: both SMS providers are failing (twilio OPEN, sns-sms OPEN)"
    assert result.down_channels == ("sms",)
    assert result.notices == {
        "sms": "SMS delivery is delayed: both SMS providers are failing; "
        "your message is queued and will be sent when one recovers"
    }


def test_a_channel_with_its_only_provider_down_is_degraded() -> None:
    # Given push's only provider forced open
    # When the mode is assessed
    result = assess([], down("push", "fcm", state="FORCED_OPEN"), [], CHANNELS)

    # Then the texts speak of the one provider
    assert result.mode is Mode.DEGRADED
    assert result.reason == "push delivery is delayed: the push provider is failing (fcm FORCED_OPEN)"
    assert result.notices == {
        "push": "Push delivery is delayed: the push provider is failing; "
        "your message is queued and will be sent when it recovers"
    }


def test_a_down_channel_with_a_fallback_that_delivers_says_so() -> None:
    # Given SMS down, falling back to email (up) and push (down)
    sms = ChannelUse("sms", ("twilio", "sns-sms"), fallbacks=("push", "email", "webhook"))
    providers = down("sms", "twilio", "sns-sms") + down("push", "fcm")

    # When the mode is assessed (webhook is not in use, so it is no way out)
    result = assess([], providers, [], [EMAIL, sms, PUSH])

    # Then it is still DEGRADED, and the texts name email, the one fallback that can deliver
    assert result.mode is Mode.DEGRADED
    assert result.down_channels == ("sms", "push")
    assert result.reason.startswith(
        "SMS delivery is delayed: both SMS providers are failing (twilio OPEN, sns-sms OPEN), "
        "and messages that allow it fall back to email; push delivery is delayed"
    )
    assert result.notices["sms"] == (
        "SMS delivery is delayed: both SMS providers are failing; "
        "your message is queued and will be sent when one recovers, or by email if it allows a fallback"
    )


def test_every_channel_down_is_critical() -> None:
    # Given every provider of every channel in use OPEN
    providers = down("email", "sendgrid", "ses") + down("sms", "twilio", "sns-sms") + down("push", "fcm")

    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, providers, [], CHANNELS)

    # Then nothing can deliver: CRITICAL, said first, each channel's detail after
    assert result.mode is Mode.CRITICAL
    assert result.reason.startswith("no channel can deliver: every provider of email, SMS and push is failing; ")
    assert "SMS delivery is delayed: both SMS providers are failing (twilio OPEN, sns-sms OPEN)" in result.reason
    assert result.down_channels == ("email", "sms", "push")
    assert set(result.notices) == {"email", "sms", "push"}


def test_all_channels_but_one_down_is_degraded_not_critical() -> None:
    # Given email and SMS down, push's only provider still up
    providers = down("email", "sendgrid", "ses") + down("sms", "twilio", "sns-sms")

    # When the mode is assessed
    result = assess([], providers, [], CHANNELS)

    # Then one channel can still deliver: DEGRADED
    assert result.mode is Mode.DEGRADED
    assert result.down_channels == ("email", "sms")


@pytest.mark.parametrize("name", ["dynamodb", "dynamodb:notifications", "sqs:standard", "SQS"])
def test_dynamodb_or_sqs_unreachable_is_critical(name: str) -> None:
    # Given a failed check of DynamoDB or SQS, every provider well
    # When the mode is assessed
    result = assess([check(name, ok=False)], [], [], CHANNELS)

    # Then it is CRITICAL
    assert result.mode is Mode.CRITICAL


def test_the_reason_names_the_unreachable_dependency_and_its_error() -> None:
    # Given DynamoDB unreachable, and the standard queue's SQS check timing out
    checks = [check("dynamodb", ok=False), check("sqs:standard", ok=False, error="ConnectTimeoutError")]

    # When the mode is assessed
    result = assess(checks, [], [], CHANNELS)

    # Then both are named, in plain words
    assert result.reason == "DynamoDB is unreachable; SQS (standard) is unreachable (ConnectTimeoutError)"
    assert result.notices == {}  # not a channel's problem: the caller decides what to say


def test_another_dependency_unreachable_is_degraded_and_the_critical_set_is_configurable() -> None:
    # Given a failed check of a dependency outside the critical set
    failed = [check("secrets:webhook-signing", ok=False)]

    # When the mode is assessed with the default thresholds, then with that dependency made critical
    default = assess(failed, [], [], CHANNELS)
    configured = assess(failed, [], [], CHANNELS, HealthThresholds(critical_dependencies=("dynamodb", "secrets")))

    # Then it degrades by default, and is critical when configured so
    assert (default.mode, default.reason) == (Mode.DEGRADED, "secrets (webhook-signing) is unreachable")
    assert configured.mode is Mode.CRITICAL


@pytest.mark.parametrize(
    ("age", "mode"),
    [(None, Mode.NORMAL), (0.0, Mode.NORMAL), (300.0, Mode.NORMAL), (300.5, Mode.DEGRADED), (301.0, Mode.DEGRADED)],
)
def test_a_queue_degrades_only_past_its_age_threshold(age: float | None, mode: Mode) -> None:
    # Given the standard queue's oldest message `age` seconds old (threshold 300 s, the default)
    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, [], [queue(age=age, visible=4)], CHANNELS)

    # Then exactly at the threshold is still well, and anything past it is DEGRADED
    assert result.mode is mode


def test_the_queue_age_reason_and_a_configured_threshold() -> None:
    # Given a threshold of 60 s, and queues at 60 s and 412 s
    thresholds = HealthThresholds(queue_age_seconds=60)
    queues = [queue("priority", age=60), queue("standard", age=412)]

    # When the mode is assessed
    result = assess([], [], queues, CHANNELS, thresholds)

    # Then only the older one is named, with its age and the threshold
    assert result.mode is Mode.DEGRADED
    assert result.reason == "the standard queue's oldest message is 412 s old (threshold 60 s)"


def test_a_dead_letter_queue_is_judged_by_its_messages_not_its_age() -> None:
    # Given dead-letter queues with old messages, under the default thresholds
    dlq = queue("standard-dlq", age=86_400, visible=3, dead_letter=True)
    inbound = queue("inbound", age=86_400, visible=1, dead_letter=True)

    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, [], [dlq, inbound], CHANNELS)

    # Then it is an alarm, not a mode
    assert result.mode is Mode.NORMAL
    assert result.reason == NORMAL_REASON
    assert result.alarms == (
        "the standard-dlq queue holds 3 messages",
        "the inbound dead-letter queue holds 1 message",
    )


@pytest.mark.parametrize(("messages", "mode"), [(0, Mode.NORMAL), (1, Mode.DEGRADED)])
def test_a_non_empty_dead_letter_queue_degrades_when_configured_to(messages: int, mode: Mode) -> None:
    # Given RESILIENCE_HEALTH_DLQ_DEGRADED set, and a dead-letter queue holding `messages`
    thresholds = load_health_thresholds({"RESILIENCE_HEALTH_DLQ_DEGRADED": "true"})

    # When the mode is assessed
    result = assess([], [], [queue("dead-letter", visible=messages, dead_letter=True)], CHANNELS, thresholds)

    # Then one message is enough to degrade, and none is well
    assert result.mode is mode
    if messages:
        assert result.reason == "the dead-letter queue holds 1 message"
        assert result.alarms == (result.reason,)


def test_several_problems_are_joined_worst_first() -> None:
    # Given (in this order) a slow queue, one email provider down, SMS down, and DynamoDB unreachable
    providers = down("email", "sendgrid") + down("sms", "twilio", "sns-sms")

    # When the mode is assessed
    result = assess([check("dynamodb", ok=False)], providers, [queue(age=412)], CHANNELS)

    # Then the worst comes first: CRITICAL, then each DEGRADED, then PARTIAL
    assert result.mode is Mode.CRITICAL
    assert [finding.mode for finding in result.findings] == [Mode.CRITICAL, Mode.DEGRADED, Mode.DEGRADED, Mode.PARTIAL]
    assert result.reason == (
        "DynamoDB is unreachable; "
        "SMS delivery is delayed: both SMS providers are failing (twilio OPEN, sns-sms OPEN); "
        "the standard queue's oldest message is 412 s old (threshold 300 s); "
        "email is degraded to one provider: sendgrid is failing (OPEN); ses is delivering"
    )


def test_texts_for_three_providers() -> None:
    # Given an email channel of three providers, two down, then all three
    email = ChannelUse("email", ("sendgrid", "mailgun", "ses"))
    two = down("email", "sendgrid") + down("email", "mailgun", state="HALF_OPEN")

    # When the mode is assessed for each
    partial = assess([], two, [], [email, SMS])
    degraded = assess([], [*two, *down("email", "ses")], [], [email, SMS])

    # Then the counts are in words
    assert partial.reason == (
        "email is degraded to one provider: sendgrid and mailgun are failing (OPEN, HALF_OPEN); ses is delivering"
    )
    assert degraded.reason.startswith("email delivery is delayed: all 3 email providers are failing")
    assert degraded.notices["email"].startswith("Email delivery is delayed: all 3 email providers are failing;")


def test_providers_are_matched_by_channel_and_missing_ones_are_closed() -> None:
    # Given sns down as an SMS provider only, a provider not in use down, and no state at all for push's fcm
    sms = ChannelUse("sms", ("sns",))
    push = ChannelUse("push", ("fcm", "sns"))
    providers = [*down("sms", "sns"), ProviderHealth("sns", "push", "CLOSED"), *down("email", "postmark")]

    # When the mode is assessed with email not in use
    result = assess([], providers, [], [sms, push])

    # Then only SMS is down: push's sns is up, fcm (never stored) is CLOSED, postmark's channel is not in use
    assert result.mode is Mode.DEGRADED
    assert result.down_channels == ("sms",)
    assert result.degraded_channels == ()


def test_no_channel_in_use_leaves_the_channel_rules_out() -> None:
    # Given no channel in use
    # When the mode is assessed
    result = assess(HEALTHY_CHECKS, down("email", "sendgrid"), [], [])

    # Then nothing is "unable to deliver"
    assert result.mode is Mode.NORMAL


def test_channel_names_for_people() -> None:
    # Given the default rule and a mapping passed in
    # When channels are named
    defaults = [channel_label(channel) for channel in ("email", "sms", "push", "webhook", "fax")]
    result = assess([], down("sms", "twilio", "sns-sms"), [], [SMS], channel_names={"sms": "text message"})

    # Then short names are upper case, others as they are, and the mapping wins
    assert defaults == ["email", "SMS", "push", "webhook", "FAX"]
    assert result.notices["sms"].startswith("Text message delivery is delayed: both text message providers")


def test_bad_inputs_fail_at_the_edge() -> None:
    # Given inputs a monitor could get wrong
    # When they are built or assessed
    # Then each is refused with a message a person understands
    with pytest.raises(ValueError, match="unknown breaker state 'BROKEN'"):
        ProviderHealth("twilio", "sms", "BROKEN")
    with pytest.raises(ValueError, match="without a provider"):
        ChannelUse("sms", ())
    with pytest.raises(ValueError, match="listed twice"):
        assess([], [], [], [SMS, SMS])


def test_the_assessment_is_json_ready() -> None:
    # Given SMS down and a non-empty dead-letter queue
    result = assess([], down("sms", "twilio", "sns-sms"), [queue("dlq", visible=2, dead_letter=True)], CHANNELS)

    # When it is turned into a dict
    as_dict = result.as_dict()

    # Then every field is plain JSON
    assert as_dict == {
        "mode": "DEGRADED",
        "reason": result.reason,
        "down_channels": ["sms"],
        "degraded_channels": [],
        "notices": dict(result.notices),
        "alarms": ["the dlq queue holds 2 messages"],
    }


def test_thresholds_from_the_environment() -> None:
    # Given the health variables set (and an unrelated one)
    environ = {
        "RESILIENCE_HEALTH_QUEUE_AGE_SECONDS": "600",
        "RESILIENCE_HEALTH_DLQ_DEGRADED": "Yes",
        "RESILIENCE_HEALTH_CRITICAL_DEPENDENCIES": "dynamodb, sqs ,s3",
        "RESILIENCE_TABLE": "t",
    }

    # When they are read, and when none is set
    thresholds = load_health_thresholds(environ)
    defaults = load_health_thresholds({})

    # Then each applies over its default
    assert thresholds == HealthThresholds(
        queue_age_seconds=600, dlq_degraded=True, critical_dependencies=("dynamodb", "sqs", "s3")
    )
    assert defaults == HealthThresholds(
        queue_age_seconds=300, dlq_degraded=False, critical_dependencies=("dynamodb", "sqs")
    )


def test_bad_threshold_variables_are_reported_together() -> None:
    # Given a number that is not one, a flag that is not one, and an unknown setting
    environ = {
        "RESILIENCE_HEALTH_QUEUE_AGE_SECONDS": "five minutes",
        "RESILIENCE_HEALTH_DLQ_DEGRADED": "maybe",
        "RESILIENCE_HEALTH_QUEUE_DEPTH": "10",
    }

    # When they are read
    with pytest.raises(ConfigurationError) as raised:
        load_health_thresholds(environ)

    # Then one error names all three
    message = str(raised.value)
    assert "RESILIENCE_HEALTH_QUEUE_AGE_SECONDS is not a number" in message
    assert "RESILIENCE_HEALTH_DLQ_DEGRADED is not true or false" in message
    assert "unknown health setting 'queue_depth'" in message
