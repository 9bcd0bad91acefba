#!/usr/bin/env python
"""Where the time goes in this package: py-spy on the worker, cProfile on the client.

    python benchmarks/profile_dispatch.py [--n 3000] [--dispatch-src DIR]

Same set-up as ``bench.py`` (receiver, vhost ``dispatch-bench``, Redis db 8, a
``dramatiq dispatch.tasks --processes 2 --threads 8`` worker on a snapshot of the package).

1. **worker**: ``py-spy record`` on the worker's process tree while an unprofiled client
   runs N calls end to end; once counting every non-idle sample and once only samples that
   hold the GIL (Python CPU).  Reported: the share of samples whose innermost frame is in
   each function (self) and whose stack contains it (inclusive), and self time by library.
2. **client**: cProfile around the send loop (``URL(u).send(x=i, y=2)`` N times) and the get
   loop (every ``h.get()``), with the worker running.

Text summaries go to ``benchmarks/results/profile-*.txt``; raw stacks and ``.prof`` files to
``benchmarks/results/*.tmp``.  Needs ``py-spy`` (root, or ptrace permission).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import config
import launch
import report
import runs
import services

#: Leaf-frame file path fragments -> the library a sample is charged to, first match wins.
LIBRARIES = [
    ("/dispatch/", "dispatch"),
    ("/dramatiq/", "dramatiq"),
    ("/pika/", "pika"),
    ("/requests/", "requests"),
    ("/urllib3/", "urllib3"),
    ("/redis/", "redis"),
    ("/tenacity/", "tenacity"),
    ("/logging/", "logging"),
    ("/json/", "json"),
    ("/http/client.py", "http.client"),
    ("/email/", "email (http headers)"),
    ("/socket.py", "socket"),
    ("/ssl.py", "ssl"),
    ("/threading.py", "threading"),
    ("/queue.py", "queue"),
    ("/selectors.py", "selectors"),
    ("/inspect.py", "inspect"),
    ("/urllib/", "urllib.parse"),
    ("/os.py", "os"),
    ("/uuid.py", "uuid"),
]


def library(frame: str) -> str:
    for fragment, name in LIBRARIES:
        if fragment in frame:
            return name
    return "other: " + frame.rsplit("(", 1)[-1].rstrip(")").rsplit("/", 1)[-1]


def short(frame: str) -> str:
    """``fn (/long/path/site-packages/pkg/mod.py)`` -> ``pkg/mod.py:fn``."""
    name, _, path = frame.rpartition(" (")
    path = path.rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


def summarize_pyspy(raw: Path, title: str, top: int = 30) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    libs: collections.Counter[str] = collections.Counter()
    by_process: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = stack.split(";")
        processes = [f for f in parts if f.startswith("process ")]
        frames = [f for f in parts if "(" in f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        # the innermost process: dramatiq's main process (log forwarding) or a worker process
        pid = processes[-1].split(":", 1)[0] if processes else "?"
        by_process[pid] += n
        self_counts[short(frames[-1])] += n
        libs[library(frames[-1])] += n
        for frame in {short(f) for f in frames}:
            incl_counts[frame] += n
    out = [f"== {title}: {total} samples ==", "", "samples by process (the first is dramatiq's main process):"]
    out += [f"  {100 * c / total:5.1f}%  {pid}" for pid, c in sorted(by_process.items())]
    out += ["", "self time by library (innermost frame):"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in libs.most_common(20)]
    out += ["", f"top {top} functions by self time:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in self_counts.most_common(top)]
    out += ["", f"top {top} functions by inclusive time:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in incl_counts.most_common(top)]
    return "\n".join(out) + "\n"


def profile_worker(procs, args, base, worker_pid, results: Path, gil: bool) -> str:
    tag = "gil" if gil else "active"
    raw = results / f"profile-worker-{tag}.raw.tmp"
    command = [
        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
        "record", "--pid", str(worker_pid), "--subprocesses", "--rate", str(args.rate),
        "--format", "raw", "--nolineno", "--full-filenames", "--output", str(raw),
    ]  # fmt: skip
    if gil:
        command.append("--gil")
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(1.0)  # let py-spy attach to every process
        launch.log(f"worker profile ({tag}): {args.n} calls under py-spy")
        result = procs.run_client("dispatch", ["e2e"], runs.client_args(args, base), config.DISPATCH_ENV)["e2e"]
        launch.log(f"  {result['calls_per_s']:.0f} calls/s while sampled")
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}")
    title = f"worker, {'GIL-holding' if gil else 'non-idle'} samples, {args.n} calls e2e"
    return summarize_pyspy(raw, title)


def profile_client(args, base: str, results: Path) -> str:
    """cProfile of the send loop and the get loop, in this process (the worker is running)."""
    os.environ.update(config.DISPATCH_ENV)
    sys.path.insert(0, config.DISPATCH_ENV["PYTHONPATH"])
    from dispatch import URL

    u = base + "/multiply"
    for i in range(50):  # connect, declare, warm caches
        URL(u).send(x=i, y=2).get(timeout=30)
    out = []
    send_profile, get_profile = cProfile.Profile(), cProfile.Profile()
    t0 = time.perf_counter()
    send_profile.enable()
    handles = [URL(u).send(x=i, y=2) for i in range(args.n)]
    send_profile.disable()
    t1 = time.perf_counter()
    get_profile.enable()
    values = [h.get(timeout=120) for h in handles]
    get_profile.disable()
    t2 = time.perf_counter()
    assert values == [i * 2 for i in range(args.n)]
    for name, profile, seconds in (("send loop", send_profile, t1 - t0), ("get loop", get_profile, t2 - t1)):
        profile.dump_stats(results / f"profile-client-{name.split()[0]}.prof.tmp")
        for order in ("tottime", "cumulative"):
            stream = io.StringIO()
            stats = pstats.Stats(profile, stream=stream)
            stats.sort_stats(order).print_stats(args.top)
            text = stream.getvalue()
            text = text.replace(str(Path(sys.executable).parent.parent / "lib/python3.11/site-packages") + "/", "")
            text = text.replace(config.DISPATCH_ENV["PYTHONPATH"] + "/", "")
            out.append(
                f"== client {name}: {args.n} calls in {seconds:.2f}s under cProfile "
                f"({args.n / seconds:.0f}/s), sorted by {order} ==\n{text}"
            )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--dispatch-src", type=Path, default=config.ROOT)
    parser.add_argument("--out", type=Path, default=report.RESULTS)
    parser.add_argument("--only", choices=["worker", "client"], default=None)
    args = parser.parse_args()
    args.warmup, args.latency_n, args.memory_calls, args.memory_every = 50, 200, 0, 1000
    args.out.mkdir(parents=True, exist_ok=True)

    procs = launch.Processes()
    build = Path(tempfile.mkdtemp(prefix="dispatch-profile-"))
    try:
        package = launch.snapshot_package(args.dispatch_src.resolve(), build)
        launch.log(f"profiling dispatch from {package['source']} at {package['commit'][:10]}")
        services.ensure_vhost()
        _receiver, base, description = launch.start_receiver(procs, "c", build, args.out)
        services.clean_dispatch()
        worker = launch.start_dispatch_worker(procs, args.out, "profile")
        procs.run_client("dispatch", ["ready", "latency"], runs.client_args(args, base), config.DISPATCH_ENV)
        header = f"dispatch {package['commit'][:10]}{' (dirty)' if package['dirty'] else ''}, receiver {description}\n"
        if args.only in (None, "worker"):
            text = header + "\n".join(
                profile_worker(procs, args, base, worker.pid, args.out, gil) for gil in (False, True)
            )
            (args.out / "profile-worker.txt").write_text(text)
            print(text)
        if args.only in (None, "client"):
            text = header + profile_client(args, base, args.out)
            (args.out / "profile-client.txt").write_text(text)
            print(text[:20000])
        return 0
    finally:
        procs.stop_all()
        try:
            services.clean_dispatch()
        except Exception as exc:
            launch.log(f"cleanup: {exc}")
        shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
