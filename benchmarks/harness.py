"""The harness: what a benchmark run needs around the clients, and the timed phases they run.

Two kinds of code live here, both about *how* a system is measured rather than *what* is:

* **in the client process** (``client.py`` imports this module): the timed phases -- ``ready``,
  ``enqueue``, ``bulk_enqueue``, ``latency``, ``e2e``, ``bulk_e2e``, ``memory`` (``PHASES``) --
  and the meters they read: ``percentile``, ``worker_tree_memory``, ``CpuMeter``.  Each phase
  takes a client (``client.Client``: ``send(i)``, ``send_many(n)``, ``ping()``) and returns a
  JSON-able dict, so the same stopwatch runs against every system;
* **in the orchestrator** (``bench.py``): RabbitMQ and Redis (vhost ``dispatch-bench``, queues,
  Redis dbs 8 and 7), the receiver, the dispatch and Celery workers, the snapshot of ``dispatch/``,
  every started process (``Processes``: each in its own session, so its whole tree is stopped
  even on failure), and one routine per system (``run_dispatch``, ``run_celery``, ``run_no_queue``)
  that runs its phases in client processes and returns its part of the report.

A client always runs in a process of its own (``Processes.run_client`` starts ``client.py``):
its CPU time is its own, a Celery client's result thread cannot outlive it, and the dispatch
client imports the snapshot rather than the working tree.  This module does not import the
client or the report modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
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


# meters ----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def worker_tree_memory(pid: int) -> dict[str, float]:
    """Summed RSS and PSS (MiB) of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {"rss_mib": float("nan"), "pss_mib": float("nan"), "processes": 0}
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mib": rss / 2**20, "pss_mib": pss / 2**20, "processes": len(procs)}


