"""The names code outside the package used before :mod:`dispatch.runtime`: kept so it keeps working.

``dispatch.wiring.get_broker()`` (e.g. ``@dramatiq.actor(broker=get_broker())`` for
gateway actors), ``get_settings()`` and ``get_transport()`` each read one part of
:func:`dispatch.runtime.get_runtime`; the package itself asks the runtime.
"""

from __future__ import annotations

import dramatiq

from .runtime import get_runtime
from .settings import Settings
from .transport import Transport


def get_settings() -> Settings:
    """The process's settings: ``get_runtime().settings``."""
    return get_runtime().settings


def get_broker() -> dramatiq.Broker:
    """The process's broker (dramatiq's global broker too): ``get_runtime().broker``."""
    return get_runtime().broker


def get_transport() -> Transport:
    """The process's HTTP transport: ``get_runtime().transport``."""
    return get_runtime().transport
