"""The process's runtime: settings, broker, results store, call states, flow control and transport, as one object.

Interim shape (issue 18): it reads what :mod:`dispatch.wiring` builds; the
core restructuring makes it the one place that builds them.  Code asks
``get_runtime()`` instead of reading attributes off dramatiq's broker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dramatiq

from . import wiring
from .settings import Settings


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Everything a process of dispatch's shares, built once on first use."""

    settings: Settings
    broker: dramatiq.Broker

    @property
    def results(self) -> Any:
        return self.broker.get_results_backend()

    @property
    def call_states(self) -> Any:
        return self.broker.call_states

    @property
    def flow_control(self) -> Any:
        return self.broker.flow_control

    @property
    def transport(self) -> Any:
        return wiring.get_transport()


def get_runtime() -> Runtime:
    """The process's runtime, built on first use."""
    return Runtime(wiring.get_settings(), wiring.get_broker())
