"""A 10,000-call backlog drains through two worker processes with no loss and every result right."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from .support import QUEUE, send_to, unique_key

pytestmark = pytest.mark.integration

CALLS = 10_000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_ten_thousand_call_backlog_drains_with_no_loss(make_worker, node_endpoint):
    queue = f"{QUEUE}-load-{unique_key()[:6]}"
    url = node_endpoint.url("/multiply")
    handles = [send_to(queue, url, "GET", {"x": i, "y": 7}) for i in range(CALLS)]

    workers = make_worker(queue=queue, processes=2, threads=8, ready=False)
    memory = []
    for i, handle in enumerate(handles):
        assert handle.get(timeout=120) == i * 7
        if i % 1000 == 999:
            memory.append(sum(rss_mib(pid) for pid in workers.child_pids()))

    assert len(workers.child_pids()) == 2
    print(f"\nworker processes' RSS (MiB, sum of 2) every 1,000 calls: {[round(m) for m in memory]}")
    assert max(memory) < 2 * min(memory)  # no growth with the number of calls


def test_a_wide_worker_keeps_its_connections_and_stores_every_outcome(make_worker, node_endpoint):
    """150 threads calling one slow host: more than urllib3's default 32 kept connections, and with
    the results store's Redis clients, more than redis-py 8's default 100. Both pools follow the threads."""
    key = unique_key()
    wide = make_worker(threads=150)
    url = node_endpoint.url("/hold")
    handles = [wide.send(url, params={"key": key, "ms": 300}) for _ in range(600)]
    assert all(handle.get(timeout=120) >= 1 for handle in handles)
    assert node_endpoint.hits(key) == 600
    assert requests.get(f"{node_endpoint.base}/peak/{key}", timeout=5).json()["retval"] > 100  # wide indeed
    log = wide.log()
    assert "Connection pool is full" not in log and "Too many connections" not in log
