"""Prometheus metrics: a real worker with metrics on, real calls, a real scrape.

The worker is started the documented way,
``DISPATCH_METRICS_PORT=... dramatiq dispatch.tasks``, with two processes so the
numbers scraped are the sum over processes, on a queue of its own so every
call it counts is one this test sent.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dispatch.errors import RemoteExecuteError, TransportError

from .support import QUEUE, IsolatedWorker, delete_queues, free_port, unique_key, wait_for

Samples = dict[tuple[str, frozenset], float]


class MetricsWorker(IsolatedWorker):
    """An IsolatedWorker (own queue, ``send()``, cleanup) whose broker carries the Metrics middleware."""

    def __init__(self, log_path: Path, port: int, env: dict[str, str]) -> None:
        self.port = port
        super().__init__(
            log_path,
            {**env, "DISPATCH_METRICS_PORT": str(port)},
            queue=f"{QUEUE}-metrics-{unique_key()[:8]}",
            processes=2,
            threads=2,
        )

    @property
    def samples_directory(self) -> Path:
        """Where this run's processes keep their samples (named by port and dramatiq's main process)."""
        return Path(tempfile.gettempdir()) / "dispatch-metrics" / f"{self.port}-{self.process.pid}"

    def scrape(self) -> Samples | None:
        """Every sample on /metrics by (name, labels); None while the server is not up yet."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        except requests.ConnectionError:
            assert self.process.poll() is None, self.log()
            return None
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics_worker(vhost, redis_db, tmp_path) -> Iterator[MetricsWorker]:
    # One scheduled redelivery, so a call can be retried across deliveries too.
    worker = MetricsWorker(tmp_path / "worker.log", free_port(), {"DISPATCH_RETRY_SCHEDULE": "0.1"})
    yield worker
    worker.stop()
    delete_queues(worker.queue)
    # The run's sample files are cleaned up with the worker.
    assert not worker.samples_directory.exists()


@pytest.mark.integration
def test_worker_exports_per_host_and_dramatiq_metrics(metrics_worker, python_endpoint):
    ok = metrics_worker.send(python_endpoint.url("/multiply"), params={"x": 6, "y": 7})
    failed = metrics_worker.send(python_endpoint.url("/fail"), params={"reason": "no"})
    unavailable = metrics_worker.send(python_endpoint.url("/status/503"), params={"key": unique_key()})
    flaky = metrics_worker.send(python_endpoint.url("/flaky"), params={"key": unique_key(), "fail": 1, "code": 503})
    assert ok.get(timeout=60) == 42, metrics_worker.log()
    assert flaky.get(timeout=60) == 2
    with pytest.raises(RemoteExecuteError):
        failed.get(timeout=60)
    with pytest.raises(TransportError):
        unavailable.get(timeout=60)

    host = f"127.0.0.1:{python_endpoint.port}"

    def all_four_calls_counted() -> Samples | None:
        samples = metrics_worker.scrape()
        finished = samples and sum(v for (name, _), v in samples.items() if name == "dispatch_calls_total")
        return samples if finished == 4 else None

    samples = wait_for(all_four_calls_counted, 30, "the four calls on /metrics", interval=0.2)
    assert metrics_worker.samples_directory.is_dir()

    # /status/503: 3 quick attempts, a scheduled redelivery, 3 more; /flaky: one 503, then success.
    assert value(samples, "dispatch_calls_total", host=host, outcome="success") == 2
    assert value(samples, "dispatch_calls_total", host=host, outcome="RemoteExecuteError") == 1
    assert value(samples, "dispatch_calls_total", host=host, outcome="TransportError") == 1
    assert value(samples, "dispatch_attempts_total", host=host, outcome="ok") == 3
    assert value(samples, "dispatch_attempts_total", host=host, outcome="AttemptFailed") == 7
    assert value(samples, "dispatch_retries_total", host=host) == 6
    assert value(samples, "dispatch_attempt_duration_seconds_count", host=host) == 10
    assert value(samples, "dispatch_attempt_duration_seconds_bucket", host=host, le="+Inf") == 10
    assert 0 < value(samples, "dispatch_attempt_duration_seconds_sum", host=host) < 30

    # dramatiq's own metrics, from the same server: the redelivery is a message processed (and errored) too.
    labels = {"queue_name": metrics_worker.queue, "actor_name": "http_dispatch"}
    assert value(samples, "dramatiq_messages_total", **labels) == 5
    assert value(samples, "dramatiq_message_errors_total", **labels) == 3
    assert value(samples, "dramatiq_message_duration_milliseconds_count", **labels) == 5


@pytest.mark.integration
def test_a_taken_port_leaves_the_worker_running_without_metrics(vhost, redis_db, python_endpoint, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        worker = MetricsWorker(tmp_path / "worker.log", taken.getsockname()[1], {})
        try:
            assert worker.send(python_endpoint.url("/multiply"), params={"x": 2, "y": 2}).get(timeout=60) == 4
            wait_for(lambda: "cannot serve metrics" in worker.log(), 30, "the worker to log the taken port")
            assert "Address already in use" in worker.log()
        finally:
            worker.stop()
            delete_queues(worker.queue)
            shutil.rmtree(worker.samples_directory, ignore_errors=True)  # no server ran to remove it
