"""`dispatch dead list | replay | purge` against the real dead-letter queue."""

from __future__ import annotations

import json
import subprocess

import pytest

from dispatch import RemoteExecuteError, TransportError

from .support import dispatch, unique_key, wait_for

pytestmark = pytest.mark.integration


def test_dead_commands_list_replay_and_purge(make_worker, python_endpoint):
    # A queue of its own: other tests' failures, dead-lettered a moment after their outcome is stored, stay out.
    own = make_worker()

    def dispatch_cli(*args: str) -> subprocess.CompletedProcess:
        return dispatch(*args, env={"DISPATCH_QUEUE": own.queue}, timeout=60)

    def dead_list() -> list[dict]:
        done = dispatch_cli("dead", "list", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    recovering = own.send(python_endpoint.url("/flaky"), params={"key": unique_key(), "fail": 3})
    hopeless = own.send(python_endpoint.url("/fail"), params={"reason": "no such order"})
    with pytest.raises(TransportError):
        recovering.get(timeout=30)
    with pytest.raises(RemoteExecuteError):
        hopeless.get(timeout=30)

    listed = wait_for(lambda: len(dead_list()) == 2 and dead_list(), 20, "two dead letters")
    by_id = {entry["message_id"]: entry for entry in listed}
    assert by_id[hopeless.message_id]["error"] == "RemoteExecuteError: no such order"
    assert by_id[hopeless.message_id]["method"] == "GET"
    assert by_id[hopeless.message_id]["failed_at"]

    piped = dispatch_cli("dead", "list")  # stdout is a pipe here: one tab-separated line per dead call
    assert piped.returncode == 0 and "2 dead call(s)" in piped.stderr
    assert sorted(line.split("\t")[0] for line in piped.stdout.splitlines()) == sorted(by_id)

    usage = dispatch_cli("dead", "replay")
    assert usage.returncode == 2 and "--all" in usage.stderr

    replayed = dispatch_cli("dead", "replay", recovering.message_id, "--json")
    assert json.loads(replayed.stdout) == {"replayed": [recovering.message_id], "not_found": []}
    assert recovering.get(timeout=30) == 4

    unknown = dispatch_cli("dead", "replay", "no-such-id", "--json")
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["not_found"] == ["no-such-id"]

    purged = dispatch_cli("dead", "purge", "--yes", "--json")
    assert json.loads(purged.stdout) == {"purged": 1}
    assert dead_list() == []
