"""The public way to get the process's broker and settings from code outside the package.

``dispatch.wiring.get_broker()`` (e.g. ``@dramatiq.actor(broker=get_broker())`` for
gateway actors) and ``get_settings()`` each read one part of
:func:`dispatch.runtime.get_runtime`, built on first use; the package itself asks the runtime.
"""

from __future__ import annotations

import dramatiq

from .runtime import get_runtime
from .settings import Settings


def get_settings() -> Settings:
    """The process's settings: ``get_runtime().settings``."""
    return get_runtime().settings


def get_broker() -> dramatiq.Broker:
    """The process's broker (dramatiq's global broker too): ``get_runtime().broker``."""
    return get_runtime().broker
