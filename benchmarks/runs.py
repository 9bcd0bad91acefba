"""One routine per system (``run_dispatch``, ``run_outbox``, ``run_celery``, ``run_no_queue``, ``run_slow``):
each runs its phases in client processes against the workers it starts and returns its part of the report."""

from __future__ import annotations

import importlib.util
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

from config import (
    CELERY_CONFIGS,
    CELERY_ENV,
    CELERY_SLOW_CONFIGS,
    COLD,
    DISPATCH_ENV,
    DISPATCH_WORKER,
    OUTBOX_URL,
    SLOW_DELAYS_MS,
    SLOW_DISPATCH_WORKERS,
)
from launch import (
    Processes,
    celery_command,
    dispatch_cli,
    log,
    receiver_stats,
    start_celery_worker,
    start_dispatch_worker,
    start_relay,
)
from meters import CpuMeter, worker_tree_memory
from services import clean_celery, clean_dispatch, drop_table


def config_of(args: Namespace, *leave_out: str) -> dict[str, Any]:
    """The run's options as JSON can hold them (paths as strings), for the results file."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in leave_out}


def client_args(args: Namespace, base: str, **overrides: Any) -> list[str]:
    """The run's settings as ``client.py`` options (``--n 3000 ...``), with ``overrides`` applied."""
    values = {
        "base": base,
        "n": args.n,
        "warmup": args.warmup,
        "latency-n": args.latency_n,
        "memory-calls": args.memory_calls,
        "memory-every": args.memory_every,
        **{k.replace("_", "-"): v for k, v in overrides.items()},
    }
    out = []
    for key, value in values.items():
        out += [f"--{key}", str(value)]
    return out


def e2e_with_cpu(
    procs: Processes,
    system: str,
    args: Namespace,
    base: str,
    env: dict[str, str] | None,
    worker_pid: int | None,
    receiver_pid: int,
    n: int,
    phase: str = "e2e",
    **overrides: Any,
) -> dict[str, Any]:
    """One e2e phase in a client process, with CPU per call of every process on the path and the receiver's count."""
    requests_before = receiver_stats(base, reset=True)["requests"]
    extra = client_args(args, base, n=n, worker_pid=worker_pid or 0, receiver_pid=receiver_pid, **overrides)
    result = procs.run_client(system, [phase], extra, env)[phase]
    cpu = CpuMeter.per_call_ms(result.pop("cpu_before"), result.pop("cpu_after"), n)
    machine = cpu.pop("machine")
    worker_system = cpu.pop("worker_system", None)
    cpu["client"] = result["client_cpu_ms_per_call"]
    cpu["total"] = sum(cpu.values())
    # Busy CPU of the whole machine not spent by the processes above: other people's work
    # on a shared machine.  Noise, not cost.
    cpu["other_processes"] = max(0.0, machine - cpu["total"])
    if worker_system is not None:
        cpu["worker_kernel_share"] = worker_system / cpu["worker"] if cpu["worker"] else 0.0
    result["cpu_ms_per_call"] = cpu
    stats = receiver_stats(base)
    result["receiver_requests"] = stats["requests"] - requests_before
    result["receiver_peak_pending"] = stats.get("peak_pending")
    result["receiver_peak_connections"] = stats.get("peak_connections")
    return result


def run_no_queue(procs: Processes, args: Namespace, base: str, receiver_pid: int) -> dict[str, Any]:
    """The baselines: the same calls as plain HTTP requests in one loop, with requests and with urllib3."""
    out = {}
    for system in ("requests", "urllib3"):
        log(f"{system} loop: latency, then {args.n} calls")
        result = procs.run_client(system, ["latency"], client_args(args, base), None)
        result["e2e"] = e2e_with_cpu(procs, system, args, base, None, None, receiver_pid, args.n)
        out[system] = result
        log(f"  {system}: {result['e2e']['calls_per_s']:.0f} calls/s, p50 {result['latency']['p50_ms']:.2f} ms")
    return out


