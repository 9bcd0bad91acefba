"""A worker names, as it boots, a results store that may evict what dispatch keeps there (Sidekiq's warning).

Outcomes, call states and leases all live in Redis with a TTL; under any
``maxmemory-policy`` but ``noeviction`` Redis deletes them when memory runs
short, silently.  The worker asks once (``CONFIG GET``) and logs a WARNING;
a server where ``CONFIG`` is disabled, or that cannot be reached yet, is
not second-guessed.  ``dispatch status`` shows the same warning.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from ..redaction import get_logger
from ..redis_connect import eviction_warning

logger = get_logger("dispatch.store")


class EvictionCheck(dramatiq.Middleware):
    """Logs a WARNING at worker boot if the results store's Redis may evict dispatch's keys."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        warning = eviction_warning(self.client)
        if warning:
            logger.warning(warning)
