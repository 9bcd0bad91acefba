"""``dispatch.tasks`` with the per-call INFO line of ``dispatch.calls`` turned off: what that line costs.

    dramatiq quiet_tasks -p 2 -t 128     # PYTHONPATH: the dispatch snapshot + this folder

The worker is otherwise ``dispatch.tasks`` unchanged; ``benchmarks/models.py`` runs it as the
``quiet:PxT`` model, beside ``threads:PxT``.
"""

import logging

from dispatch.tasks import broker, http_dispatch  # noqa: F401 -- the worker's wiring, as dramatiq imports it

logging.getLogger("dispatch.calls").setLevel(logging.WARNING)
