"""Prometheus metrics for workers: what every destination host is doing, plus dramatiq's own.

Start a worker with metrics and scrape ``http://DISPATCH_METRICS_HOST:DISPATCH_METRICS_PORT/metrics``
(defaults ``127.0.0.1`` and ``9191``)::

    DISPATCH_METRICS_PORT=9191 dramatiq dispatch.tasks
    dispatch worker --metrics-port 9191                      # the same, through the CLI

:mod:`dispatch.tasks` attaches them (:func:`attach_metrics`) whenever
``DISPATCH_METRICS_PORT`` is set or ``DISPATCH_METRICS=1``.

Per destination host (``host`` is the URL's ``host[:port]``; each process labels the first
``MAX_HOST_LABELS`` hosts it sees by name and every later one ``other``, so a worker fed
URLs from outside keeps a bounded number of series):

* ``dispatch_attempts_total{host, outcome}`` -- HTTP attempts; outcome ``ok`` or the
  error class the attempt ended with (``AttemptFailed`` for a refused, reset or
  timed-out request or a 429/502/503/504).
* ``dispatch_attempt_duration_seconds{host}`` -- a histogram of attempt latency.
* ``dispatch_retries_total{host}`` -- attempts that were not a call's first.
* ``dispatch_calls_total{host, outcome}`` -- finished calls; outcome ``success`` or
  the error class the caller sees (``RemoteExecuteError``, ``TransportError``, ...).
  A call waiting for a scheduled redelivery has not finished and is not counted.
* ``dispatch_flow_waits_total{host, reason}`` -- times a call was made to wait for its
  host by flow control (:mod:`dispatch.flow`); reason ``breaker``, ``concurrency`` or
  ``rate``.

Per host of the destinations file with limits or a breaker (and any other host with live
state), read from Redis at each scrape, so every worker's scrape shows the one shared state:

* ``dispatch_breaker_state{host, state}`` -- 1 for the breaker's state (``closed``,
  ``open``, ``half-open``), 0 for the others.
* ``dispatch_breaker_failures{host}`` -- consecutive failed deliveries counted.
* ``dispatch_host_in_flight{host}`` -- calls holding a ``max_concurrency`` slot.

and dramatiq's ``dramatiq_messages_total``, ``dramatiq_message_duration_milliseconds``
and friends.

How it fits together, and why:

* A worker is several processes.  Like dramatiq's own Prometheus middleware,
  this uses prometheus_client's *multiprocess mode*: every worker process writes
  its samples to files in one directory, and a single exposition server -- a
  dramatiq "fork" process -- adds them up on each scrape.  So there is one port
  per worker however many processes it runs.
* :class:`Metrics` *is* dramatiq's ``Prometheus`` middleware (a subclass) with
  dispatch's metrics added, so dramatiq's metrics come along unchanged and only
  one server runs: ours, bound to ``DISPATCH_METRICS_HOST:PORT`` instead of
  dramatiq's ``dramatiq_prom_host:port`` (``0.0.0.0:9191``).
* Each run of a worker gets a directory of its own (under the temp directory,
  named by port and the dramatiq main process id): a restarted worker starts its
  counters from zero and two workers on one machine never add up each other's
  numbers.  The server removes the directory when the worker stops, and those of
  runs that ended without stopping cleanly when it starts.
* Nothing here runs in a client: the metrics are created on ``after_process_boot``,
  which only dramatiq's worker processes emit.

``prometheus_client`` is imported only once metrics are on; it comes with the
``metrics`` extra (``pip install 'dispatch[metrics]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import prometheus as dramatiq_prometheus

from .call import Call, is_call
from .errors import ConfigurationError
from .flow import BREAKER_STATES
from .redaction import get_logger
from .runtime import get_runtime
from .settings import Settings
from .transport import UNOBSERVED, Observation
from .upstream import set_prometheus_db_path

if TYPE_CHECKING:
    from prometheus_client import Metric

    from .flow import FlowControl

logger = get_logger(__name__)

DEFAULT_PORT = 9191

#: Hosts a process labels by name (in the order it first sees them); the rest are counted as ``OTHER_HOSTS``.
MAX_HOST_LABELS = 100

#: The ``host`` label of every host past ``MAX_HOST_LABELS``.
OTHER_HOSTS = "other"


def attach_metrics(broker: dramatiq.Broker, settings: Settings) -> None:
    """Add :class:`Metrics` to ``broker`` (once).

    Raises ConfigurationError when prometheus_client is not installed, so a
    worker never runs silently without the metrics it was asked for.
    """
    require_prometheus_client()
    if not any(isinstance(m, Metrics) for m in broker.middleware):
        broker.add_middleware(Metrics(settings))


def require_prometheus_client() -> None:
    """Raise ConfigurationError, saying what to install, when prometheus_client is missing."""
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigurationError("metrics are on but prometheus-client is missing: pip install 'dispatch[metrics]'")


def run_directory(port: int) -> Path:
    """Where the processes of this worker run keep their samples.

    Worker processes and the exposition server are all children of one dramatiq
    main process, so its id (their parent's) names the run.
    """
    return Path(tempfile.gettempdir()) / "dispatch-metrics" / f"{port}-{os.getppid()}"


class Metrics(dramatiq_prometheus.Prometheus):
    """dramatiq's Prometheus middleware, plus per-host HTTP metrics, served on our own host and port."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.host = settings.metrics_host
        self.port = settings.metrics_port or DEFAULT_PORT
        # Which attempt of its call a worker thread is making: hooks and the
        # transport's observers for one message run in the same worker thread.
        self._local = threading.local()
        self._hosts = HostLabels()

    @property
    def forks(self) -> list:
        return [serve_metrics]

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        directory = run_directory(self.port)
        directory.mkdir(parents=True, exist_ok=True)
        # dramatiq's middleware keeps its files in DB_PATH (its dramatiq_prom_db
        # setting, shared by every run); point it at this run's directory.
        set_prometheus_db_path(str(directory))
        super().after_process_boot(broker)  # sets PROMETHEUS_MULTIPROC_DIR, creates dramatiq's metrics

        import prometheus_client as prom

        registry = prom.CollectorRegistry()  # samples go to the files; the server reads them back
        self.attempts = prom.Counter(
            "dispatch_attempts", "HTTP attempts by destination and outcome.", ["host", "outcome"], registry=registry
        )
        self.attempt_seconds = prom.Histogram(
            "dispatch_attempt_duration_seconds", "Time one HTTP attempt took.", ["host"], registry=registry
        )
        self.retries = prom.Counter(
            "dispatch_retries", "HTTP attempts that were not a call's first.", ["host"], registry=registry
        )
        self.calls = prom.Counter(
            "dispatch_calls", "Finished calls by destination and outcome.", ["host", "outcome"], registry=registry
        )
        self.flow_waits = prom.Counter(
            "dispatch_flow_waits", "Calls made to wait for their host.", ["host", "reason"], registry=registry
        )
        # The one observer added after the runtime is built: these counters exist only in a booted worker
        # process (dramatiq's Prometheus middleware sets up the multiprocess directory above).
        transport = get_runtime().transport
        if self not in transport.observers:
            transport.observers = (*transport.observers, self)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        super().before_process_message(broker, message)
        # A scheduled redelivery's first attempt is a retry too.
        self._local.attempts_before = 1 if message.options.get("retries", 0) else 0

    @contextlib.contextmanager
    def observe(self, method: str, url: str) -> Iterator[Observation]:
        """The transport's attempt observer: counts and times every HTTP attempt, in the worker thread making it."""
        started, outcome = time.perf_counter(), "ok"
        try:
            yield UNOBSERVED  # the statuses an attempt got are not counted
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._count_attempt(self._hosts.label(Call(url).host), time.perf_counter() - started, outcome)

    def _count_attempt(self, host: str, seconds: float, outcome: str) -> None:
        self.attempts.labels(host, outcome).inc()
        self.attempt_seconds.labels(host).observe(seconds)
        attempts_before = getattr(self._local, "attempts_before", 0)
        if attempts_before:
            self.retries.labels(host).inc()
        self._local.attempts_before = attempts_before + 1

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        super().after_process_message(broker, message, result=result, exception=exception)
        if not is_call(broker, message) or isinstance(exception, dramatiq.Retry):
            return
        outcome = "success" if exception is None else type(exception).__name__
        self.calls.labels(self._hosts.label(Call.from_message(message).host), outcome).inc()

    # dramatiq's Prometheus makes after_skip_message its after_process_message; dramatiq passes no outcome to it.
    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:  # type: ignore[override]
        super().after_skip_message(broker, message)
        reason = message.options.get("postponed")
        if reason and is_call(broker, message):
            self.flow_waits.labels(self._hosts.label(Call.from_message(message).host), reason).inc()


class HostLabels:
    """The ``host`` label of each host: its name for the first ``MAX_HOST_LABELS`` seen, ``OTHER_HOSTS`` after."""

    def __init__(self) -> None:
        self._named: set[str] = set()
        self._lock = threading.Lock()

    def label(self, host: str) -> str:
        if host in self._named:
            return host
        with self._lock:
            if len(self._named) < MAX_HOST_LABELS:
                self._named.add(host)
                return host
        return OTHER_HOSTS


class HostsCollector:
    """The shared per-host flow state (breakers, slots in flight) as gauges, read from Redis at each scrape.

    The first ``MAX_HOST_LABELS`` hosts (by name) are shown by name, the rest together as ``OTHER_HOSTS``.
    """

    def __init__(self, flow: FlowControl) -> None:
        self.flow = flow

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            states = self.flow.host_states()
        except Exception as error:  # Redis down: the rest of the scrape still answers
            logger.warning("cannot read the hosts' flow state for metrics: %s", error)
            return
        breaker = GaugeMetricFamily(
            "dispatch_breaker_state", "1 for the host's breaker state, 0 for the others.", labels=["host", "state"]
        )
        failures = GaugeMetricFamily(
            "dispatch_breaker_failures", "Consecutive failed deliveries counted by the breaker.", labels=["host"]
        )
        in_flight = GaugeMetricFamily(
            "dispatch_host_in_flight", "Calls holding one of the host's max_concurrency slots.", labels=["host"]
        )
        for state in states[:MAX_HOST_LABELS]:
            in_flight.add_metric([state.host], state.in_flight)
            if state.breaker != "off":
                failures.add_metric([state.host], state.failures)
                for name in BREAKER_STATES:
                    breaker.add_metric([state.host, name], 1.0 if state.breaker == name else 0.0)
        others = states[MAX_HOST_LABELS:]  # their slots in flight added up; how many of them are in each state
        if others:
            in_flight.add_metric([OTHER_HOSTS], sum(state.in_flight for state in others))
            for name in BREAKER_STATES:
                breaker.add_metric([OTHER_HOSTS, name], sum(state.breaker == name for state in others))
        yield from (breaker, failures, in_flight)


def serve_metrics() -> None:
    """The exposition server, run by dramatiq in a process of its own (a "fork") until the worker stops."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    runtime = get_runtime()  # a process of its own: read from the environment it shares with the worker
    settings = runtime.settings
    host, port = settings.metrics_host, settings.metrics_port or DEFAULT_PORT
    directory = run_directory(port)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_ended_runs(port, directory)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    flow = runtime.flow_control  # None without limits in the destinations file
    if flow is not None:
        registry.register(HostsCollector(flow))
    if settings.outbox_url:  # its backlog, read at each scrape (the outbox extra, which DISPATCH_OUTBOX_URL implies)
        from .outbox.metrics import OutboxCollector

        registry.register(OutboxCollector(settings.outbox_url))
    try:
        _server, thread = start_http_server(port, host, registry)
    except OSError as exc:  # the port is taken: the worker goes on, without metrics
        logger.error("cannot serve metrics on %s:%d (%s); the worker runs without them", host, port, exc)
        return
    logger.info("metrics on http://%s:%d/metrics", host, port)
    try:
        thread.join()
    finally:  # dramatiq stops us with SIGTERM (SystemExit) when the worker stops
        shutil.rmtree(directory, ignore_errors=True)


def _remove_ended_runs(port: int, current: Path) -> None:
    """Delete the directories of earlier runs on this port whose main process is gone."""
    for run in current.parent.glob(f"{port}-*"):
        pid = run.name.rpartition("-")[2]
        if run != current and pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(run, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