class CpuMeter:
    """CPU seconds spent by the processes on the path, between two snapshots."""

    def __init__(self, worker_pid: int | None, receiver_pid: int) -> None:
        import psutil

        self.groups: dict[str, list] = {"receiver": [psutil.Process(receiver_pid)]}
        if worker_pid:
            root = psutil.Process(worker_pid)
            self.groups["worker"] = [root, *root.children(recursive=True)]
        # The broker's VM, not the short-lived VMs of rabbitmqctl runs (also named beam.smp).
        self.groups["rabbitmq"] = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "beam.smp" and "rabbit" in (p.info["cmdline"] or [])
        ]
        self.groups["redis"] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]

    def snapshot(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, procs in self.groups.items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system
                if name == "worker":
                    out["worker_system"] = out.get("worker_system", 0.0) + times.system
            out[name] = total
        cpu = psutil.cpu_times()
        out["machine"] = sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0)
        return out

    @staticmethod
    def per_call_ms(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        return {name: (after[name] - before[name]) / n * 1000 for name in before}


# timed phases (run in the client process) --------------------------------------------------------


def ready(client, args) -> dict[str, Any]:
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


def enqueue(client, args) -> dict[str, Any]:
    """N sends with nothing consuming: the client alone on the machine."""
    for i in range(args.warmup):
        client.send(i)
    return _timed_enqueue(args, lambda: [client.send(i) for i in range(args.n)])


def bulk_enqueue(client, args) -> dict[str, Any]:
    """N calls in one ``URL.map`` (pipelined confirms) with nothing consuming."""
    client.send_many(args.warmup)
    return _timed_enqueue(args, lambda: client.send_many(args.n))


def _timed_enqueue(args, send_all) -> dict[str, Any]:
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


def latency(client, args) -> dict[str, Any]:
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


def e2e(client, args) -> dict[str, Any]:
    """N calls: send them all, then collect every result."""
    return _e2e(args, lambda: [client.send(i) for i in range(args.n)])


def bulk_e2e(client, args) -> dict[str, Any]:
    """N calls sent with one ``URL.map``, then every result collected."""
    return _e2e(args, lambda: client.send_many(args.n))


def _e2e(args, send_all) -> dict[str, Any]:
    """The one stopwatch for both e2e phases: the send half, the get half, and everyone's CPU around them."""
    # The other processes' CPU is read here, around the timed region only (not our start-up).
    meter = CpuMeter(args.worker_pid, args.receiver_pid) if args.receiver_pid else None
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


def memory(client, args) -> dict[str, Any]:
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


def worker_tree_rss(pid: int) -> float:
    """Summed RSS (MiB) of a process tree: the cheap reading (no smaps), for frequent samples."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def slope_per_1000(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (calls, MiB) points, in MiB per 1,000 calls."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx * 1000 if sxx else 0.0


def slow(client, args) -> dict[str, Any]:
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
    "memory": memory,
    "slow": slow,
}


# processes ---------------------------------------------------------------------------------------


def log(message: str) -> None:
    """One timestamped progress line on stdout, flushed (a run takes minutes)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Processes:
    """Every process this run starts, each in its own session, so its whole tree can be stopped."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        log_path: Path | None = None,
    ) -> subprocess.Popen:
        output = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 -- the child holds it
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if log_path:
            output.close()
        self.running.append((name, process))
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
        """``sig`` (SIGTERM: a graceful worker shutdown) to the process group, then SIGKILL if it lingers."""
        self.running = [(n, p) for n, p in self.running if p is not process]
        if process.poll() is None:
            _killpg(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _killpg(process.pid, signal.SIGKILL)
                process.wait()
        _killpg(process.pid, signal.SIGKILL)  # any straggler left in the group

    def stop_all(self) -> None:
        for _name, process in reversed(list(self.running)):
            self.stop(process, timeout=15)

    def run_client(
        self, system: str, phases: list[str], extra: list[str], env: dict[str, str] | None, timeout: float = 900
    ) -> dict[str, Any]:
        """Run ``client.py SYSTEM PHASE...`` to completion; return its ``RESULT`` line, one dict per phase."""
        command = [sys.executable, str(CLIENT), system, *phases, *extra]
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.running.append((f"client {system}", process))
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(process, timeout=5)
            raise RuntimeError(f"client {system} {phases} timed out after {timeout}s") from None
        finally:
            self.running = [(n, p) for n, p in self.running if p is not process]
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        raise RuntimeError(f"client {system} {phases} failed (exit {process.returncode}):\n{stderr[-4000:]}")


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def free_port() -> int:
    """A TCP port nobody listens on right now, for the receiver."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    """Poll ``url`` until it answers 200 (the receiver has started)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def receiver_stats(base: str, reset: bool = False) -> dict[str, int]:
    """The receiver's counters: requests, and how many slow answers waited at once at most (``peak_pending``)."""
    import urllib.request

    with urllib.request.urlopen(base + "/stats" + ("?reset=1" if reset else ""), timeout=5) as response:
        return json.loads(response.read())["retval"]


def start_receiver(procs: Processes, kind: str, build: Path, logs: Path) -> tuple[subprocess.Popen, str, str]:
    """Compile and start the C receiver (or the Node.js one); return it, its base URL and a description."""
    port = free_port()
    if kind == "c":
        compiler = shutil.which("cc") or shutil.which("gcc")
        binary = build / "receiver"
        if (
            compiler
            and subprocess.run(
                [compiler, "-O2", "-o", str(binary), str(HERE / "receiver" / "receiver.c")], capture_output=True
            ).returncode
            == 0
        ):
            command, description = [str(binary), str(port)], "C (epoll, keep-alive), benchmarks/receiver/receiver.c"
        else:
            log("no working C compiler: using the Node.js receiver")
            kind = "node"
    if kind == "node":
        command = ["node", str(HERE / "receiver" / "receiver.js"), str(port)]
        description = "Node.js http (keep-alive), benchmarks/receiver/receiver.js"
    process = procs.start("receiver", command, log_path=logs / "receiver.log.tmp")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health")
    return process, base, description


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a killed run still stops every process it started."""

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


def config_of(args, *leave_out: str) -> dict[str, Any]:
    """The run's options as JSON can hold them (paths as strings), for the results file."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in leave_out}


# services ------------------------------------------------------------------------------------


def wait_services(timeout: float = 120) -> None:
    """Wait until RabbitMQ and Redis accept connections (a test run may be restarting RabbitMQ)."""
    import pika
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = redis.Redis.from_url(DISPATCH_REDIS, socket_connect_timeout=2)
            client.ping()
            client.close()
            params = pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F")
            pika.BlockingConnection(params).close()
            return
        except (redis.RedisError, pika.exceptions.AMQPError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ or Redis not reachable after {timeout:g}s: {exc!r}") from None
            log(f"waiting for RabbitMQ and Redis ({type(exc).__name__})")
            time.sleep(2)


def ensure_vhost() -> None:
    """Create the ``dispatch-bench`` vhost if it is missing, so a run never touches the tests' vhost."""
    import pika

    wait_services()
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
        return
    except pika.exceptions.AMQPError:
        pass
    log(f"creating RabbitMQ vhost {VHOST}")
    for command in (["add_vhost", VHOST], ["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", *command], check=True, capture_output=True, timeout=120)
    pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()


def delete_queues(names: list[str], exchanges: list[str] = ()) -> None:
    """Drop queues (and exchanges) on the bench vhost, so no run consumes another's leftovers."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)
    finally:
        connection.close()


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def clean_dispatch() -> None:
    """Empty this package's queues (main, delay, dead letter) and its Redis db."""
    delete_queues([DISPATCH_QUEUE, f"{DISPATCH_QUEUE}.DQ", f"{DISPATCH_QUEUE}.XQ"])
    flush_redis(DISPATCH_REDIS)


def clean_celery() -> None:
    """Empty the Celery port's queue, exchange and Redis db."""
    delete_queues([CELERY_QUEUE], [CELERY_QUEUE])
    flush_redis(CELERY_REDIS)


# runs ------------------------------------------------------------------------------------------


def client_args(args, base: str, **overrides: Any) -> list[str]:
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
    args,
    base: str,
    env,
    worker_pid,
    receiver_pid,
    n: int,
    phase: str = "e2e",
    **overrides: Any,
):
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


def run_no_queue(procs: Processes, args, base: str, receiver_pid: int) -> dict[str, Any]:
    """The baselines: the same calls as plain HTTP requests in one loop, with requests and with urllib3."""
    out = {}
    for system in ("requests", "urllib3"):
        log(f"{system} loop: latency, then {args.n} calls")
        result = procs.run_client(system, ["latency"], client_args(args, base), None)
        result["e2e"] = e2e_with_cpu(procs, system, args, base, None, None, receiver_pid, args.n)
        out[system] = result
        log(f"  {system}: {result['e2e']['calls_per_s']:.0f} calls/s, p50 {result['latency']['p50_ms']:.2f} ms")
    return out


def start_dispatch_worker(
    procs: Processes,
    logs: Path,
    tag: str,
    processes: int | None = None,
    threads: int | None = None,
    *,
    gevent: bool = False,
    module: str = "dispatch.tasks",
    pythonpath: tuple[Path, ...] = (),
) -> subprocess.Popen:
    """``dramatiq dispatch.tasks`` in the shape of ``DISPATCH_WORKER`` (or the one given), on the snapshot.

    ``gevent`` runs dramatiq's own ``dramatiq-gevent`` command (everything monkey-patched, the
    threads greenlets); ``module`` and ``pythonpath`` run another actor module (benchmarks/models/).
    """
    if gevent:
        head = [sys.executable, str(Path(sys.executable).parent / "dramatiq-gevent")]
    else:
        head = [sys.executable, "-m", "dramatiq"]
    command = [
        *head,
        module,
        "--processes",
        str(processes or DISPATCH_WORKER["processes"]),
        "--threads",
        str(threads or DISPATCH_WORKER["threads"]),
    ]
    env = {**DISPATCH_ENV, **DISPATCH_WORKER["env"]}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *map(str, pythonpath)])
    # cwd is the snapshot, so `-m dramatiq` finds the snapshot's dispatch first on sys.path.
    return procs.start(
        f"dispatch worker {tag}",
        command,
        env=env,
        cwd=Path(DISPATCH_ENV["PYTHONPATH"]),
        log_path=logs / f"dispatch-worker-{tag}.log.tmp",
    )


