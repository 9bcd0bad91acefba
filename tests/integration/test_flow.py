"""Flow per destination, across worker processes: a concurrency limit, and a breaker that heals itself.

The destinations file limits the Node endpoint's host; the endpoint counts
how many calls it holds at once (``/hold``, ``/peak``) and how often it was
hit, so the limits are checked where they matter: at the receiving end.
"""

from __future__ import annotations

import json

import pytest
import requests

from dispatch import TransportError

from .support import dispatch, free_port, wait_for

pytestmark = pytest.mark.integration


def destinations_file(tmp_path, endpoint, text: str) -> str:
    path = tmp_path / "destinations.toml"
    path.write_text(f'[destinations."127.0.0.1:{endpoint.port}"]\n{text}\n')
    return str(path)


def test_max_concurrency_holds_across_two_worker_processes(make_worker, node_endpoint, tmp_path):
    env = {"DISPATCH_DESTINATIONS": destinations_file(tmp_path, node_endpoint, "max_concurrency = 3")}
    first = make_worker(threads=8, **env)
    make_worker(threads=8, queue=first.queue, **env)  # a second process on the same queue
    key = f"conc-{tmp_path.name}"
    handles = [first.send(node_endpoint.url("/hold"), params={"key": key, "ms": 300}) for _ in range(24)]
    assert all(1 <= handle.get(timeout=120) <= 3 for handle in handles)
    assert requests_peak(node_endpoint, key) == 3  # the limit was reached, never passed
    assert node_endpoint.hits(key) == 24  # a call that waited was not attempted, so not retried either


def test_a_rate_holds_across_two_worker_processes(make_worker, node_endpoint, tmp_path):
    env = {"DISPATCH_DESTINATIONS": destinations_file(tmp_path, node_endpoint, 'rate = "4/s"')}
    first = make_worker(threads=8, **env)
    make_worker(threads=8, queue=first.queue, **env)
    key = f"rate-{tmp_path.name}"
    handles = [first.send(node_endpoint.url("/hold"), params={"key": key, "ms": 1}) for _ in range(12)]
    assert all(handle.get(timeout=120) >= 1 for handle in handles)
    assert node_endpoint.hits(key) == 12  # waiting for the window is not an attempt
    busiest = requests.get(f"{node_endpoint.base}/busiest_second/{key}", timeout=5).json()["retval"]
    assert busiest <= 5  # 4 a second; one more may straddle a second's edge between worker and endpoint


def test_a_breaker_opens_makes_calls_wait_then_probes_and_closes(make_worker, node_endpoint, tmp_path):
    env = {
        "DISPATCH_DESTINATIONS": destinations_file(tmp_path, node_endpoint, "breaker = { failures = 2, cooldown = 3 }"),
        "DISPATCH_MAX_ATTEMPTS": "1",
    }
    metrics_port = free_port()
    worker = make_worker(DISPATCH_METRICS_PORT=str(metrics_port), **env)
    key = f"breaker-{tmp_path.name}"
    flaky = node_endpoint.url("/flaky")
    for _ in range(2):  # two consecutive transport failures (503) open the breaker
        with pytest.raises(TransportError):
            worker.send(flaky, params={"key": key, "fail": 2}).get(timeout=30)
    host = f"127.0.0.1:{node_endpoint.port}"
    assert host_state(env, host)["breaker"] == "open"
    open_now = scrape(metrics_port)
    assert open_now[("dispatch_breaker_state", host, "open")] == 1
    assert open_now[("dispatch_breaker_state", host, "closed")] == 0
    assert open_now[("dispatch_breaker_failures", host, None)] == 2
    # Sent while the breaker is open: it waits out the cooldown, then goes alone as the probe.
    # The endpoint now answers, so the probe succeeds on its one attempt (the third hit).
    assert worker.send(flaky, params={"key": key, "fail": 2}).get(timeout=30) == 3
    assert node_endpoint.hits(key) == 3
    assert host_state(env, host) == {
        "host": host,
        "max_concurrency": None,
        "rate": None,
        "in_flight": 0,
        "breaker": "closed",
        "failures": 0,
        "holders": [],
        "probe": None,  # the probe call gave its lease back when it ended
    }
    log = worker.log()
    assert log.count(f"breaker for {host} opened") == 1
    assert log.count(f"breaker for {host}: cooldown over, sending one probe call") == 1
    assert log.count(f"breaker for {host} closed") == 1
    assert "was skipped" not in log  # waiting is routine: no warning per wait
    closed = scrape(metrics_port)
    assert closed[("dispatch_breaker_state", host, "closed")] == 1
    assert closed[("dispatch_breaker_state", host, "open")] == 0
    assert closed[("dispatch_flow_waits_total", host, "breaker")] >= 1  # the probe waited out the cooldown


def test_dispatch_hosts_without_a_file_says_how_to_get_one(vhost):
    result = dispatch("hosts")
    assert result.returncode == 0 and "DISPATCH_DESTINATIONS" in result.stderr  # lists live hosts, if any


def host_state(env: dict, host: str) -> dict:
    result = dispatch("hosts", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return next(state for state in json.loads(result.stdout) if state["host"] == host)


def scrape(port: int) -> dict[tuple[str, str, str | None], float]:
    """The worker's /metrics samples that have a host label, by (name, host, state or reason)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = wait_for(lambda: metrics_text(port), 30, "the worker's metrics server")
    return {
        (sample.name, sample.labels["host"], sample.labels.get("state", sample.labels.get("reason"))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "host" in sample.labels
    }


def metrics_text(port: int) -> str | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.ConnectionError:
        return None


def requests_peak(endpoint, key: str) -> int:
    return requests.get(f"{endpoint.base}/peak/{key}", timeout=5).json()["retval"]
