"""A dead letter is replayed once, even when several operators replay at the same moment.

Several processes (as the console and ``dispatch dead replay`` would be) replay every dead
letter of one queue at one instant, while a worker fails each replayed call again at once,
so it is dead-lettered anew while the other replays are still reading the queue.  Each call
must reach its endpoint exactly twice: the original delivery and one replay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from dispatch import RemoteExecuteError

from .support import ROOT, queue_depth, unique_key, wait_for

pytestmark = pytest.mark.integration

REPLAYERS = 4
LETTERS = 30

# Builds the runtime and connects first, then waits for the shared instant, then replays everything.
_REPLAYER = """
import json, sys, time
from dispatch import deadletters
from dispatch.runtime import get_runtime
get_runtime().results.write_client.ping()
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print(json.dumps(deadletters.replay()))
"""


def test_concurrent_replays_publish_each_dead_letter_once(make_worker, python_endpoint):
    own = make_worker()
    keys = [unique_key() for _ in range(LETTERS)]
    handles = [own.send(python_endpoint.url("/fail"), params={"reason": "still broken", "key": key}) for key in keys]
    for handle in handles:
        with pytest.raises(RemoteExecuteError):
            handle.get(timeout=30)
    dead = f"{own.queue}.XQ"
    wait_for(lambda: queue_depth(dead) == LETTERS, 20, f"{LETTERS} dead letters")

    start_at = f"{time.time() + 4:.3f}"
    replayers = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLAYER, start_at],
            env={**os.environ, "DISPATCH_QUEUE": own.queue},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(REPLAYERS)
    ]
    replayed: list[str] = []
    for process in replayers:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        replayed += json.loads(out)

    assert sorted(replayed) == sorted(handle.message_id for handle in handles)  # each by exactly one replayer
    wait_for(lambda: queue_depth(dead) == LETTERS, 20, "every replayed call to be dead again")
    assert [python_endpoint.hits(key) for key in keys] == [2] * LETTERS  # the first delivery and one replay
