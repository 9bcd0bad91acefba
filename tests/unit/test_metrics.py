"""Prometheus metrics settings and helpers, with no worker: what turns metrics on, labels, cleanup.

A real worker with metrics on, scraped for real, is in
tests/integration/test_metrics.py.
"""

from __future__ import annotations

import os

import pytest
from dramatiq.brokers.stub import StubBroker

from dispatch.errors import ConfigurationError
from dispatch.metrics import Metrics, MetricsConfig, _remove_ended_runs, host_label, metrics_middleware


def test_metrics_are_off_unless_asked_for():
    assert metrics_middleware({}) == []
    assert metrics_middleware({"DISPATCH_METRICS": "0"}) == []


def test_a_port_or_the_flag_turns_metrics_on():
    [by_port] = metrics_middleware({"DISPATCH_METRICS_PORT": "9300", "DISPATCH_METRICS_HOST": "0.0.0.0"})
    assert isinstance(by_port, Metrics)
    assert by_port.config == MetricsConfig(enabled=True, host="0.0.0.0", port=9300)
    [by_flag] = metrics_middleware({"DISPATCH_METRICS": "yes"})
    assert by_flag.config == MetricsConfig(enabled=True, host="127.0.0.1", port=9191)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DISPATCH_METRICS_PORT": "http"}, "DISPATCH_METRICS_PORT"),
        ({"DISPATCH_METRICS_PORT": "70000"}, "DISPATCH_METRICS_PORT"),
        ({"DISPATCH_METRICS": "maybe"}, "DISPATCH_METRICS"),
    ],
)
def test_bad_metrics_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigurationError, match=variable):
        metrics_middleware(environ)


def test_host_label_is_host_and_port_without_credentials():
    assert host_label("http://user:pw@Example.com:8080/p?q=1") == "example.com:8080"
    assert host_label("https://example.com/p") == "example.com"
    assert host_label("http://[::1]:9000/") == "[::1]:9000"


def test_a_client_broker_with_metrics_enqueues_without_setting_anything_up():
    # Only worker processes emit process_boot; a client must still be able to send.
    import dramatiq

    broker = StubBroker(middleware=[Metrics(MetricsConfig(enabled=True))])
    actor = dramatiq.actor(lambda: None, actor_name="noop", broker=broker)
    actor.send()
    assert broker.queues["default"].qsize() == 1


def test_directories_of_ended_runs_are_removed(tmp_path):
    current = tmp_path / f"9300-{os.getpid()}"
    alive = tmp_path / "9300-1"  # init: always running
    ended = tmp_path / "9300-999999999"
    other_port = tmp_path / "9301-999999999"
    for directory in (current, alive, ended, other_port):
        directory.mkdir()
    _remove_ended_runs(9300, current)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current.name, alive.name, other_port.name])
