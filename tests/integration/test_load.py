"""A 10,000-call backlog drains through two worker processes with no loss and every result right."""

from __future__ import annotations

from pathlib import Path

import pytest

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
