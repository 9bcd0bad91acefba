"""What a benchmark run talks to and in which shape: paths, the bench vhost and Redis databases, each
system's environment, the worker shapes measured.

Two dicts here are filled in by a run and read by everything after: ``DISPATCH_ENV["PYTHONPATH"]`` (the
snapshot of ``dispatch/``, ``processes.snapshot_package``) and ``DISPATCH_WORKER`` (bench.py's
``--dispatch-processes/--dispatch-threads/--worker-env``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: The script a client process runs: ``client.py SYSTEM PHASE... --base URL ...``.
CLIENT = HERE / "client.py"

VHOST = "dispatch-bench"
AMQP_URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
DISPATCH_QUEUE = "dispatch-bench"
DISPATCH_REDIS = "redis://127.0.0.1:6379/8"
CELERY_QUEUE = "celery-bench"
CELERY_REDIS = "redis://127.0.0.1:6379/7"

DISPATCH_ENV = {
    "DISPATCH_BROKER_URL": AMQP_URL,
    "DISPATCH_RESULTS_URL": DISPATCH_REDIS,
    "DISPATCH_QUEUE": DISPATCH_QUEUE,
}
CELERY_ENV = {
    "CELERY_PORT_BROKER": AMQP_URL,
    "CELERY_PORT_BACKEND": CELERY_REDIS,
    "CELERY_PORT_QUEUE": CELERY_QUEUE,
    "PYTHONPATH": str(HERE),
}

#: The outbox row's database (issue 23): the machine's PostgreSQL; the run makes a table of its own and drops it.
OUTBOX_URL = os.environ.get("DISPATCH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

DISPATCH_PROCESSES, DISPATCH_THREADS = 2, 8  # the worker: --processes 2 --threads 8
CELERY_CONFIGS = [("prefork", 2), ("prefork", 3), ("prefork", 4), ("threads", 8), ("threads", 12), ("threads", 16)]

#: The slow endpoints (``/multiply?...&delay_ms=D``): a 100 ms and a 1 s one.
SLOW_DELAYS_MS = (100, 1000)
#: The dispatch worker for each slow endpoint (delay ms -> processes, threads), as models.py chose them
#: (PROFILE.md, "Many slow calls at once"): a process per core, threads for the calls that must be in
#: flight (rate x latency), no more -- idle threads cost CPU and memory.
SLOW_DISPATCH_WORKERS: dict[int, tuple[int, int]] = {100: (2, 128), 1000: (2, 512)}
#: Celery port shapes tried against the 100 ms endpoint; the best one runs the slow rows.
#: (gevent -c 512 was tried too and was always the slowest: 164/s against threads' 295-302/s.)
CELERY_SLOW_CONFIGS = [("threads", 128), ("threads", 256), ("gevent", 256)]

#: The dispatch worker's shape; --dispatch-processes/--dispatch-threads/--worker-env change it for experiments.
DISPATCH_WORKER: dict[str, Any] = {"processes": DISPATCH_PROCESSES, "threads": DISPATCH_THREADS, "env": {}}

#: Celery's threads pool takes ~8 s over a warm shutdown (SIGTERM) even when idle; every call has
#: finished by the time a worker is stopped, so a cold shutdown (SIGQUIT) loses nothing.
COLD = signal.SIGQUIT
