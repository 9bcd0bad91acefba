"""Leases: a concurrency slot or a breaker's probe held by a call is given back when it ends, waits or is
cancelled, and runs out by itself at the call's deadline when its worker was killed with ``kill -9``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage

from dispatch.call import ACTOR_NAME
from dispatch.errors import TransportError
from dispatch.flow import FlowControl
from dispatch.flow.keys import flow_key
from dispatch.flow.limits import lease_margin
from dispatch.settings import Settings

from .support import TEST_ENV, dispatch, wait_for

pytestmark = pytest.mark.integration


def destinations_file(tmp_path, host: str, text: str) -> str:
    path = tmp_path / "destinations.toml"
    path.write_text(f'[destinations."{host}"]\n{text}\n')
    return str(path)


def hosts(env: dict[str, str], host: str) -> dict[str, Any]:
    done = dispatch("hosts", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return next(state for state in json.loads(done.stdout) if state["host"] == host)


def test_a_slot_held_by_a_killed_worker_frees_itself_by_the_calls_deadline(make_worker, node_endpoint, tmp_path):
    host = f"127.0.0.1:{node_endpoint.port}"
    env = {"DISPATCH_DESTINATIONS": destinations_file(tmp_path, host, "max_concurrency = 1")}
    doomed = make_worker(threads=1, **env)
    key = f"lease-{tmp_path.name}"
    slow = doomed.send(node_endpoint.url("/hold"), params={"key": key, "ms": 60_000}, timeout=5, max_attempts=1)
    holding = wait_for(lambda: hosts(env, host)["holders"] or None, 30, "the slow call to hold the slot")
    admitted = time.monotonic()
    assert holding == [slow.message_id]
    doomed.kill()  # kill -9: nothing is given back

    survivor = make_worker(threads=2, **env)  # a queue of its own: the slow call is not delivered again here
    quick = survivor.send(node_endpoint.url("/hold"), params={"key": f"{key}-quick", "ms": 1})
    deadline = 5 + lease_margin(Settings.from_env(TEST_ENV))  # the slow call's worst case (one 5 s attempt), margin
    assert quick.get(timeout=deadline + 20) == 1
    waited = time.monotonic() - admitted
    assert deadline - 3 <= waited <= deadline + 15, waited  # it waited for the lease to run out, not 15 minutes
    assert hosts(env, host)["holders"] == []


# --- the breaker's probe, on the middleware itself against the real Redis ---------------------------


@pytest.fixture
def flow(tmp_path, redis_db):
    host = "probe.example:443"
    path = destinations_file(tmp_path, host, "max_concurrency = 1\nbreaker = { failures = 1, cooldown = 1 }")
    client = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"])
    namespace = f"leases-{uuid.uuid4().hex[:8]}"
    control = FlowControl(Settings.from_env({"DISPATCH_DESTINATIONS": path}), client, namespace)
    enqueued: list[tuple[dramatiq.Message, int]] = []
    broker = SimpleNamespace(
        actors={ACTOR_NAME: SimpleNamespace(performs_calls=True)},
        enqueue=lambda message, delay: enqueued.append((message, delay)),
    )
    keys = SimpleNamespace(**{what.replace("-", "_"): flow_key(namespace, host, what) for what in
                              ("failures", "open", "probe", "in-flight")})  # fmt: skip
    client.set(keys.failures, 1)  # one failure, no cooldown left: half-open, the next call is the probe
    yield SimpleNamespace(control=control, broker=broker, client=client, keys=keys, enqueued=enqueued)
    client.delete(*vars(keys).values())


def a_call() -> MessageProxy:
    options = {"timeout": 3, "max_attempts": 1}
    return MessageProxy(dramatiq.Message("q", ACTOR_NAME, ("https://probe.example/x", "GET", {}, options), {}, {}))


def test_the_probe_is_a_lease_of_its_call_given_back_when_it_ends(flow):
    call = a_call()
    flow.control.before_process_message(flow.broker, call)
    assert flow.client.get(flow.keys.probe) == call.message_id.encode()
    lease = (3 + lease_margin(flow.control.settings)) * 1000
    assert 0 < flow.client.pttl(flow.keys.probe) <= lease  # a kill -9 lets it run out
    other = a_call()
    waited: list[BaseException] = []

    def deliver_another() -> None:  # in a worker thread of its own, as a worker would
        try:
            flow.control.before_process_message(flow.broker, other)
        except SkipMessage as skipped:  # half-open, the probe in flight: another call waits
            waited.append(skipped)
            flow.control.after_skip_message(flow.broker, other)

    thread = threading.Thread(target=deliver_another)
    thread.start()
    thread.join()
    assert waited and other.options["postponed"] == "breaker"
    assert flow.client.get(flow.keys.probe) == call.message_id.encode()  # only its holder gives it back
    flow.control.after_process_message(flow.broker, call, exception=TransportError("down"))
    assert flow.client.exists(flow.keys.probe) == 0 and flow.client.exists(flow.keys.open) == 1


def test_a_probe_that_must_wait_for_a_slot_gives_the_probe_back(flow):
    flow.client.zadd(flow.keys.in_flight, {"another-call": int(time.time() * 1000) + 60_000})
    call = a_call()
    with pytest.raises(SkipMessage):
        flow.control.before_process_message(flow.broker, call)
    assert call.options["postponed"] == "concurrency" and len(flow.enqueued) == 1
    assert flow.client.exists(flow.keys.probe) == 0


def test_a_cancelled_probe_gives_the_probe_and_its_slot_back(flow):
    call = a_call()
    flow.control.before_process_message(flow.broker, call)  # admitted: the probe and the slot
    assert flow.client.zscore(flow.keys.in_flight, call.message_id) is not None
    flow.control.after_skip_message(flow.broker, call)  # SkipCancelled, after flow control, skipped it
    assert flow.client.exists(flow.keys.probe) == 0 and flow.client.zcard(flow.keys.in_flight) == 0
