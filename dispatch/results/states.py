"""One record per call: its state, its outcome and its attempts, moved by one atomic script per transition.

A call's record sits in the results store beside its outcome, three keys
hash-tagged on the call id (one Redis Cluster slot)::

    dispatch:{<id>}:call       hash: state, wire, attempts_total, due_at_ms, holder, lease_until_ms
    dispatch:{<id>}:result     the outcome, as dramatiq's Redis backend keeps it (what get() waits on)
    dispatch:{<id>}:attempts   one JSON object per HTTP attempt, the last 100

::

    send_in/send_at            worker claims                 delivery ends in a Retry
    (none) --SCHEDULE--> scheduled --CLAIM--> started --WAIT--> waiting --CLAIM--> started ...
       |                    |                   |                 |
       |                    |                   +--FINISH--> success | failure   (final: never replaced)
       +------CANCEL--------+------CANCEL (only while no attempt reached the wire)--> cancelled

* ``scheduled`` -- a call sent with a delay, recorded before it is published;
* ``started``   -- claimed by a worker just before it is performed (CLAIM refuses a cancelled call,
  and answers ``done`` for a call whose outcome is stored: a redelivery is acked, not sent again);
* ``waiting``   -- between scheduled deliveries; ``wire`` says whether an attempt reached the wire;
* ``success`` / ``failure`` -- FINISH stored the outcome (only if none is stored: it is never replaced);
* ``cancelled`` -- CANCEL, which also stores the ``CallCancelled`` outcome in the same script.

Each transition is one Lua script (:mod:`._scripts`), so a worker starting
a call and a caller cancelling it cannot both win: ``cancel()`` answers True
only if the call will never be sent, True again when asked again (from any
process), and False once an attempt may have reached the wire.  The record
lives while the call can still run -- every transition pushes its expiry to
the next due time or the worker's lease -- plus ``DISPATCH_RESULT_TTL``.
dramatiq-abort was considered: its ``abort()`` signals workers but cannot
answer *whether* the call had already started.

:class:`MemoryCallStates` is the same machine in one process, for the
StubBroker (:mod:`dispatch.testing`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

from dramatiq.encoder import Encoder
from dramatiq.results.backends import StubBackend
from dramatiq.results.result import wrap_exception
from redis.exceptions import NoScriptError

from ..errors import CallCancelled
from ..redis_connect import WAIT_TIMEOUT_MS, Replication
from ..upstream import stub_outcome_stored, stub_store_outcome
from . import _scripts

SCHEDULED, STARTED, WAITING, CANCELLED = "scheduled", "started", "waiting", "cancelled"
SUCCESS, FAILURE = "success", "failure"
#: What a claim answers: perform the call, skip it (cancelled), ack it (its outcome is stored already), or
#: postpone it (another delivery of it, in a worker process that is alive, holds an unexpired lease).
CLAIMED, DONE, BUSY = "claimed", "done", "busy"

Attempt = dict[str, Any]


#: The message option carrying a wait that could not be written to the next delivery's claim.
UNRECORDED_WAIT = "unrecorded_wait"


class UnrecordedWait(TypedDict):
    """A delivery's wait that could not be written (``options["unrecorded_wait"]``): written by the next claim."""

    delivery: str  # its token: written once
    wire: bool  # whether an attempt of it reached the wire
    attempts: list[Attempt]


def record_keys(namespace: str, call_id: str) -> tuple[str, str, str]:
    """The call record's keys: the state hash, the outcome list, the attempts list."""
    return f"{namespace}:{{{call_id}}}:call", f"{namespace}:{{{call_id}}}:result", f"{namespace}:{{{call_id}}}:attempts"


def reached_wire(attempts: Sequence[Attempt]) -> bool:
    """Whether a performed delivery's attempts may have reached the endpoint; with none on record, assume so."""
    return not attempts or any(attempt.get("wire", True) for attempt in attempts)


def _public(attempt: Attempt) -> Attempt:
    """An attempt as kept: without the recorder's ``wire`` flag (the record keeps it, once, for the call)."""
    return {name: value for name, value in attempt.items() if name != "wire"}