def run_dispatch(procs: Processes, args: Namespace, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
    """This package: enqueue and URL.map with no worker, then a worker's latency and e2e, then the memory run."""
    out: dict[str, Any] = {
        "worker": " ".join(f"{k}={v}" for k, v in DISPATCH_WORKER["env"].items())
        + f" dramatiq dispatch.tasks --processes {DISPATCH_WORKER['processes']} --threads {DISPATCH_WORKER['threads']}",
    }
    out["worker"] = out["worker"].strip()
    clean_dispatch()
    log(f"dispatch: {args.n} sends with no worker (isolated enqueue, publisher confirms on)")
    out["enqueue"] = procs.run_client("dispatch", ["enqueue"], client_args(args, base), DISPATCH_ENV)["enqueue"]
    log(f"  {out['enqueue']['calls_per_s']:.0f} calls/s")
    clean_dispatch()
    log(f"dispatch: {args.n} calls in one URL.map with no worker (bulk enqueue, pipelined confirms)")
    out["bulk_enqueue"] = procs.run_client("dispatch", ["bulk_enqueue"], client_args(args, base), DISPATCH_ENV)[
        "bulk_enqueue"
    ]
    log(f"  {out['bulk_enqueue']['calls_per_s']:.0f} calls/s")
    clean_dispatch()

    worker = start_dispatch_worker(procs, logs, "main")
    try:
        log(f"dispatch: worker {out['worker']} (pid {worker.pid}); latency")
        out.update(measure_worker(procs, "dispatch", args, base, DISPATCH_ENV, worker.pid, receiver_pid))
        log(f"dispatch: e2e {args.n} calls sent with one URL.map")
        out["bulk_e2e"] = e2e_with_cpu(
            procs, "dispatch", args, base, DISPATCH_ENV, worker.pid, receiver_pid, args.n, phase="bulk_e2e"
        )
        log(f"  {out['bulk_e2e']['calls_per_s']:.0f} calls/s e2e")
    finally:
        procs.stop(worker)
    clean_dispatch()

    if args.memory_calls:
        worker = start_dispatch_worker(procs, logs, "memory")
        try:
            log(f"dispatch: memory run, {args.memory_calls} calls on a fresh worker, RSS every {args.memory_every}")
            result = procs.run_client(
                "dispatch", ["ready", "memory"], client_args(args, base, worker_pid=worker.pid), DISPATCH_ENV
            )
            out["memory_run"] = result["memory"]
            log(f"  RSS {out['memory_run']['first_rss_mib']:.1f} -> {out['memory_run']['last_rss_mib']:.1f} MiB")
        finally:
            procs.stop(worker)
        clean_dispatch()
    return out


def run_outbox(procs: Processes, args: Namespace, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
    """The outbox row (issue 23): calls committed to PostgreSQL, relayed by ``dispatch relay``, beside URL.map.

    One worker and one relay process run throughout; each of ``args.repeat`` rounds commits
    ``--outbox-calls`` calls in ``--outbox-transactions`` transactions as fast as one writer can and collects
    every result, sends the same calls with one ``URL.map`` and collects them, and (``--outbox-rate``) commits
    them again offered at that rate.  The table is the run's own, dropped after.
    """
    if not (Path(DISPATCH_ENV["PYTHONPATH"]) / "dispatch" / "outbox").is_dir():
        log("outbox: the package measured has no dispatch.outbox; row skipped")
        return {"skipped": "no dispatch.outbox in the package measured"}
    n, transactions, table = args.outbox_calls, args.outbox_transactions, f"bench_outbox_{os.getpid()}"
    env = {**DISPATCH_ENV, "DISPATCH_OUTBOX_URL": OUTBOX_URL}
    out: dict[str, Any] = {
        "n": n,
        "transactions": transactions,
        "database": OUTBOX_URL,
        "relay": f"dispatch relay --table {table}",
        "worker": f"dramatiq dispatch.tasks --processes {DISPATCH_WORKER['processes']} "
        f"--threads {DISPATCH_WORKER['threads']}",
        "runs": [],
    }
    clean_dispatch()
    try:
        dispatch_cli(["outbox", "init", "--table", table], env)
        worker = start_dispatch_worker(procs, logs, "outbox")
        relay = start_relay(procs, logs, env, table)
        try:
            procs.run_client("dispatch", ["ready"], client_args(args, base), DISPATCH_ENV)
            common = {
                "phase": "outbox_e2e",
                "relay_pid": relay.pid,
                "outbox_url": OUTBOX_URL,
                "outbox_table": table,
                "transactions": transactions,
            }
            for r in range(args.repeat):
                log(f"outbox: {n} calls committed in {transactions} transactions (run {r + 1}/{args.repeat})")
                outbox = e2e_with_cpu(procs, "dispatch", args, base, env, worker.pid, receiver_pid, n, **common)
                log("  " + _outbox_line(outbox))
                log(f"outbox: the same {n} calls sent with one URL.map")
                bulk = e2e_with_cpu(
                    procs, "dispatch", args, base, DISPATCH_ENV, worker.pid, receiver_pid, n, phase="bulk_e2e"
                )
                log(f"  {bulk['calls_per_s']:.0f} calls/s e2e")
                out["runs"].append({"outbox": outbox, "bulk_e2e": bulk})
                if args.outbox_rate:
                    log(f"outbox: {n} calls offered at {args.outbox_rate:g} calls/s")
                    out["runs"][-1]["paced"] = paced = e2e_with_cpu(
                        procs, "dispatch", args, base, env, worker.pid, receiver_pid, n, rate=args.outbox_rate, **common
                    )
                    log("  " + _outbox_line(paced))
        finally:
            procs.stop(relay)
            procs.stop(worker)
    finally:
        drop_table(OUTBOX_URL, table)
        clean_dispatch()
    # Another helper's test may set off RabbitMQ's memory alarm: a blocked relay is a queue, not the outbox's cost.
    out["rabbitmq_blocked"] = (logs / "dispatch-relay.log.tmp").read_text(errors="replace").count("Connection.Blocked")
    if out["rabbitmq_blocked"]:
        log(f"outbox: RabbitMQ blocked the relay {out['rabbitmq_blocked']} time(s) during the run (a memory alarm)")
    out["outbox"] = _median_run([run["outbox"] for run in out["runs"]])
    out["bulk_e2e"] = _median_run([run["bulk_e2e"] for run in out["runs"]])
    if args.outbox_rate:
        out["paced"] = _median_run([run["paced"] for run in out["runs"]])
    return out


def _outbox_line(run: dict[str, Any]) -> str:
    return (
        f"{run['calls_per_s']:.0f} calls/s e2e ({run['enqueue_calls_per_s']:.0f} committed/s), commit to endpoint "
        f"p50 {run['commit_to_endpoint_p50_ms']:.1f} ms, p99 {run['commit_to_endpoint_p99_ms']:.1f} ms"
    )


def measure_worker(
    procs: Processes, system: str, args: Namespace, base: str, env: dict[str, str], worker_pid: int, receiver_pid: int
) -> dict[str, Any]:
    """Start-up, idle latency, ``args.repeat`` e2e runs (median kept) and memory of one running worker."""
    result = procs.run_client(system, ["ready", "latency"], client_args(args, base), env)
    runs = []
    for r in range(args.repeat):
        log(f"{system}: e2e {args.n} calls (run {r + 1}/{args.repeat})")
        runs.append(e2e_with_cpu(procs, system, args, base, env, worker_pid, receiver_pid, args.n))
        log(f"  {runs[-1]['calls_per_s']:.0f} calls/s e2e, {runs[-1]['enqueue_calls_per_s']:.0f} sends/s under load")
    return {
        "startup_seconds": result["ready"]["seconds"],
        "latency": result["latency"],
        "e2e": _median_run(runs),
        "e2e_runs": runs,
        "worker_memory": worker_tree_memory(worker_pid),
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (not a mean of runs, so its CPU and latency numbers stay one run's)."""
    return sorted(runs, key=lambda r: r["calls_per_s"])[len(runs) // 2]


def run_celery(procs: Processes, args: Namespace, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
    """The Celery port: delay() with and without confirms, a scan of worker shapes, then the best one measured."""
    out: dict[str, Any] = {}
    clean_celery()
    log(f"celery: {args.n} delay() with no worker (isolated enqueue, Celery's default: no confirms)")
    out["enqueue"] = procs.run_client("celery", ["enqueue"], client_args(args, base), CELERY_ENV)["enqueue"]
    log(f"  {out['enqueue']['calls_per_s']:.0f} calls/s")
    clean_celery()
    log(f"celery: {args.n} delay() with confirm_publish=True, no worker")
    out["enqueue_confirmed"] = procs.run_client(
        "celery", ["enqueue"], client_args(args, base), {**CELERY_ENV, "CELERY_PORT_CONFIRM": "1"}
    )["enqueue"]
    log(f"  {out['enqueue_confirmed']['calls_per_s']:.0f} calls/s")
    clean_celery()

    configs = CELERY_CONFIGS if not args.quick else [("prefork", 2), ("threads", 8)]
    scan = []
    if len(configs) > 1:
        for pool, concurrency in configs:
            worker = start_celery_worker(procs, pool, concurrency, logs)
            try:
                procs.run_client("celery", ["ready"], client_args(args, base), CELERY_ENV)
                result = procs.run_client("celery", ["e2e"], client_args(args, base, n=args.scan_n), CELERY_ENV)["e2e"]
            finally:
                procs.stop(worker, sig=COLD)
            clean_celery()
            scan.append(
                {"pool": pool, "concurrency": concurrency, "n": args.scan_n, "calls_per_s": result["calls_per_s"]}
            )
            log(f"celery scan: -P {pool} -c {concurrency}: {result['calls_per_s']:.0f} calls/s ({args.scan_n} calls)")
    out["scan"] = scan
    best = max(scan, key=lambda s: s["calls_per_s"]) if scan else {"pool": configs[0][0], "concurrency": configs[0][1]}
    out["worker"] = celery_command(best["pool"], best["concurrency"])

    worker = start_celery_worker(procs, best["pool"], best["concurrency"], logs)
    try:
        log(f"celery: best worker {out['worker']} (pid {worker.pid}); latency")
        out.update(measure_worker(procs, "celery", args, base, CELERY_ENV, worker.pid, receiver_pid))
    finally:
        procs.stop(worker, sig=COLD)
    clean_celery()
    return out


def slow_calls(args: Namespace, delay_ms: int) -> int:
    """Calls in a slow run: ``--slow-calls`` against the 100 ms endpoint, ``--slow-calls-1s`` against the 1 s one."""
    return args.slow_calls if delay_ms < 1000 else args.slow_calls_1s


def slow_run(
    procs: Processes,
    system: str,
    args: Namespace,
    base: str,
    env: dict[str, str],
    worker_pid: int,
    receiver_pid: int,
    delay_ms: int,
    n: int,
) -> dict[str, Any]:
    """One ``slow`` phase (after ``ready``) against a running worker: calls/s, memory samples, CPU per call."""
    procs.run_client(system, ["ready"], client_args(args, base), env)
    return e2e_with_cpu(
        procs,
        system,
        args,
        base,
        env,
        worker_pid,
        receiver_pid,
        n,
        phase="slow",
        delay_ms=delay_ms,
        slow_every=max(1, min(args.slow_every, n // 5)),
    )


def _slow_line(result: dict[str, Any]) -> str:
    return (
        f"{result['calls_per_s']:.0f} calls/s, RSS {result['first_rss_mib']:.0f} -> {result['last_rss_mib']:.0f} MiB "
        f"(peak {result['peak_rss_mib']:.0f}, {result['rss_slope_mib_per_1000_calls']:+.2f} MiB/1,000 calls), "
        f"worker CPU {result['cpu_ms_per_call']['worker']:.2f} ms/call, "
        f"{result['receiver_peak_pending']} in flight at most"
    )


def run_slow(procs: Processes, args: Namespace, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
    """Slow endpoints: this package's slow-endpoint worker and the Celery port's best shape, 100 ms and 1 s."""
    out: dict[str, Any] = {"dispatch": {}, "celery": {}}
    for delay in SLOW_DELAYS_MS:
        n = slow_calls(args, delay)
        if not n:
            continue
        processes, threads = SLOW_DISPATCH_WORKERS[delay]
        clean_dispatch()
        worker = start_dispatch_worker(procs, logs, f"slow-{delay}", processes, threads)
        command = f"dramatiq dispatch.tasks --processes {processes} --threads {threads}"
        try:
            log(f"dispatch, slow endpoint ({delay} ms): {n} calls in one URL.map, then every result; {command}")
            result = slow_run(procs, "dispatch", args, base, DISPATCH_ENV, worker.pid, receiver_pid, delay, n)
        finally:
            procs.stop(worker)
        result["worker"] = command
        out["dispatch"][str(delay)] = result
        log("  " + _slow_line(result))
    clean_dispatch()

    configs = CELERY_SLOW_CONFIGS if not args.quick else [("threads", 128), ("gevent", 256)]
    scan = []
    scan_n = min(args.slow_scan_n, args.slow_calls)
    for pool, concurrency in configs:
        if pool == "gevent" and not importable("gevent"):
            log("celery slow scan: gevent is not installed, -P gevent skipped (pip install gevent)")
            continue
        clean_celery()
        worker = start_celery_worker(procs, pool, concurrency, logs)
        try:
            result = slow_run(
                procs, "celery", args, base, CELERY_ENV, worker.pid, receiver_pid, SLOW_DELAYS_MS[0], scan_n
            )
        finally:
            procs.stop(worker, sig=COLD)
        scan.append(
            {
                "pool": pool,
                "concurrency": concurrency,
                "n": scan_n,
                "delay_ms": SLOW_DELAYS_MS[0],
                "calls_per_s": result["calls_per_s"],
                "peak_rss_mib": result["peak_rss_mib"],
            }
        )
        log(
            f"celery slow scan: -P {pool} -c {concurrency}: {result['calls_per_s']:.0f} calls/s "
            f"({scan_n} calls, {SLOW_DELAYS_MS[0]} ms)"
        )
    clean_celery()
    best = max(scan, key=lambda s: s["calls_per_s"])
    out["celery"] = {"scan": scan, "worker": celery_command(best["pool"], best["concurrency"])}
    for delay in SLOW_DELAYS_MS:
        n = slow_calls(args, delay)
        if not n:
            continue
        worker = start_celery_worker(procs, best["pool"], best["concurrency"], logs)
        try:
            log(f"celery, slow endpoint ({delay} ms): {n} calls with {out['celery']['worker']}")
            result = slow_run(procs, "celery", args, base, CELERY_ENV, worker.pid, receiver_pid, delay, n)
        finally:
            procs.stop(worker, sig=COLD)
        clean_celery()
        result["worker"] = out["celery"]["worker"]
        out["celery"][str(delay)] = result
        log("  " + _slow_line(result))
    return out


def importable(name: str) -> bool:
    """Whether ``name`` can be imported here (an optional package of the comparison)."""
    return importlib.util.find_spec(name) is not None
