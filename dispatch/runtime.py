"""The process's runtime: settings, broker, results store, call states, flow control and transport, as one object.

This is dramatiq's ``get_broker()`` / ``set_broker()`` for the whole of
dispatch: nothing is read from the environment and nothing connects at
import time.  The first ``URL(...).send()``, the first worker import of
:mod:`dispatch.tasks`, the gateway or a CLI command calls
:func:`get_runtime`, which builds everything once, and the same objects
serve every later call in the process.  Code asks the runtime for these
parts; nothing dispatch-specific is set on dramatiq's broker.

The order is fixed -- settings, then the results store with its call
records, flow control beside it in Redis, the HTTP transport, the middleware,
and the broker -- and a bad ``DISPATCH_*`` variable raises
``ConfigurationError`` at the first of them.
"""

from __future__ import annotations

import dataclasses
import threading

import dramatiq

from . import attempts, tracing
from .brokers import build_broker
from .flow import FlowControl
from .middleware import default_middleware
from .results import NAMESPACE, CallResultsBackend, CallStates, ResultsBackend
from .results import results_backend as build_results_backend
from .settings import Settings
from .transport import Transport


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Everything a process of dispatch's shares, built once on first use (:func:`get_runtime`)."""

    settings: Settings
    broker: dramatiq.Broker
    results: ResultsBackend
    call_states: CallStates
    flow_control: FlowControl | None  # None: the destinations file sets no limit, or outcomes are kept in memory
    transport: Transport


def build_runtime(settings: Settings, transport: Transport | None = None) -> Runtime:
    """A runtime for ``settings`` (with ``transport``, another runtime's, or one built from the settings);
    connects to nothing.

    The transport's attempt observers are chosen here, once: tracing's spans when OpenTelemetry is
    installed, and the attempt record (in the stub worker too).  A worker exporting metrics adds its
    own when it boots (:class:`dispatch.metrics.Metrics`).
    """
    results = build_results_backend(settings)
    redis = results.write_client if isinstance(results, CallResultsBackend) else None
    call_states: CallStates = results.states
    flow_control = FlowControl.build(settings, redis, NAMESPACE)
    if transport is None:
        observers = (tracing.ATTEMPT_SPANS, attempts.RECORDER) if tracing.enabled() else (attempts.RECORDER,)
        transport = Transport(
            settings.destination_policy(), settings.signing_secrets, settings.destinations, observers=observers
        )
    broker = build_broker(settings, default_middleware(settings, results, call_states, flow_control, transport))
    return Runtime(settings, broker, results, call_states, flow_control, transport)


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, built from the environment the first time; its broker is dramatiq's global one."""
    global _runtime
    runtime = _runtime  # read once: set_runtime() may swap it meanwhile; no lock once built
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime(Settings.from_env())
            dramatiq.set_broker(_runtime.broker)
        return _runtime


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Use ``runtime`` from now on (``None``: build afresh on next use); returns the one it replaces.

    For :mod:`dispatch.testing`, which swaps in a StubBroker runtime for a while.
    """
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
        if runtime is not None:
            dramatiq.set_broker(runtime.broker)
        return previous
