"""The timed phases, run in a client process (``client.py`` imports this module): ``ready``, ``enqueue``,
``bulk_enqueue``, ``latency``, ``e2e``, ``bulk_e2e``, ``outbox_e2e``, ``memory``, ``slow`` (``PHASES``).

Each takes a client (``client.Client``: ``send(i)``, ``send_many(n)``, ``commit(first, count)``, ``ping()``)
and the client's options, and returns a JSON-able dict, so the same stopwatch runs against every system.  A
client always runs in a process of its own: its CPU time is its own, a Celery client's result thread cannot
outlive it, and the dispatch client imports the snapshot rather than the working tree.
"""

from __future__ import annotations

import statistics
import time
from argparse import Namespace
from datetime import datetime
from typing import Any

from meters import CpuMeter, percentile, slope_per_1000, worker_tree_memory, worker_tree_rss


def ready(client: Any, args: Namespace) -> dict[str, Any]:
    """Wait until one call completes (a worker is consuming); report how long it took."""
    start = time.perf_counter()
    deadline = start + 90
    while True:
        try:
            assert client.ping().get(timeout=30) == "ok"
            return {"seconds": time.perf_counter() - start}
        except Exception:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.2)


def enqueue(client: Any, args: Namespace) -> dict[str, Any]:
    """N sends with nothing consuming: the client alone on the machine."""
    for i in range(args.warmup):
        client.send(i)
    return _timed_enqueue(args, lambda: [client.send(i) for i in range(args.n)])


def bulk_enqueue(client: Any, args: Namespace) -> dict[str, Any]:
    """N calls in one ``URL.map`` (pipelined confirms) with nothing consuming."""
    client.send_many(args.warmup)
    return _timed_enqueue(args, lambda: client.send_many(args.n))


