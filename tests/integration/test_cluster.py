"""A three-node RabbitMQ cluster loses the quorum leader's node while calls flow: nothing is lost.

Three throw-away nodes (``scripts/rabbitmq-cluster.sh``, ports 5711-5713) run beside the
system RabbitMQ, which is never touched.  A sender process sends 2,000 calls one by one
(``send()``, each confirmed) to a quorum queue while a real worker performs them; the node
leading the queue is killed with SIGKILL -- once the node the sender declared the queue on
(so the sender's own node), once the node the worker declared it on (the worker's node).
Every call's outcome must come back through ``res.get()``, no send may fail, and neither the
sender nor the worker may stall for more than 5 s.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from .support import QUEUE, ROOT, Worker, unique_key, wait_for

SCRIPT = ROOT / "scripts" / "rabbitmq-cluster.sh"
CALLS = 2_000
KILL_AFTER = 500  # calls sent before the leader's node is killed
RECOVERY = 5.0  # seconds any client may stall

pytestmark = pytest.mark.skipif(
    not (Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which("rabbitmq-server")),
    reason="needs the RabbitMQ server binaries to start cluster nodes",
)

SENDER = """
import json, sys, time
from dispatch import URL
from dispatch.wiring import get_broker
from dispatch.tasks import http_dispatch

url, calls, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3]
get_broker().declare_queue(http_dispatch.queue_name, ensure=True)  # on this process's node: it leads the queue
print("declared", flush=True)
handles, gaps, last, failed = [], [], time.monotonic(), []
for i in range(calls):
    try:
        handles.append((i, URL(url).send(x=i, y=2)))
    except Exception as exc:
        failed.append(f"{type(exc).__name__}: {exc}")
    now = time.monotonic()
    gaps.append(now - last)
    last = now
    if i % 50 == 0:
        with open(progress, "w") as f:
            f.write(str(i))
outcomes, deadline = {}, time.monotonic() + 60
for i, handle in handles:
    try:
        outcomes[handle.message_id] = handle.get(timeout=max(0.1, deadline - time.monotonic())) == 2 * i
    except Exception as exc:
        outcomes[handle.message_id] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"sent": len(handles), "failed": failed, "max_gap": max(gaps),
                  "wrong": {k: v for k, v in outcomes.items() if v is not True}}), flush=True)
"""

LOG_LINE = re.compile(r"^\[(?P<time>[\d\- :,.]+)\] \[PID (?P<pid>\d+)\].*processed: ")


@pytest.fixture(scope="module")
def cluster() -> dict:
    """Three clustered nodes; always killed and their files deleted afterwards."""
    directory = tempfile.mkdtemp(prefix="dispatch-cluster-")
    env = {**os.environ, "CLUSTER_DIR": directory, "CLUSTER_PORT": "5710", "CLUSTER_NAME": "dispatchtest"}
    run = {"env": env, "directory": directory}
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", "3"], env=env, capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr
        run["urls"] = started.stdout.strip().splitlines()[-1]
        yield run
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


def cluster_cmd(cluster: dict, *args: str) -> str:
    done = subprocess.run(["bash", str(SCRIPT), *args], env=cluster["env"], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def leader_of(cluster: dict, queue: str, ask: int = 1) -> int | None:
    """The number (1-3) of the node leading ``queue``, asked of node ``ask``; None before it exists."""
    listed = subprocess.run(
        ["bash", str(SCRIPT), "ctl", str(ask), "list_queues", "name", "leader", "--formatter", "json", "-q"],
        env=cluster["env"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for row in json.loads(listed.stdout or "[]"):
        if row["name"] == queue and row.get("leader"):
            return int(row["leader"].split("@")[0].removeprefix("dispatchtest"))
    return None


def worker_stalls(log: str, since: float, until: float) -> dict[int, float]:
    """For each worker process: the longest time between two finished calls in [since, until] (inf: none)."""
    times: dict[int, list[float]] = {}
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = datetime.strptime(match["time"].replace(",", "."), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            times.setdefault(int(match["pid"]), []).append(stamp)
    stalls = {}
    for pid, stamps in times.items():
        window = [since, *(t for t in stamps if since <= t <= until)]
        stalls[pid] = max((b - a for a, b in itertools.pairwise(window)), default=float("inf"))
    return stalls


@pytest.mark.parametrize("victim", ["sender", "worker"])
def test_losing_the_quorum_leaders_node_loses_no_call(cluster, victim, python_endpoint, redis_db, tmp_path):
    queue = f"{QUEUE}-cluster-{victim}-{unique_key()[:6]}"
    env = {"DISPATCH_QUEUE": queue, "DISPATCH_QUEUE_TYPE": "quorum"}
    urls = cluster["urls"].split(";")  # listed from another node for each (processes also shuffle the list)
    sender_env = {**env, "DISPATCH_BROKER_URL": ";".join(urls)}
    worker_env = {**env, "DISPATCH_BROKER_URL": ";".join(urls[1:] + urls[:1])}
    progress = tmp_path / "progress"
    worker = sender = killed = None
    try:
        if victim == "worker":  # the worker declares the queue: its node leads it
            worker = Worker(tmp_path / "worker.log", worker_env, processes=2, threads=8)
            leader = wait_for(lambda: leader_of(cluster, queue), 60, "the worker to declare the queue")
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, python_endpoint.url("/multiply"), str(CALLS), str(progress)],
            env={**os.environ, **sender_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if victim == "sender":  # the sender declares the queue: its node leads it
            assert sender.stdout.readline().strip() == "declared", sender.stderr.read()
            leader = wait_for(lambda: leader_of(cluster, queue), 30, "the sender to declare the queue")
            worker = Worker(tmp_path / "worker.log", worker_env, processes=2, threads=8)
        wait_for(lambda: progress.exists() and int(progress.read_text() or 0) >= KILL_AFTER, 90, "calls flowing")

        pid = int(cluster_cmd(cluster, "pid", str(leader)))
        killed_at = time.time()
        os.kill(pid, 9)
        killed = leader
        survivor = 1 if leader != 1 else 2
        new_leader = wait_for(lambda: (lambda n: n if n and n != leader else None)(leader_of(cluster, queue, survivor)),
                              30, "a new leader")  # fmt: skip

        out, err = sender.communicate(timeout=100)
        finished_at = time.time()
        assert sender.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        stalls = worker_stalls(worker.log(), killed_at, finished_at)
        print(
            f"\n{victim}'s node {leader} killed; new leader {new_leader}; sender's longest stall "
            f"{report['max_gap']:.2f}s; workers' longest stall after the kill {stalls} (killed at {killed_at:.3f})"
        )
        assert report["failed"] == [], report["failed"][:5]  # no call reported as failed to the sender
        assert report["sent"] == CALLS
        assert report["wrong"] == {}, list(report["wrong"].items())[:5]  # lost: 0, every outcome readable
        assert report["max_gap"] <= RECOVERY, report
        assert stalls and max(stalls.values()) <= RECOVERY, stalls
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
        if worker is not None:
            worker.stop()
        if killed is not None:
            cluster_cmd(cluster, "restart", str(killed))  # the next run needs a majority again
