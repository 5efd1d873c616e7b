"""Stage method throttles (``MethodSettings``): which setting governs a method, one shared bucket per method, refill."""

from __future__ import annotations

import pytest

from local.apigateway.throttle import (
    ACCOUNT_BURST_LIMIT,
    ACCOUNT_RATE_LIMIT,
    MethodSetting,
    MethodThrottle,
    decode_resource_path,
)
from tests.support.clock import FakeClock


def _throttle(*settings: dict[str, object], clock: FakeClock | None = None) -> MethodThrottle:
    throttle = MethodThrottle.from_stage(list(settings), clock or FakeClock())
    assert throttle is not None
    return throttle


@pytest.mark.parametrize(
    ("encoded", "path"),
    [
        ("/~1health~1live", "/health/live"),
        ("/~1health", "/health"),
        ("/~1notifications~1{id}", "/notifications/{id}"),
        ("/~1a~0b", "/a~b"),
        ("/", "/"),
        ("/*", "/*"),
    ],
)
def test_resource_path_is_decoded_as_cloudformation_encodes_it(encoded: str, path: str) -> None:
    # Given / When a MethodSettings ResourcePath as CloudFormation takes it / Then it names the API's resource
    assert decode_resource_path(encoded) == path


def test_resource_path_with_a_plain_slash_inside_is_refused_with_its_encoding() -> None:
    # Given a ResourcePath written as the URL path, or a bare star (a deployment refuses both)
    # When it is read / Then the error says how to write it
    with pytest.raises(ValueError, match="write '/~1health~1live'"):
        decode_resource_path("/health/live")
    with pytest.raises(ValueError, match=r"or '/\*' for every resource"):
        decode_resource_path("*")
    with pytest.raises(ValueError, match="write '/~1health'"):
        decode_resource_path("/health")


def test_negative_limit_is_refused() -> None:
    # Given / When / Then a negative limit is not a throttle API Gateway takes
    with pytest.raises(ValueError, match="ThrottlingBurstLimit must not be negative"):
        MethodSetting.from_template({"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingBurstLimit": -1})


def test_stage_without_throttling_settings_has_no_method_throttle() -> None:
    # Given method settings that only switch metrics on / When read / Then nothing is throttled per method
    assert MethodThrottle.from_stage([{"ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True}]) is None
    assert MethodThrottle.from_stage([]) is None


def test_each_limit_comes_from_the_most_specific_setting_that_gives_it() -> None:
    # Given stage defaults, a GET default for every resource, and a burst for GET /health/live alone
    throttle = _throttle(
        {"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200},
        {"ResourcePath": "/*", "HttpMethod": "GET", "ThrottlingRateLimit": 50},
        {"ResourcePath": "/~1health~1live", "HttpMethod": "GET", "ThrottlingBurstLimit": 10},
    )

    # When / Then GET /health/live takes its burst from its own setting and its rate from the GET default; other
    # methods fall back through the wildcards
    assert throttle.limits("/health/live", "GET") == (50.0, 10)
    assert throttle.limits("/notifications", "GET") == (50.0, 200)
    assert throttle.limits("/notifications", "POST") == (100.0, 200)


def test_a_limit_no_setting_gives_is_the_account_default_and_an_unaddressed_method_is_not_throttled() -> None:
    # Given one setting with a burst only
    throttle = _throttle({"ResourcePath": "/~1health", "HttpMethod": "GET", "ThrottlingBurstLimit": "3"})

    # When / Then its rate is the account's default, and a method it does not address has no method throttle
    assert throttle.limits("/health", "GET") == (ACCOUNT_RATE_LIMIT, 3)
    assert throttle.limits("/health", "POST") is None
    assert throttle.limits("/health/live", "GET") is None
    assert all(throttle.allow("/health/live", "GET") for _ in range(ACCOUNT_BURST_LIMIT + 1))


def test_one_bucket_per_method_refills_at_the_rate() -> None:
    # Given GET /health with burst 2 at 1 request per second, on a hand-moved clock
    clock = FakeClock()
    throttle = _throttle(
        {"ResourcePath": "/~1health", "HttpMethod": "GET", "ThrottlingRateLimit": 1, "ThrottlingBurstLimit": 2},
        clock=clock,
    )

    # When three requests come at once, then one after half a second, then one after a further half second
    at_once = [throttle.allow("/health", "GET") for _ in range(3)]
    clock.advance(0.5)
    half_second = throttle.allow("/health", "GET")
    clock.advance(0.5)
    one_second = throttle.allow("/health", "GET")

    # Then the burst passes, the third is throttled, and one token has come back after a second
    assert at_once == [True, True, False]
    assert half_second is False
    assert one_second is True


def test_wildcard_setting_gives_every_method_a_bucket_of_its_own() -> None:
    # Given stage defaults of burst 1 and no refill
    throttle = _throttle({"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 0, "ThrottlingBurstLimit": 1})

    # When each of three methods is called twice
    answers = {
        (path, method): [throttle.allow(path, method) for _ in range(2)]
        for path, method in (("/health", "GET"), ("/health/live", "GET"), ("/notifications", "POST"))
    }

    # Then each method passed once and was throttled once: spending one's burst leaves the others' alone
    assert set(map(tuple, answers.values())) == {(True, False)}


def test_setting_for_any_method_addresses_an_any_route_only() -> None:
    # Given a setting for the ANY method of /proxy
    throttle = _throttle({"ResourcePath": "/~1proxy", "HttpMethod": "any", "ThrottlingBurstLimit": 0})

    # When / Then the route declared with ANY is throttled; a GET route of the same path is another method
    assert throttle.allow("/proxy", "ANY") is False
    assert throttle.allow("/proxy", "GET") is True
