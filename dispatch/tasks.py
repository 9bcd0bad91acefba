"""The worker's entry point: ``dramatiq dispatch.tasks`` imports this module.

Importing it is asking for a worker's runtime, so unlike the rest of the
package it sets things up as it is imported: the runtime from the
environment (its broker made dramatiq's global one), the built-in ``http_dispatch``
actor on it, and -- when ``DISPATCH_METRICS`` or ``DISPATCH_METRICS_PORT``
says so -- the Prometheus middleware; and dramatiq's worker is tuned
(:func:`dispatch.upstream.tune_worker`).  Workers for your own
:class:`~dispatch.actor.HttpDispatch` subclasses name their module too:
``dramatiq dispatch.tasks mymodule``.
"""

from __future__ import annotations

from .actor import default_dispatcher
from .runtime import get_runtime
from .upstream import tune_worker

tune_worker()
runtime = get_runtime()
broker = runtime.broker
http_dispatch = default_dispatcher()

if runtime.settings.metrics_enabled:
    from .metrics import attach_metrics  # the metrics extra, only when asked for

    attach_metrics(broker, runtime.settings)
