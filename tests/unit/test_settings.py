"""Configuration (``dispatch.settings``): the defaults, every bad variable named, and a bad configuration
stopping a worker at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dispatch import (
    URL,
    ConfigurationError,
)
from dispatch.settings import Settings


def test_defaults_match_the_contract():
    settings = Settings.from_env({})
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert settings.results_url == "redis://127.0.0.1:6379/0"
    assert settings.queue == "dispatch"
    assert settings.timeout == 10
    assert settings.max_attempts == 5
    assert settings.max_response_bytes == 10485760


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCH_BROKER_URL", "http://rabbit"),
        ("DISPATCH_RESULTS_URL", "memcached://x"),
        ("DISPATCH_QUEUE", "bad queue!"),
        ("DISPATCH_TIMEOUT", "soon"),
        ("DISPATCH_TIMEOUT", "-1"),
        ("DISPATCH_MAX_ATTEMPTS", "0"),
        ("DISPATCH_MAX_ATTEMPTS", "2.5"),
        ("DISPATCH_MAX_RESPONSE_BYTES", "10MB"),
    ],
)
def test_unparseable_configuration_names_the_variable(variable, value):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value})


def test_bad_configuration_stops_worker_start_up(tmp_path):
    for command in (
        [sys.executable, "-c", "import dispatch.tasks"],
        [sys.executable, "-m", "dramatiq", "dispatch.tasks"],
    ):
        done = subprocess.run(
            command,
            env={"PATH": "/usr/bin:/bin", "DISPATCH_MAX_ATTEMPTS": "lots"},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode != 0
        assert "DISPATCH_MAX_ATTEMPTS='lots' is invalid: must be a positive integer" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCH_RETRY_SCHEDULE", "5,soon"),
        ("DISPATCH_RETRY_SCHEDULE", "-1"),
        ("DISPATCH_DENY_PRIVATE", "maybe"),
        ("DISPATCH_ALLOWED_HOSTS", "10.0.0.0/33"),
        ("DISPATCH_QUEUE_TYPE", "stream"),
        ("DISPATCH_SEND_TIMEOUT", "-3"),
    ],
)
def test_unparseable_reliability_settings_name_the_variable(variable, value):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value})


def test_retry_schedule_parses_and_per_call_schedule_is_checked():
    assert Settings.from_env({"DISPATCH_RETRY_SCHEDULE": "5, 300,1800"}).retry_schedule == (5, 300, 1800)
    assert Settings.from_env({}).retry_schedule == ()
    assert URL("http://h/", retry_schedule=(1, 2)).options == {"retry_schedule": [1, 2]}
    with pytest.raises(ValueError, match="retry_schedule"):
        URL("http://h/", retry_schedule=[1, -5])


def test_stub_urls_are_recognised_in_one_place():
    stub = Settings.from_env({"DISPATCH_BROKER_URL": "stub://", "DISPATCH_RESULTS_URL": "stub://"})
    assert stub.stub_broker and stub.stub_results
    real = Settings.from_env({})
    assert not real.stub_broker and not real.stub_results
