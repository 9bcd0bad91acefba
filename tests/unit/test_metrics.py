"""Prometheus metrics settings and helpers, with no worker: what turns metrics on, labels, cleanup.

A real worker with metrics on, scraped for real, is in
tests/integration/test_metrics.py.
"""

from __future__ import annotations

import os

import pytest
from dramatiq.brokers.stub import StubBroker

from dispatch.call import Call
from dispatch.errors import ConfigurationError
from dispatch.metrics import Metrics, _remove_ended_runs, attach_metrics
from dispatch.settings import Settings


def test_metrics_are_off_unless_asked_for():
    assert not Settings.from_env({}).metrics_enabled
    assert not Settings.from_env({"DISPATCH_METRICS": "0"}).metrics_enabled


def test_a_port_or_the_flag_turns_metrics_on():
    by_port = Metrics(Settings.from_env({"DISPATCH_METRICS_PORT": "9300", "DISPATCH_METRICS_HOST": "0.0.0.0"}))
    assert (by_port.host, by_port.port) == ("0.0.0.0", 9300)
    flag = Settings.from_env({"DISPATCH_METRICS": "yes"})
    assert flag.metrics_enabled
    assert (Metrics(flag).host, Metrics(flag).port) == ("127.0.0.1", 9191)


def test_metrics_are_attached_once():
    broker = StubBroker()
    settings = Settings.from_env({"DISPATCH_METRICS": "1"})
    attach_metrics(broker, settings)
    attach_metrics(broker, settings)
    assert sum(isinstance(m, Metrics) for m in broker.middleware) == 1


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
        Settings.from_env(environ)


def test_host_label_is_host_and_port_without_credentials():
    assert Call("http://user:pw@Example.com:8080/p?q=1").host == "example.com:8080"
    assert Call("https://example.com/p").host == "example.com"
    assert Call("http://[::1]:9000/").host == "[::1]:9000"


def test_a_client_broker_with_metrics_enqueues_without_setting_anything_up():
    # Only worker processes emit process_boot; a client must still be able to send.
    import dramatiq

    broker = StubBroker(middleware=[Metrics(Settings.from_env({"DISPATCH_METRICS": "1"}))])
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


def test_the_hosts_gauges_follow_the_shared_state_and_a_redis_outage_only_empties_them(caplog):
    import redis

    from dispatch.flow import HostState
    from dispatch.metrics import HostsCollector

    class Flow:
        def __init__(self):
            self.states = [
                HostState("api.example.com", 4, "50/s", 3, "half-open", 5),
                HostState("b:80", None, None, 0, "off", 0),
            ]

        def host_states(self):
            if self.states is None:
                raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
            return self.states

    flow = Flow()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in HostsCollector(flow).collect()
        for s in family.samples
    }
    assert samples[("dispatch_breaker_state", (("host", "api.example.com"), ("state", "half-open")))] == 1
    assert samples[("dispatch_breaker_state", (("host", "api.example.com"), ("state", "open")))] == 0
    assert samples[("dispatch_breaker_failures", (("host", "api.example.com"),))] == 5
    assert samples[("dispatch_host_in_flight", (("host", "b:80"),))] == 0
    assert not any(name == "dispatch_breaker_state" and ("host", "b:80") in labels for name, labels in samples)
    flow.states = None
    assert list(HostsCollector(flow).collect()) == []
    assert "cannot read the hosts' flow state" in caplog.text


def test_host_labels_are_capped_and_later_hosts_are_counted_as_other(monkeypatch):
    import prometheus_client as prom

    from dispatch import metrics

    monkeypatch.setattr(metrics, "MAX_HOST_LABELS", 3)
    registry = prom.CollectorRegistry()
    worker = Metrics(Settings.from_env({"DISPATCH_METRICS": "1"}))
    worker.attempts = prom.Counter("dispatch_attempts", "", ["host", "outcome"], registry=registry)
    worker.attempt_seconds = prom.Histogram("dispatch_attempt_duration_seconds", "", ["host"], registry=registry)
    worker.retries = prom.Counter("dispatch_retries", "", ["host"], registry=registry)
    for number in [*range(50), 0]:  # URLs from outside: a host per call
        with worker.observe("GET", f"http://host-{number}.example/hook"):
            pass
    counted = {
        sample.labels["host"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "dispatch_attempts_total"
    }
    assert counted == {"host-0.example": 2, "host-1.example": 1, "host-2.example": 1, "other": 47}


def test_the_hosts_gauges_past_the_cap_are_added_up_as_other(monkeypatch):
    from dispatch import metrics
    from dispatch.flow import HostState

    monkeypatch.setattr(metrics, "MAX_HOST_LABELS", 2)

    class Flow:
        def host_states(self):
            return [HostState(f"h{n}:80", 4, None, 1, "open" if n % 2 else "closed", 0) for n in range(6)]

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.HostsCollector(Flow()).collect()
        for s in family.samples
    }
    assert {labels for name, labels in samples if name == "dispatch_host_in_flight"} == {
        (("host", "h0:80"),),
        (("host", "h1:80"),),
        (("host", "other"),),
    }
    assert samples[("dispatch_host_in_flight", (("host", "other"),))] == 4
    assert samples[("dispatch_breaker_state", (("host", "other"), ("state", "open")))] == 2