class CallStates(Protocol):
    """Where calls' records live: :class:`RedisCallStates` beside the outcomes, :class:`MemoryCallStates` in-process."""

    def schedule(self, call_id: str, delay_ms: int = 0) -> None:
        """Record a call sent with a delay as ``scheduled``; a record that exists keeps its state (a cancelled call
        stays cancelled) and lives at least until the call is due plus the TTL."""

    def claim(self, call_id: str, holder: str, lease_ms: int, unrecorded: UnrecordedWait | None = None) -> str:
        """Mark the call started for ``lease_ms``: ``claimed``; ``cancelled`` (skip it); ``done`` (ack it);
        ``busy`` (another delivery holds an unexpired lease on it and its worker process is alive -- see
        :meth:`heartbeat`: postpone this one; a dead process's lease is taken over).  ``holder`` is
        ``<process>/<thread>/<delivery token>``.

        ``unrecorded``: the wait of the delivery before, which could not be written then (it came in the
        message): claiming writes its wire flag and attempts too."""

    def heartbeat(self, process: str, ttl_ms: int) -> None:
        """``process`` (a worker's ``host:pid``) is alive for ``ttl_ms``: its claims' leases are not taken over."""

    def wait(self, call_id: str, delay_ms: int, attempts: Sequence[Attempt], delivery: str = "") -> None:
        """The delivery ended with a scheduled redelivery in ``delay_ms``: ``waiting``, its attempts appended
        (once per ``delivery``, the claim's holder: a retried write appends nothing again)."""

    def finish(
        self,
        call_id: str,
        outcome: Any,
        ttl_ms: int,
        attempts: Sequence[Attempt] = (),
        delivery: str = "",
        replays: int = 0,
    ) -> bool:
        """Store the (dramatiq-wrapped) outcome unless one is stored already; False then (it is never replaced).
        True again when the same ``delivery`` retries the write that stored it; False for an outcome from before
        the call's last replay (``replays``: the message's count of them, ``options["replays"]``)."""

    def cancel(self, call_id: str) -> bool:
        """True if the call is cancelled (now or before) and will never be sent; False if it may have been."""

    def state(self, call_id: str) -> str | None:
        """The record's state, or None for a call with none."""

    def attempts(self, call_id: str) -> list[Attempt]:
        """Every attempt on record, oldest first, numbered from 1 over the call's life (the last 100)."""

    def forget(self, call_id: str, replays: int = 0) -> None:
        """Drop the call's outcome and state (a scheduled call not sent after all; a dead letter replayed for the
        ``replays``-th time): it is performed when it comes, not acked as done; its attempts stay."""


def _final_state(outcome: Any) -> str:
    return FAILURE if isinstance(outcome, dict) and "exn" in outcome and "__t" in outcome else SUCCESS


