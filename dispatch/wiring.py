"""Settings, broker and transport, built once per process on first use.

This is dramatiq's ``get_broker()`` / ``set_broker()`` for the whole of
dispatch: nothing is read from the environment and nothing connects at
import time.  The first ``URL(...).send()``, the first worker import of
:mod:`dispatch.tasks`, the gateway or a CLI command asks for what it needs
here, and the same objects serve every later call in the process.

The order is fixed -- settings, then the broker (with the results store and
middleware), then the HTTP transport -- and a bad ``DISPATCH_*`` variable
raises ``ConfigurationError`` at the first of them.
"""

from __future__ import annotations

import threading

import dramatiq

from .broker import build_broker
from .settings import Settings
from .transport import Transport

_lock = threading.RLock()
_settings: Settings | None = None
_broker: dramatiq.Broker | None = None
_transport: Transport | None = None


def get_settings() -> Settings:
    """The process's settings, read from the environment the first time."""
    global _settings
    if _settings is not None:  # every call asks: no lock once built
        return _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
        return _settings


def get_broker() -> dramatiq.Broker:
    """The process's broker, built from the settings the first time and made dramatiq's global broker."""
    global _broker
    broker = _broker  # read once: set_broker() may swap it meanwhile
    if broker is not None:
        return broker
    with _lock:
        if _broker is None:
            _broker = build_broker(get_settings())
            dramatiq.set_broker(_broker)
        return _broker


def set_broker(broker: dramatiq.Broker | None) -> dramatiq.Broker | None:
    """Use ``broker`` from now on (``None``: build afresh on next use); returns the one it replaces.

    For :mod:`dispatch.testing`, which swaps in a StubBroker for a while.
    """
    global _broker
    with _lock:
        previous, _broker = _broker, broker
        if broker is not None:
            dramatiq.set_broker(broker)
        return previous


def get_transport() -> Transport:
    """The process's HTTP transport: the settings' destination policy, signing secrets and destinations file,
    one kept-alive connection per host for each worker thread."""
    global _transport
    if _transport is not None:
        return _transport
    with _lock:
        if _transport is None:
            settings = get_settings()
            _transport = Transport(
                settings.destination_policy(),
                settings.signing_secrets,
                settings.destinations,
                pool_size=getattr(get_broker(), "worker_threads", 0),  # set at worker boot (PoolSizing)
            )
        return _transport
