"""Breaker configuration defaults, overrides and the settings read once from the environment."""

from __future__ import annotations

import pytest

from resilience import BreakerConfig, ConfigurationError, load_settings


def test_defaults_live_in_one_place_and_are_valid() -> None:
    # Given / When the default configuration
    config = BreakerConfig()

    # Then it holds the documented values
    assert (config.window_seconds, config.minimum_calls, config.failure_rate_threshold) == (30, 80, 0.43)
    assert (config.wait_open_seconds, config.half_open_permits, config.success_threshold) == (30, 3, 2)
    assert (config.cache_ttl_seconds, config.suspect_cache_ttl_seconds, config.local_minimum_calls) == (5, 0.5, 5)


def test_the_wait_grows_per_consecutive_open_up_to_the_cap() -> None:
    # Given wait 30 s, multiplier 2, cap 300 s
    config = BreakerConfig()

    # When the waits of the 1st..6th consecutive open are computed (and a very long outage)
    waits = [config.wait_for(n) for n in range(1, 7)]

    # Then they double and stop at the cap, without overflowing
    assert waits == [30, 60, 120, 240, 300, 300]
    assert config.wait_for(10_000) == 300


@pytest.mark.parametrize(
    "overrides",
    [
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 1.5},
        {"minimum_calls": 0},
        {"success_threshold": 4},  # more than half_open_permits=3
        {"bucket_seconds": 60},  # wider than the window
        {"wait_open_max_seconds": 1},
        {"no_such_setting": 1},
        {"minimum_calls": "many"},
    ],
)
def test_invalid_configuration_is_refused(overrides: dict[str, object]) -> None:
    # Given an invalid override
    # When it is applied
    # Then it is a configuration error
    with pytest.raises(ConfigurationError):
        BreakerConfig().with_overrides(overrides)


def test_settings_read_the_environment_once_and_convert_overrides() -> None:
    # Given an environment such as the template sets, plus operator overrides
    environ = {
        "RESILIENCE_TABLE": "herald-resilience",
        "POWERTOOLS_METRICS_NAMESPACE": "HeraldStaging",
        "RESILIENCE_BREAKER_WAIT_OPEN_SECONDS": "10",
        "RESILIENCE_BREAKER_OVERRIDES": '{"provider:sendgrid": {"minimum_calls": 100}}',
    }

    # When the settings are loaded
    settings = load_settings(environ)

    # Then the table, namespace and overrides are there, and the service falls back to its default
    assert settings.require_table() == "herald-resilience"
    assert (settings.metrics_namespace, settings.service_name) == ("HeraldStaging", "herald")
    assert BreakerConfig().with_overrides(settings.breaker_defaults).wait_open_seconds == 10
    assert settings.breaker_overrides == {"provider:sendgrid": {"minimum_calls": 100}}


@pytest.mark.parametrize(
    "environ",
    [
        {"RESILIENCE_BREAKER_OVERRIDES": "not json"},
        {"RESILIENCE_BREAKER_OVERRIDES": '["a list"]'},
        {"RESILIENCE_BREAKER_OVERRIDES": '{"p": {"bogus": 1}}'},
        {"RESILIENCE_BREAKER_BOGUS": "1"},
        {"RESILIENCE_BREAKER_MINIMUM_CALLS": "0"},
    ],
)
def test_bad_environment_fails_at_start_up(environ: dict[str, str]) -> None:
    # Given a malformed variable
    # When the settings are loaded
    # Then loading fails with a clear configuration error, not on first use
    with pytest.raises(ConfigurationError):
        load_settings(environ)


def test_a_missing_table_is_reported_when_the_store_is_needed() -> None:
    # Given no RESILIENCE_TABLE
    settings = load_settings({})

    # When the table is required
    # Then the error names the variable
    with pytest.raises(ConfigurationError, match="RESILIENCE_TABLE"):
        settings.require_table()