class RedisCallStates:
    """Call records in Redis, shared by every client and worker of one results store."""

    def __init__(
        self,
        client: Any,
        ttl_ms: int,
        encoder: Encoder,
        namespace: str = "dispatch",
        replication: Replication | None = None,
    ) -> None:
        self.client = client
        self.ttl_ms = ttl_ms
        self.encoder = encoder
        self.namespace = namespace
        self.replication = replication or Replication(client, 0, WAIT_TIMEOUT_MS)

    def keys(self, call_id: str) -> tuple[str, str, str]:
        return record_keys(self.namespace, call_id)

    def _run(self, script: str, call_id: str, *args: Any) -> Any:
        """Run one transition ``script`` on the call's record: the ONE way every record write reaches Redis.

        One round trip: the script goes by its SHA (EVALSHA) in a non-transactional
        pipeline, falling back to EVAL (which also caches it) when Redis does not
        know it yet.  The same round trip carries the replication barrier (issue 22:
        ``WAIT numreplicas timeout``, :class:`~dispatch.redis_connect.Replication`):
        a write too few replicas confirmed raises NotReplicated, a failed write like any other.
        """
        keys = self.keys(call_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(_sha(script), len(keys), *keys, *args)
            try:
                return self.replication.execute(pipe)[0]
            except NoScriptError:
                pipe.eval(script, len(keys), *keys, *args)
                return self.replication.execute(pipe)[0]

    def schedule(self, call_id: str, delay_ms: int = 0) -> None:
        self._run(_scripts.SCHEDULE, call_id, max(int(delay_ms), 0), self.ttl_ms)

    def claim(self, call_id: str, holder: str, lease_ms: int, unrecorded: UnrecordedWait | None = None) -> str:
        wait = unrecorded or {"delivery": "", "wire": False, "attempts": []}
        carried = (wait["delivery"], int(wait["wire"]), *_json(wait["attempts"]))
        verdict = _text(self._run(_scripts.CLAIM, call_id, holder, int(lease_ms), self.ttl_ms, "", *carried))
        if not verdict.startswith(BUSY):
            return str(verdict)
        other = verdict.partition(" ")[2]
        if self.client.exists(self._alive_key(holder_process(other))):
            return BUSY  # its worker is alive: that delivery may still be in flight
        verdict = _text(self._run(_scripts.CLAIM, call_id, holder, int(lease_ms), self.ttl_ms, other, *carried))
        return BUSY if verdict.startswith(BUSY) else str(verdict)  # taken over from a dead worker, or moved on

    def heartbeat(self, process: str, ttl_ms: int) -> None:
        self.client.set(self._alive_key(process), 1, px=int(ttl_ms))

    def _alive_key(self, process: str) -> str:
        return f"{self.namespace}:worker:{process}:alive"

    def wait(self, call_id: str, delay_ms: int, attempts: Sequence[Attempt], delivery: str = "") -> None:
        wire = int(reached_wire(attempts))
        self._run(_scripts.WAIT, call_id, int(delay_ms), self.ttl_ms, wire, delivery, *_json(attempts))

    def finish(
        self,
        call_id: str,
        outcome: Any,
        ttl_ms: int,
        attempts: Sequence[Attempt] = (),
        delivery: str = "",
        replays: int = 0,
    ) -> bool:
        encoded = self.encoder.encode(outcome)
        wire = int(bool(attempts) and reached_wire(attempts))
        args = (encoded, _final_state(outcome), ttl_ms, wire, delivery, int(replays), *_json(attempts))
        return bool(self._run(_scripts.FINISH, call_id, *args))

    def cancel(self, call_id: str) -> bool:
        outcome = self.encoder.encode(wrap_exception(CallCancelled(f"call {call_id} was cancelled")))
        return bool(self._run(_scripts.CANCEL, call_id, outcome, self.ttl_ms))

    def state(self, call_id: str) -> str | None:
        return _text(self.client.hget(self.keys(call_id)[0], "state"))

    def attempts(self, call_id: str) -> list[Attempt]:
        return [json.loads(entry) for entry in self.client.lrange(self.keys(call_id)[2], 0, -1)]

    def forget(self, call_id: str, replays: int = 0) -> None:
        self._run(_scripts.FORGET, call_id, self.ttl_ms, int(replays))


class MemoryCallStates:
    """The same record in one process, for the StubBroker (:mod:`dispatch.testing`); outcomes in ``results``."""

    def __init__(self, results: StubBackend, ttl_ms: int, namespace: str = "dispatch") -> None:
        self.results = results
        self.ttl_ms = ttl_ms
        self.namespace = namespace
        self._records: dict[str, dict[str, Any]] = {}
        self._attempts: dict[str, list[Attempt]] = {}
        self._lock = threading.Lock()

    def _outcome_stored(self, call_id: str) -> bool:
        return stub_outcome_stored(self.results, record_keys(self.namespace, call_id)[1])

    def _append(self, call_id: str, record: dict[str, Any], attempts: Sequence[Attempt], delivery: str) -> None:
        if not attempts or (delivery and record.get("delivery") == delivery):
            return
        if delivery:
            record["delivery"] = delivery
        kept = self._attempts.setdefault(call_id, [])
        for attempt in attempts:
            record["attempts_total"] = record.get("attempts_total", 0) + 1
            kept.append({"attempt": record["attempts_total"], **_public(attempt)})
        del kept[: -_scripts.MAX_ATTEMPTS_KEPT]

    def schedule(self, call_id: str, delay_ms: int = 0) -> None:
        with self._lock:
            due = _now_ms() + delay_ms
            record = self._records.get(call_id)
            if record is None and not self._outcome_stored(call_id):
                self._records[call_id] = {"state": SCHEDULED, "wire": False, "due_at_ms": due}
            elif record is not None:
                record["due_at_ms"] = max(record.get("due_at_ms", 0), due)

    def claim(self, call_id: str, holder: str, lease_ms: int, unrecorded: UnrecordedWait | None = None) -> str:
        with self._lock:
            record = self._records.setdefault(call_id, {"wire": False})
            if record.get("state") == CANCELLED:
                return CANCELLED
            if self._outcome_stored(call_id):
                return DONE
            previous = unrecorded["delivery"] if unrecorded else ""
            if (
                record.get("state") == STARTED
                and record.get("holder") not in (holder, previous)
                and record.get("lease_until_ms", 0) > _now_ms()
            ):
                return BUSY
            if unrecorded:
                record["wire"] = record["wire"] or unrecorded["wire"]
                self._append(call_id, record, unrecorded["attempts"], unrecorded["delivery"])
            record.update(state=STARTED, holder=holder, lease_until_ms=_now_ms() + lease_ms)
            return CLAIMED

    def heartbeat(self, process: str, ttl_ms: int) -> None:
        """Nothing: one process, whose deliveries are all alive while it is."""

    def wait(self, call_id: str, delay_ms: int, attempts: Sequence[Attempt], delivery: str = "") -> None:
        with self._lock:
            record = self._records.setdefault(call_id, {"wire": False})
            if not self._outcome_stored(call_id):
                record.update(state=WAITING, due_at_ms=_now_ms() + delay_ms)
                _release(record)
            record["wire"] = record["wire"] or reached_wire(attempts)
            self._append(call_id, record, attempts, delivery)

    def finish(
        self,
        call_id: str,
        outcome: Any,
        ttl_ms: int,
        attempts: Sequence[Attempt] = (),
        delivery: str = "",
        replays: int = 0,
    ) -> bool:
        with self._lock:
            record = self._records.setdefault(call_id, {"wire": False})
            if self._outcome_stored(call_id):
                return bool(delivery) and record.get("delivery") == delivery
            if record.get("replays", 0) > replays:
                return False
            record["wire"] = record["wire"] or (bool(attempts) and reached_wire(attempts))
            self._append(call_id, record, attempts, delivery)
            record["delivery"] = delivery
            stub_store_outcome(self.results, record_keys(self.namespace, call_id)[1], outcome, ttl_ms)
            record["state"] = _final_state(outcome)
            _release(record)
            return True

    def cancel(self, call_id: str) -> bool:
        with self._lock:
            record = self._records.setdefault(call_id, {"wire": False})
            if record.get("state") == CANCELLED:
                return True
            if self._outcome_stored(call_id) or record.get("state") == STARTED or record["wire"]:
                return False
            record["state"] = CANCELLED
            outcome = wrap_exception(CallCancelled(f"call {call_id} was cancelled"))
            stub_store_outcome(self.results, record_keys(self.namespace, call_id)[1], outcome, self.ttl_ms)
            return True

    def state(self, call_id: str) -> str | None:
        state: str | None = self._records.get(call_id, {}).get("state")
        return state

    def attempts(self, call_id: str) -> list[Attempt]:
        with self._lock:
            return list(self._attempts.get(call_id, []))

    def forget(self, call_id: str, replays: int = 0) -> None:
        with self._lock:
            self.results.results.pop(record_keys(self.namespace, call_id)[1], None)
            record = self._records.get(call_id)
            if record is not None:
                for name in ("state", "holder", "lease_until_ms", "due_at_ms", "delivery"):
                    record.pop(name, None)
                record["replays"] = max(record.get("replays", 0), replays)


def holder_process(holder: str) -> str:
    """The worker process (``host:pid``) of a claim's ``holder`` (``<process>/<thread>/<delivery token>``)."""
    return holder.partition("/")[0]


def _release(record: dict[str, Any]) -> None:
    record.pop("holder", None)
    record.pop("lease_until_ms", None)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # Redis names scripts by their SHA1


def _json(attempts: Sequence[Attempt]) -> list[str]:
    return [json.dumps(_public(attempt), separators=(",", ":")) for attempt in attempts]


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