def snapshot_package(source: Path, build: Path) -> dict[str, Any]:
    """Copy ``source/dispatch`` into ``build/src``, so the whole run measures one version of it.

    Other people edit the working tree while a run is going; without the copy, a worker
    started halfway through could import half-edited code.  Clients and workers import the
    copy (PYTHONPATH, worker cwd); its installed dependencies come from the environment.
    """
    if source.name == "dispatch" and (source / "__init__.py").exists():  # the package itself was named
        source = source.parent
    target = build / "src"
    shutil.copytree(source / "dispatch", target / "dispatch", ignore=shutil.ignore_patterns("__pycache__"))
    DISPATCH_ENV["PYTHONPATH"] = str(target)

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    # A `git archive` copy outside the repository has no git: a COMMIT file beside dispatch/ names it.
    stamp = source / "COMMIT"
    return {
        "source": str(source),
        "commit": git("rev-parse", "HEAD") or (stamp.read_text().strip() if stamp.exists() else ""),
        "dirty": bool(git("status", "--porcelain", "--", "dispatch")),
    }


def run_dispatch(procs: Processes, args, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
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


def measure_worker(procs: Processes, system: str, args, base: str, env, worker_pid: int, receiver_pid: int):
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


def start_celery_worker(procs: Processes, pool: str, concurrency: int, logs: Path) -> subprocess.Popen:
    """A Celery port worker on ``CELERY_QUEUE`` without gossip, mingle or heartbeat (the fastest settings)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_port",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-Q",
        CELERY_QUEUE,
        "-n",
        f"bench-{pool}-{concurrency}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "WARNING",
    ]
    return procs.start(
        f"celery worker {pool} {concurrency}",
        command,
        env=CELERY_ENV,
        cwd=HERE,
        log_path=logs / f"celery-worker-{pool}-{concurrency}.log.tmp",
    )


def celery_command(pool: str, concurrency: int) -> str:
    """The worker command line as the report shows it."""
    return (
        f"celery -A celery_port worker -P {pool} -c {concurrency} --without-gossip --without-mingle --without-heartbeat"
    )


def run_celery(procs: Processes, args, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
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


# slow endpoints ----------------------------------------------------------------------------------


def slow_calls(args, delay_ms: int) -> int:
    """Calls in a slow run: ``--slow-calls`` against the 100 ms endpoint, ``--slow-calls-1s`` against the 1 s one."""
    return args.slow_calls if delay_ms < 1000 else args.slow_calls_1s


def slow_run(
    procs: Processes, system: str, args, base: str, env, worker_pid: int, receiver_pid: int, delay_ms: int, n: int
):
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


def run_slow(procs: Processes, args, base: str, receiver_pid: int, logs: Path) -> dict[str, Any]:
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
        if pool == "gevent" and not _importable("gevent"):
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


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