def _timed_enqueue(args: Namespace, send_all: Any) -> dict[str, Any]:
    """The one stopwatch for both enqueue phases: wall and client CPU time of ``send_all()``."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    handles = send_all()
    seconds = time.perf_counter() - t0
    assert len(handles) == args.n
    return {
        "n": args.n,
        "seconds": seconds,
        "calls_per_s": args.n / seconds,
        "client_cpu_ms_per_call": (time.process_time() - cpu0) / args.n * 1000,
    }


def latency(client: Any, args: Namespace) -> dict[str, Any]:
    """Single calls at idle: send, wait for the result, next."""
    for i in range(args.warmup):
        assert client.send(i).get(timeout=30) == i * 2
    round_trips, sends = [], []
    for i in range(args.latency_n):
        t0 = time.perf_counter()
        handle = client.send(i)
        t1 = time.perf_counter()
        value = handle.get(timeout=30)
        t2 = time.perf_counter()
        assert value == i * 2, (value, i)
        sends.append((t1 - t0) * 1000)
        round_trips.append((t2 - t0) * 1000)
    return {
        "n": args.latency_n,
        "p50_ms": percentile(round_trips, 50),
        "p99_ms": percentile(round_trips, 99),
        "mean_ms": statistics.fmean(round_trips),
        "max_ms": max(round_trips),
        "send_p50_ms": percentile(sends, 50),
        "send_p99_ms": percentile(sends, 99),
    }


def e2e(client: Any, args: Namespace) -> dict[str, Any]:
    """N calls: send them all, then collect every result."""
    return _e2e(args, lambda: [client.send(i) for i in range(args.n)])


def bulk_e2e(client: Any, args: Namespace) -> dict[str, Any]:
    """N calls sent with one ``URL.map``, then every result collected."""
    return _e2e(args, lambda: client.send_many(args.n))


def outbox_e2e(client: Any, args: Namespace) -> dict[str, Any]:
    """N calls committed to the outbox in ``--transactions`` transactions, then every result (issue 23).

    The stopwatch of the other e2e phases, from the first transaction's start to the last result, plus
    **commit to endpoint** per call: when the worker's first HTTP attempt of the call started (its
    ``attempts()[0]["at"]``, recorded by the worker in milliseconds of the same machine's clock) less
    when its transaction's ``COMMIT`` returned in this process.  ``--rate`` (calls/s) paces the transactions;
    without it one writer commits them as fast as it can, and once that outruns the worker the latency is
    mostly the queue.
    """
    per = args.n // args.transactions
    assert per * args.transactions == args.n, "--n must be a multiple of --transactions"
    commits: list[tuple[float, float]] = []
    sent: list[Any] = []

    def commit_all() -> list[Any]:
        start, interval = time.perf_counter(), per / args.rate if args.rate else 0.0
        for t in range(args.transactions):
            time.sleep(max(0.0, start + t * interval - time.perf_counter()))  # --rate: offered, not as fast as it can
            handles, issued, returned = client.commit(t * per, per)
            sent.extend(handles)
            commits.append((issued, returned))
        return sent

    result = _e2e(args, commit_all)
    performed = [_epoch(handle.attempts()[0]["at"]) for handle in sent]
    latencies = [(at - commits[i // per][1]) * 1000 for i, at in enumerate(performed)]
    by_transaction = [latencies[t * per : (t + 1) * per] for t in range(args.transactions)]
    return {
        **result,
        "transactions": args.transactions,
        "calls_per_transaction": per,
        "offered_calls_per_s": args.rate or None,
        "commit_to_endpoint_p50_ms": percentile(latencies, 50),
        "commit_to_endpoint_p99_ms": percentile(latencies, 99),
        "commit_to_endpoint_min_ms": min(latencies),
        "commit_to_endpoint_max_ms": max(latencies),
        "commit_ms_p50": percentile([(returned - issued) * 1000 for issued, returned in commits], 50),
        "first_call_after_commit_ms": [round(min(t), 2) for t in by_transaction],
        "last_call_after_commit_ms": [round(max(t), 2) for t in by_transaction],
        "last_commit_to_last_call_ms": (max(performed) - commits[-1][1]) * 1000,
    }


def _epoch(at: str) -> float:
    """An attempt's ``at`` (ISO 8601 UTC, ``...Z``) as seconds since the epoch."""
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def _e2e(args: Namespace, send_all: Any) -> dict[str, Any]:
    """The one stopwatch for the e2e phases: the send half, the get half, and everyone's CPU around them."""
    # The other processes' CPU is read here, around the timed region only (not our start-up).
    meter = CpuMeter(args.worker_pid, args.receiver_pid, args.relay_pid) if args.receiver_pid else None
    before = meter.snapshot() if meter else {}
    cpu0, t0 = time.process_time(), time.perf_counter()
    handles = send_all()
    cpu1, t1 = time.process_time(), time.perf_counter()
    wrong = sum(1 for i, handle in enumerate(handles) if handle.get(timeout=120) != i * 2)
    cpu2, t2 = time.process_time(), time.perf_counter()
    after = meter.snapshot() if meter else {}
    return {
        "cpu_before": before,
        "cpu_after": after,
        "n": args.n,
        "seconds": t2 - t0,
        "calls_per_s": args.n / (t2 - t0),
        "enqueue_seconds": t1 - t0,
        "enqueue_calls_per_s": args.n / (t1 - t0),
        "get_seconds": t2 - t1,
        "wrong": wrong,
        "client_cpu_ms_per_call": (cpu2 - cpu0) / args.n * 1000,
        "client_send_cpu_ms_per_call": (cpu1 - cpu0) / args.n * 1000,
        "client_get_cpu_ms_per_call": (cpu2 - cpu1) / args.n * 1000,
    }


