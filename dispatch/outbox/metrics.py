"""The outbox's backlog as Prometheus gauges, read from the database at each scrape.

* ``dispatch_outbox_backlog`` -- calls committed and not yet relayed (published and deleted).
* ``dispatch_outbox_oldest_age_seconds`` -- how long the oldest of them has waited (0 when none).

A worker's metrics server (:func:`dispatch.metrics.serve_metrics`) registers
:class:`OutboxCollector` when ``DISPATCH_OUTBOX_URL`` is set, so a growing
backlog -- no relay running, or relays falling behind -- shows on the same
scrape as the queues it feeds.  It lives here, beside the table it reads,
and needs the ``outbox`` extra that ``DISPATCH_OUTBOX_URL`` implies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..redaction import get_logger
from .sending import Outbox

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from sqlalchemy import Engine

logger = get_logger(__name__)


class OutboxCollector:
    """``dispatch_outbox_backlog`` and ``dispatch_outbox_oldest_age_seconds`` of one outbox, at each scrape."""

    def __init__(self, outbox: Outbox | str | Engine) -> None:
        self.outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            waiting = self.outbox.backlog()
        except Exception as error:  # the database away: the rest of the scrape still answers
            logger.warning("cannot read the outbox backlog for metrics (%r): %s", self.outbox, error)
            return
        yield GaugeMetricFamily(
            "dispatch_outbox_backlog", "Calls committed to the outbox table and not yet relayed.", value=waiting.calls
        )
        yield GaugeMetricFamily(
            "dispatch_outbox_oldest_age_seconds",
            "Seconds the oldest call in the outbox table has waited for a relay (0 when there is none).",
            value=waiting.oldest_age or 0.0,
        )
