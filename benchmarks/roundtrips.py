#!/usr/bin/env python
"""Redis commands per call (issue 19): one worker thread, a few calls one at a time, every command counted.

    python benchmarks/roundtrips.py                                  # the working tree's dispatch/
    python benchmarks/roundtrips.py --dispatch-src /tmp/src-353d935/dispatch --calls 20

It starts the bench receiver and a worker of one process and one thread on a snapshot of the package
(as bench.py does), makes a few calls for warm-up, then runs ``redis-cli MONITOR`` while ``--calls``
calls are made one at a time (``send()``, then ``get()``) and counts what Redis received on the bench's
database (8), per call:

* **worker** -- commands from the worker's own connections (found from its process tree's sockets):
  these are its round trips, except that the commands of one pipeline arrive together and MONITOR
  cannot tell them apart from separate ones (the package's call record writes go in one pipeline each);
* **client** -- every other connection to db 8: the sender's ``send()`` and ``get()``;
* **inside scripts** -- the commands a Lua script ran (``[8 lua]``), not round trips.

EVALSHA is shown with its first key's prefix (the call's id replaced by ``<id>``).  The same count over
an idle second before the calls shows what the worker does when it has nothing to do.  The result goes to
``results/roundtrips-COMMIT.json`` (``--out``) and a summary to stdout.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
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

#: ``1700000000.123456 [8 127.0.0.1:54321] "EVALSHA" "abc..." "3" "dispatch:{id}:call" ...``
LINE = re.compile(r'^(\d+\.\d+) \[(\d+) ([^\]]+)\] "([^"]+)"(.*)$')
CALL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def worker_redis_ports(pid: int) -> set[int]:
    """The local ports of every connection the worker's process tree holds to Redis."""
    import psutil

    root = psutil.Process(pid)
    ports = set()
    for proc in [root, *root.children(recursive=True)]:
        for conn in proc.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == 6379:
                ports.add(conn.laddr.port)
    return ports


def label(command: str, rest: str) -> str:
    """A command's name; EVALSHA/EVAL with the shape of its first key."""
    if command.upper() not in ("EVALSHA", "EVAL"):
        return command.upper()
    args = re.findall(r'"((?:[^"\\]|\\.)*)"', rest)
    key = CALL_ID.sub("<id>", args[2]) if len(args) > 2 and args[1] != "0" else "-"
    return f"{command.upper()} {args[0][:8] if command.upper() == 'EVALSHA' else '<script>'} {key}"


def count(
    lines: list[str], db: str, worker_ports: set[int], start: float, end: float
) -> dict[str, collections.Counter[str]]:
    """Commands on ``db`` between ``start`` and ``end`` by side: worker, client, inside scripts."""
    sides: dict[str, collections.Counter[str]] = {
        "worker": collections.Counter(),
        "client": collections.Counter(),
        "inside scripts": collections.Counter(),
    }
    for line in lines:
        match = LINE.match(line)
        if not match or match[2] != db or not start <= float(match[1]) <= end:
            continue
        where, command, rest = match[3], match[4], match[5]
        if where == "lua":
            sides["inside scripts"][command.upper()] += 1
            continue
        port = int(where.rsplit(":", 1)[1]) if ":" in where else -1
        sides["worker" if port in worker_ports else "client"][label(command, rest)] += 1
    return sides


def main(argv: list[str]) -> int:
    """Snapshot, receiver, a one-thread worker, warm-up, then the calls under MONITOR; counts per call."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dispatch-src", type=Path, default=config.ROOT, help="the package to measure")
    parser.add_argument("--calls", type=int, default=20, help="calls counted (default 20)")
    parser.add_argument("--out", type=Path, default=report.RESULTS, help="directory for roundtrips-COMMIT.json")
    args = parser.parse_args(argv)
    if not shutil.which("redis-cli"):
        raise SystemExit("redis-cli is needed (MONITOR)")
    db = config.DISPATCH_REDIS.rsplit("/", 1)[1]
    launch.raise_on_sigterm()
    procs = launch.Processes()
    build = Path(tempfile.mkdtemp(prefix="dispatch-roundtrips-"))
    try:
        package = launch.snapshot_package(args.dispatch_src.resolve(), build)
        log(f"measuring dispatch from {package['source']} at {package['commit'][:10]}")
        services.ensure_vhost()
        services.clean_dispatch()
        _receiver, base, _ = launch.start_receiver(procs, "c", build, build)
        worker = launch.start_dispatch_worker(procs, build, "roundtrips", 1, 1)
        client = runs.client_args(runs_args(), base, warmup=5, latency_n=5)
        procs.run_client("dispatch", ["ready", "latency"], client, config.DISPATCH_ENV)  # warm-up
        monitor_log = build / "monitor.txt"
        with open(monitor_log, "w") as output:
            monitor = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "MONITOR"], stdout=output, text=True)
        try:
            time.sleep(1.2)
            start = time.time()
            counted = runs.client_args(runs_args(), base, warmup=0, latency_n=args.calls)
            procs.run_client("dispatch", ["latency"], counted, config.DISPATCH_ENV)
            end = time.time()
            time.sleep(0.3)
        finally:
            monitor.terminate()
            monitor.wait(10)
        ports = worker_redis_ports(worker.pid)
        lines = monitor_log.read_text(errors="replace").splitlines()
        calls = count(lines, db, ports, start, end)
        idle = count(lines, db, ports, start - 1.0, start)
        result: dict[str, Any] = {
            "package": package,
            "calls": args.calls,
            "worker": "dramatiq dispatch.tasks --processes 1 --threads 1",
            "per_call": {side: {k: v / args.calls for k, v in sorted(c.items())} for side, c in calls.items()},
            "idle_second": {side: dict(sorted(c.items())) for side, c in idle.items()},
        }
        for side in ("worker", "client", "inside scripts"):
            total = sum(calls[side].values()) / args.calls
            result[f"{side.replace(' ', '_')}_commands_per_call"] = total
            log(f"{side}: {total:.2f} commands per call")
            for name, n in sorted(calls[side].items()):
                log(f"    {n / args.calls:5.2f}  {name}")
        log(f"idle second before the calls: worker {sum(idle['worker'].values())} commands")
        path = args.out / f"roundtrips-{(package['commit'] or 'unknown')[:7]}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {path}")
        return 0
    finally:
        procs.stop_all()
        services.clean_dispatch()
        shutil.rmtree(build, ignore_errors=True)


def runs_args() -> argparse.Namespace:
    """The few run options ``runs.client_args`` reads."""
    return argparse.Namespace(n=1, warmup=0, latency_n=1, memory_calls=0, memory_every=1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
