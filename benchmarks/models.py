#!/usr/bin/env python
"""Which worker concurrency model serves slow endpoints best: measured, not assumed.

    python benchmarks/models.py --dispatch-src /tmp/slowsrc/dispatch        # every model, both endpoints
    python benchmarks/models.py --models threads:1x256,gevent:1x512 --delays 100 --calls 5000

Each model is a worker of this package's ``http_dispatch`` actor, started fresh for each
endpoint, fed ``--calls`` calls (``--calls-1s`` for the 1 s endpoint) sent with one ``URL.map``,
and every result collected, exactly like the slow rows of ``bench.py`` (``phases.slow``):

* ``threads:PxT`` -- ``dramatiq dispatch.tasks -p P -t T``: the package as it is (urllib3 on
  worker threads);
* ``gevent:PxT`` -- ``dramatiq-gevent dispatch.tasks -p P -t T``: the same code, everything
  monkey-patched by gevent, the worker threads greenlets;
* ``asyncio:PxT`` -- ``dramatiq async_tasks -p P -t T``: the prototype in
  ``benchmarks/models/async_tasks.py``, an ``async def`` actor with aiohttp on dramatiq's
  event-loop thread (needs ``pip install aiohttp``);
* ``quiet:PxT`` -- ``threads:PxT`` with the per-call INFO log line of ``dispatch.calls`` off
  (``models/quiet_tasks.py``): what that line costs;
* ``async-consumer:PxN`` -- ``models/async_consumer.py --processes P --prefetch N``: no dramatiq
  worker, one asyncio loop per process (aio-pika, aiohttp, redis.asyncio) with N calls in
  flight: the ceiling of an asynchronous rewrite (needs ``pip install aio-pika aiohttp``).

Reported per model and endpoint: end-to-end calls/s, the worker tree's RSS (idle, peak, last,
slope per 1,000 calls), CPU ms per call of the worker and of every process on the path,
and the receiver's ``peak_pending`` (how many calls were really in flight at once).  Results go
to ``benchmarks/results/models.json`` (``--out``) and a table on stdout.  A model whose
package is missing (gevent, aiohttp) is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import config
import launch
import runs
import services
from launch import log

DEFAULT_MODELS = [
    "threads:1x128",
    "threads:2x64",
    "threads:2x128",
    "threads:2x256",
    "threads:2x512",
    "quiet:2x128",
    "gevent:2x128",
    "gevent:2x256",
    "asyncio:2x128",
    "asyncio:2x256",
    "async-consumer:1x1024",
    "async-consumer:2x512",
]
NEEDS = {"gevent": "gevent", "asyncio": "aiohttp", "async-consumer": "aio_pika"}
KINDS = ("threads", "quiet", "gevent", "asyncio", "async-consumer")
#: The actor module each dramatiq-run model imports (the others: dispatch.tasks); they live in models/.
MODULES = {"asyncio": "async_tasks", "quiet": "quiet_tasks"}


def parse_model(text: str) -> tuple[str, int, int]:
    kind, _, shape = text.partition(":")
    processes, _, threads = shape.partition("x")
    if kind not in KINDS or not processes.isdigit() or not threads.isdigit():
        raise argparse.ArgumentTypeError(f"a model is {'|'.join(KINDS)}:PxT, not {text!r}")
    return kind, int(processes), int(threads)


def command(kind: str, processes: int, threads: int) -> str:
    if kind == "async-consumer":
        return f"models/async_consumer.py --processes {processes} --prefetch {threads}"
    head = ("dramatiq-gevent " if kind == "gevent" else "dramatiq ") + MODULES.get(kind, "dispatch.tasks")
    return f"{head} -p {processes} -t {threads}"


def run_model(procs, args, base, receiver_pid, kind, processes, threads, delay) -> dict[str, Any]:
    n = args.calls if delay < 1000 else args.calls_1s
    services.clean_dispatch()
    tag = f"model-{kind}-{processes}x{threads}-{delay}"
    if kind == "async-consumer":
        script = config.HERE / "models" / "async_consumer.py"
        worker = procs.start(
            f"dispatch worker {tag}",
            [sys.executable, str(script), "--processes", str(processes), "--prefetch", str(threads)],
            env=config.DISPATCH_ENV,
            log_path=args.out / f"dispatch-worker-{tag}.log.tmp",
        )
    else:
        worker = launch.start_dispatch_worker(
            procs,
            args.out,
            tag,
            processes,
            threads,
            gevent=kind == "gevent",
            module=MODULES.get(kind, "dispatch.tasks"),
            pythonpath=(config.HERE / "models",) if kind in MODULES else (),
        )
    try:
        result = runs.slow_run(procs, "dispatch", args, base, config.DISPATCH_ENV, worker.pid, receiver_pid, delay, n)
    finally:
        procs.stop(worker)
        services.clean_dispatch()
    cpu = result["cpu_ms_per_call"]
    return {
        "model": kind,
        "processes": processes,
        "threads": threads,
        "command": command(kind, processes, threads),
        "delay_ms": delay,
        "n": n,
        "calls_per_s": result["calls_per_s"],
        "ceiling_calls_per_s": processes * threads * 1000 / delay,
        "wrong": result["wrong"],
        "idle_rss_mib": result["idle_rss_mib"],
        "peak_rss_mib": result["peak_rss_mib"],
        "first_rss_mib": result["first_rss_mib"],
        "last_rss_mib": result["last_rss_mib"],
        "rss_slope_mib_per_1000_calls": result["rss_slope_mib_per_1000_calls"],
        "worker_cpu_ms_per_call": cpu["worker"],
        "total_cpu_ms_per_call": cpu["total"],
        "cpu_ms_per_call": cpu,
        "peak_in_flight": result["receiver_peak_pending"],
        "peak_connections": result["receiver_peak_connections"],
        "samples": result["samples"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | worker | endpoint | calls | calls/s | ceiling PxT/delay | peak in flight | RSS idle → peak (last) "
        "| MiB per 1,000 calls | worker CPU ms/call | all CPU ms/call |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | `{r['command']}` | {r['delay_ms']} ms | {r['n']:,} | {r['calls_per_s']:,.0f} "
            f"| {r['ceiling_calls_per_s']:,.0f} | {r['peak_in_flight']} "
            f"| {r['idle_rss_mib']:.0f} → {r['peak_rss_mib']:.0f} ({r['last_rss_mib']:.0f}) MiB "
            f"| {r['rss_slope_mib_per_1000_calls']:+.2f} | {r['worker_cpu_ms_per_call']:.2f} "
            f"| {r['total_cpu_ms_per_call']:.2f} |" + (f" {r['wrong']} wrong" if r["wrong"] else "")
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=lambda t: [parse_model(m) for m in t.split(",")], default=None)
    parser.add_argument("--delays", type=lambda t: [int(d) for d in t.split(",")], default=list(config.SLOW_DELAYS_MS))
    parser.add_argument("--calls", type=int, default=6000, help="calls per model against the 100 ms endpoint")
    parser.add_argument("--calls-1s", type=int, default=3000, help="calls per model against the 1 s endpoint")
    parser.add_argument("--slow-every", type=int, default=1000, help="results between two memory samples")
    parser.add_argument("--receiver", choices=["c", "node"], default="c")
    parser.add_argument("--out", type=Path, default=config.HERE / "results")
    parser.add_argument("--dispatch-src", type=Path, default=config.ROOT)
    args = parser.parse_args(argv)
    models = args.models or [parse_model(m) for m in DEFAULT_MODELS]
    # what runs.client_args reads
    args.n, args.warmup, args.latency_n, args.memory_calls, args.memory_every = 0, 0, 0, 0, 1000
    args.out.mkdir(parents=True, exist_ok=True)

    launch.raise_on_sigterm()
    procs = launch.Processes()
    build = Path(tempfile.mkdtemp(prefix="dispatch-models-"))
    started = time.time()
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "config": runs.config_of(args, "models"),
        "rows": [],
        "skipped": [],
    }
    try:
        out["package"] = launch.snapshot_package(args.dispatch_src.resolve(), build)
        log(f"measuring dispatch from {out['package']['source']} at {out['package']['commit'][:10]}")
        services.ensure_vhost()
        receiver, base, description = launch.start_receiver(procs, args.receiver, build, args.out)
        out["receiver"] = description
        for delay in args.delays:
            for kind, processes, threads in models:
                need = NEEDS.get(kind)
                if need and not runs.importable(need):
                    out["skipped"].append(f"{kind}: pip install {need}")
                    log(f"{kind}: {need} is not installed, skipped (pip install {need})")
                    continue
                log(f"{command(kind, processes, threads)} against the {delay} ms endpoint")
                try:
                    row = run_model(procs, args, base, receiver.pid, kind, processes, threads, delay)
                except Exception as exc:  # a model that does not work at all is a result too
                    log(f"  failed: {exc!r}")
                    out["skipped"].append(f"{command(kind, processes, threads)} at {delay} ms failed: {exc!r}")
                    continue
                out["rows"].append(row)
                log(
                    f"  {row['calls_per_s']:.0f} calls/s ({row['peak_in_flight']} in flight), RSS "
                    f"{row['idle_rss_mib']:.0f} -> {row['peak_rss_mib']:.0f} MiB, worker CPU "
                    f"{row['worker_cpu_ms_per_call']:.2f} ms/call, all {row['total_cpu_ms_per_call']:.2f}"
                )
        out["seconds"] = time.time() - started
        out["machine"]["loadavg_after"] = os.getloadavg()
        path = args.out / "models.json"
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(table(out["rows"]))
        log(f"wrote {path} in {out['seconds']:.0f}s")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
        try:
            services.clean_dispatch()
        except Exception as exc:
            log(f"cleanup: {exc}")
        shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