def memory(client: Any, args: Namespace) -> dict[str, Any]:
    """``--memory-calls`` calls in batches of ``--memory-every``; worker RSS after each batch."""
    samples = [{"calls": 0, **worker_tree_memory(args.worker_pid)}]
    done = 0
    t0 = time.perf_counter()
    while done < args.memory_calls:
        batch = min(args.memory_every, args.memory_calls - done)
        handles = [client.send(done + i) for i in range(batch)]
        for i, handle in enumerate(handles):
            assert handle.get(timeout=120) == (done + i) * 2
        done += batch
        samples.append({"calls": done, **worker_tree_memory(args.worker_pid)})
    first, last = samples[1], samples[-1]
    return {
        "calls": done,
        "seconds": time.perf_counter() - t0,
        "every": args.memory_every,
        "samples": samples,
        "first_rss_mib": first["rss_mib"],
        "last_rss_mib": last["rss_mib"],
        "growth_mib": last["rss_mib"] - first["rss_mib"],
        "growth_pct": (last["rss_mib"] - first["rss_mib"]) / first["rss_mib"] * 100,
        "growth_mib_per_1000_calls": (last["rss_mib"] - first["rss_mib"]) / ((last["calls"] - first["calls"]) / 1000)
        if last["calls"] > first["calls"]
        else 0.0,
    }


def slow(client: Any, args: Namespace) -> dict[str, Any]:
    """N calls to the slow endpoint: all sent at once (``URL.map`` where the system has it), then every result.

    The worker's RSS (and PSS) is read every ``--slow-every`` results, and its RSS alone every
    0.5 s by a sampler thread (the peak); the other processes' CPU is read around the run.
    """
    import threading

    meter = CpuMeter(args.worker_pid, args.receiver_pid) if args.receiver_pid else None
    timeline: list[tuple[float, float]] = []
    done = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not done.wait(0.5):
            timeline.append((round(time.perf_counter() - t0, 2), round(worker_tree_rss(args.worker_pid), 2)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    samples = [{"calls": 0, "seconds": 0.0, **worker_tree_memory(args.worker_pid)}]
    before = meter.snapshot() if meter else {}
    cpu0, t0 = time.process_time(), time.perf_counter()
    send_many = getattr(client, "send_many", None)
    handles = send_many(args.n) if send_many else [client.send(i) for i in range(args.n)]
    t1 = time.perf_counter()
    wrong = 0
    for i, handle in enumerate(handles):
        if handle.get(timeout=600) != i * 2:
            wrong += 1
        if (i + 1) % args.slow_every == 0 or i + 1 == args.n:
            samples.append({"calls": i + 1, "seconds": time.perf_counter() - t0, **worker_tree_memory(args.worker_pid)})
    t2 = time.perf_counter()
    after = meter.snapshot() if meter else {}
    cpu2 = time.process_time()
    done.set()
    sampler.join()
    measured = samples[1:]
    rss = [s["rss_mib"] for s in measured] + [r for _, r in timeline]
    return {
        "cpu_before": before,
        "cpu_after": after,
        "n": args.n,
        "delay_ms": args.delay_ms,
        "seconds": t2 - t0,
        "calls_per_s": args.n / (t2 - t0),
        "enqueue_seconds": t1 - t0,
        "enqueue_calls_per_s": args.n / (t1 - t0) if t1 > t0 else float("inf"),
        "wrong": wrong,
        "client_cpu_ms_per_call": (cpu2 - cpu0) / args.n * 1000,
        "every": args.slow_every,
        "samples": samples,
        "timeline": timeline,
        "idle_rss_mib": samples[0]["rss_mib"],
        "first_rss_mib": measured[0]["rss_mib"],
        "last_rss_mib": measured[-1]["rss_mib"],
        "peak_rss_mib": max(rss),
        "rss_slope_mib_per_1000_calls": slope_per_1000([(s["calls"], s["rss_mib"]) for s in measured]),
    }


#: Every phase a client process can run, by the name given on its command line, in a sensible order.
PHASES = {
    "ready": ready,
    "enqueue": enqueue,
    "bulk_enqueue": bulk_enqueue,
    "latency": latency,
    "e2e": e2e,
    "bulk_e2e": bulk_e2e,
    "outbox_e2e": outbox_e2e,
    "memory": memory,
    "slow": slow,
}
