#!/usr/bin/env python
"""The benchmark: this package vs a Celery 5 port of Celery 3's HttpDispatchTask vs no queue at all.

    python benchmarks/bench.py                # the full run (what `make bench` runs)
    python benchmarks/bench.py --quick        # a smoke run with small numbers, results in *.tmp files
    python benchmarks/bench.py --n 3000 --memory-calls 10000 --repeat 1

One run, one machine, the same receiver, the same RabbitMQ (vhost ``dispatch-bench``) and
Redis (db 8 for this package, db 7 for Celery).  For every system it measures

* **e2e calls/s** -- N calls of ``multiply``: enqueue all of them, then wait for every result,
  with the worker running throughout;  ``N / (last result - first send)``;
* **enqueue calls/s** -- twice: *isolated* (N sends with no worker consuming, so the client has
  the machine) and *under load* (the send half of the e2e run, competing with the worker);
  this package publishes with confirms (its default), Celery's ``delay()`` does not (its
  default), and ``delay()`` with ``confirm_publish`` is measured too, for reference;
* **bulk** (this package) -- the same N calls sent with one ``URL.map`` (pipelined publisher
  confirms), isolated and end to end;
* **idle latency** -- p50/p99 of single send->result round trips, one at a time, after warm-up;
* **worker memory** -- summed RSS (and PSS) of the worker's process tree after the e2e run;
* **CPU per call** -- CPU seconds every process on the path spent during the e2e run
  (client, worker tree, RabbitMQ, Redis, receiver), divided by N: on a 2-core machine, the
  sum is what bounds throughput;
* **the outbox** (this package, issue 23) -- ``--outbox-calls`` calls (10,000) committed to a PostgreSQL
  outbox table (``config.OUTBOX_URL``, a table of the run's own, dropped after) in
  ``--outbox-transactions`` transactions (100) as fast as one writer commits them, published by a
  ``dispatch relay`` process and performed by the worker, then every result read: e2e calls/s from the
  first transaction to the last result, and **commit to endpoint** p50/p99 -- each call's first HTTP
  attempt as the worker recorded it (``attempts()``) less its transaction's commit; beside it, on the same
  worker, the same number of calls sent with one ``URL.map``.  CPU per call adds the relay and every
  PostgreSQL process.  A second outbox run offers the calls at ``--outbox-rate`` (250/s, in the same
  transactions) for the latency of a relay that keeps up rather than of a queue;
* **memory over a long run** (this package) -- a fresh worker, ``--memory-calls`` calls in
  batches of 1,000, its RSS sampled after each batch;
* **slow endpoints** -- the receiver's ``/multiply?...&delay_ms=D`` answers D ms later without
  blocking anything else: ``--slow-calls`` calls (20,000) against a 100 ms endpoint and
  ``--slow-calls-1s`` (5,000) against a 1 s one, each on a fresh worker; this package sends them
  all with one ``URL.map`` (so the sender is not the bottleneck), Celery with ``delay()``, then
  every result is collected.  Reported: e2e calls/s, the worker tree's RSS sampled every
  ``--slow-every`` results (2,000) plus every 0.5 s (first, last, peak, least-squares slope per
  1,000 calls), CPU per call, and the receiver's ``peak_pending`` (calls really in flight at
  once).  This package runs with ``config.SLOW_DISPATCH_WORKERS`` (2 x 128 threads for 100 ms,
  2 x 512 for 1 s: the shapes ``models.py``
  chose, see PROFILE.md); Celery's pools for slow calls (``config.CELERY_SLOW_CONFIGS``:
  threads and gevent at a few sizes) are scanned on ``--slow-scan-n`` calls against the 100 ms
  endpoint first, and the best one runs both endpoints.

The no-queue baselines are the same N requests in one loop, with ``requests.Session`` and
with ``urllib3.PoolManager``.  Celery's worker is measured in several configurations
(prefork -c 2..4, threads -c 8..16) on a smaller N first, and the best one is run with the
full N.  Every process this script starts is stopped when it ends, even on failure or
Ctrl-C; RabbitMQ and Redis are left running.  Results: ``benchmarks/results/results.json``
and ``chart.png``.  A benchmark is a measurement, never a timed assertion in the tests.

The package measured is a copy of ``dispatch/`` taken when the run starts (``--dispatch-src`` picks another
directory, e.g. a patched copy to A/B a change), so edits made to the working tree during a run do not mix
versions.  ``--only dispatch|outbox|celery|no_queue|slow`` measures one system (or only the outbox or slow
rows); ``--worker-env NAME=VALUE`` passes settings to the dispatch worker.  The receiver is
``receiver/receiver.c`` (compiled with ``cc`` at each run), or ``receiver/receiver.js`` with ``--receiver
node`` or when there is no C compiler.  Needs ``requirements/bench.txt``: celery[redis], psutil, matplotlib
(and py-spy, for ``profile_dispatch.py``), the package's ``outbox`` extra for the outbox row.

``--quick`` is a smoke test of the whole pipeline, not a measurement: N at most 500, 50 round trips after 20
warm-up calls, two Celery configurations of 300 calls, a memory run of at most 2,000 calls sampled every 500,
an outbox row of 2,000 calls in 20 transactions, slow runs of 2,000 (100 ms) and 500 (1 s) calls and two
Celery slow shapes of 1,000; it writes ``results/quick-results.json.tmp`` and ``quick-chart.png.tmp`` (ignored
by git) and leaves the committed results alone.

The code is split by concern; this file only parses the options and runs the steps in order:

* ``client.py`` -- what is measured: how one call is made with this package (``URL.send``,
  ``URL.map``), the Celery port (``get_async``) and the no-queue loops (requests, urllib3).
  Each measurement runs ``client.py`` in a process of its own;
* how it is measured, one job a module: ``config.py`` (the vhost, Redis databases, environments
  and worker shapes), ``phases.py`` and ``meters.py`` (the timed phases and the CPU/memory meters,
  in the client process), ``launch.py`` (the receiver, the workers, the relay, the client processes, the
  snapshot of the package; every started process), ``services.py`` (RabbitMQ, Redis and the outbox table: set-up
  and clean-up) and ``runs.py`` (one routine per system);
* ``report.py`` -- ratios, targets, the table, the chart and the files in ``results/``;
* ``celery_port.py`` -- the Celery side itself (the worker runs it);
* ``models.py`` -- not part of this run: the comparison of worker concurrency models (threads,
  gevent, an asyncio prototype in ``models/``) against the slow endpoints.

The imports go one way: bench.py -> runs -> services -> launch -> config; client.py -> phases ->
meters; report.py imports nothing here.  launch.py takes a free port and waiting for the receiver
from the test suite's shared helpers (``tests/support.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import config
import launch
import report
import runs
import services
from launch import log


def main(argv: list[str]) -> int:
    """The whole run: snapshot, receiver, no queue, dispatch, Celery, then the report; every process stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="calls per e2e run (default 3000)")
    parser.add_argument("--quick", action="store_true", help="small numbers, results in results/quick-*.tmp")
    parser.add_argument("--repeat", type=int, default=1, help="e2e runs per system; the median is reported")
    parser.add_argument("--latency-n", type=int, default=200, help="timed round trips at idle (default 200)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before latency (default 50)")
    parser.add_argument("--scan-n", type=int, default=1000, help="calls per Celery configuration in the scan")
    parser.add_argument("--memory-calls", type=int, default=10000, help="calls in the memory run (0: skip it)")
    parser.add_argument("--memory-every", type=int, default=1000, help="calls between two RSS samples")
    parser.add_argument("--slow-calls", type=int, default=20000, help="calls to the 100 ms endpoint (0: skip)")
    parser.add_argument("--slow-calls-1s", type=int, default=5000, help="calls to the 1 s endpoint (0: skip)")
    parser.add_argument("--slow-every", type=int, default=2000, help="results between two RSS samples (slow)")
    parser.add_argument("--slow-scan-n", type=int, default=2000, help="calls per Celery shape in the slow scan")
    parser.add_argument("--outbox-calls", type=int, default=10000, help="calls in the outbox row (0: skip it)")
    parser.add_argument("--outbox-transactions", type=int, default=100, help="transactions the outbox calls go in")
    parser.add_argument(
        "--outbox-rate",
        type=float,
        default=250,
        help="calls/s offered in the outbox row's paced run, for latency below saturation (0: skip it)",
    )
    parser.add_argument("--receiver", choices=["c", "node"], default="c", help="receiver implementation")
    parser.add_argument("--out", type=Path, default=report.RESULTS, help="directory for results.json and chart.png")
    parser.add_argument(
        "--only",
        choices=["dispatch", "outbox", "celery", "no_queue", "slow"],
        help="measure one system only (for experiments); writes results/only-NAME.json.tmp, no table or chart",
    )
    parser.add_argument("--dispatch-processes", type=int, default=config.DISPATCH_PROCESSES, help=argparse.SUPPRESS)
    parser.add_argument("--dispatch-threads", type=int, default=config.DISPATCH_THREADS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the dispatch worker",
    )
    parser.add_argument(
        "--dispatch-src",
        type=Path,
        default=config.ROOT,
        help="directory holding the dispatch package to measure (default: this repository); copied at start",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.latency_n, args.warmup, args.scan_n = min(args.n, 500), 50, 20, 300
        args.memory_calls, args.memory_every = min(args.memory_calls, 2000), 500
        args.slow_calls, args.slow_calls_1s = min(args.slow_calls, 2000), min(args.slow_calls_1s, 500)
        args.slow_every, args.slow_scan_n = 500, 1000
        args.outbox_calls, args.outbox_transactions = min(args.outbox_calls, 2000), 20
    config.DISPATCH_WORKER.update(
        processes=args.dispatch_processes,
        threads=args.dispatch_threads,
        env=dict(item.split("=", 1) for item in args.worker_env),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = report.result_paths(args.out, args.quick)

    launch.raise_on_sigterm()
    procs = launch.Processes()
    build = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    started = time.time()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "config": runs.config_of(args),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": os.getloadavg(),
        },
        "versions": report.versions(),
    }
    try:
        results["package"] = launch.snapshot_package(args.dispatch_src.resolve(), build)
        log(
            f"measuring dispatch from {results['package']['source']} at {results['package']['commit'][:10]}"
            + (" (with uncommitted changes)" if results["package"]["dirty"] else "")
        )
        services.ensure_vhost()
        receiver, base, description = launch.start_receiver(procs, args.receiver, build, args.out)
        results["receiver"] = description
        log(f"receiver: {description} at {base}")
        if args.only:
            run = {
                "dispatch": runs.run_dispatch,
                "outbox": runs.run_outbox,
                "celery": runs.run_celery,
                "slow": runs.run_slow,
            }.get(args.only)
            results[args.only] = (
                run(procs, args, base, receiver.pid, args.out)
                if run
                else runs.run_no_queue(procs, args, base, receiver.pid)
            )
            path = report.write_only(results, args.only, args.out)
            log(f"wrote {path}")
            return 0
        results["no_queue"] = runs.run_no_queue(procs, args, base, receiver.pid)
        results["dispatch"] = runs.run_dispatch(procs, args, base, receiver.pid, args.out)
        if args.outbox_calls:
            results["outbox"] = runs.run_outbox(procs, args, base, receiver.pid, args.out)
        results["celery"] = runs.run_celery(procs, args, base, receiver.pid, args.out)
        if args.slow_calls or args.slow_calls_1s:
            results["slow"] = runs.run_slow(procs, args, base, receiver.pid, args.out)
        results["machine"]["loadavg_after"] = os.getloadavg()
        results["seconds"] = time.time() - started
        report.write(results, json_path, png_path)
        root = config.ROOT
        log(
            f"wrote {json_path.relative_to(root) if json_path.is_relative_to(root) else json_path} and "
            f"{png_path.name} in {results['seconds']:.0f}s"
        )
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
        for clean in (services.clean_dispatch, services.clean_celery):
            try:
                clean()
            except Exception as exc:
                log(f"cleanup: {exc}")
        shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
