"""The claim: each call is recorded as started just before it is performed, or not performed at all.

The record's CLAIM script (:mod:`dispatch.results.states`) answers, in one round trip:

* ``claimed``   -- perform it; the worker holds a lease on the record for the delivery's worst case;
* ``cancelled`` -- skip it (ack, never send): ``cancel()`` already answered True;
* ``done``      -- its outcome is stored already (a redelivery after a lost ack): ack it, do not call again;
* ``busy``      -- another delivery of the call holds an unexpired lease and its worker process is alive
  (a redelivery while the first is still in flight): it waits as a delayed message, like a claim that
  cannot be written, and is claimed again then -- never performed twice at once.

Each worker process says it is alive every :data:`HEARTBEAT_SECONDS` (a key in the results store that
expires after :data:`HEARTBEAT_TTL_SECONDS`), so the redelivery of a call whose worker was killed
takes its lease over within seconds, instead of waiting out the delivery's worst case.

**Fail closed.** When the claim cannot be written (Redis down, stalled,
paused for writes), the call is not sent "to be safe": ``cancel()`` may
have promised it never would be.  It waits as a delayed message instead
(``options["claim_waits"]``, a jittered delay doubling up to a minute) and
is claimed again then.  If even that re-enqueue fails, the delivery fails
as a ``DispatchError`` and the message is dead-lettered (kept, replayable)
-- never acked unsent and unrecorded.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from typing import NoReturn

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage

from .. import attempts
from ..call import Call, is_call
from ..errors import DispatchError
from ..options import worst_case
from ..redaction import get_logger
from ..results.states import BUSY, CANCELLED, DONE, UNRECORDED_WAIT, CallStates
from ..settings import Settings
from .call_log import call_log

#: Seconds a lease outlasts the delivery's worst case.
LEASE_MARGIN = 60
#: The longest wait before a call whose claim could not be written is claimed again, in seconds.
CLAIM_WAIT_MAX = 60

#: How often a worker process says it is alive, and how long that lasts, in seconds.
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_SECONDS = 10.0

logger = get_logger("dispatch.durability")


class SkipCancelled(dramatiq.Middleware):
    """Claims each call just before it is performed; skips a cancelled one, acks a done one, postpones on error."""

    def __init__(self, states: CallStates, settings: Settings) -> None:
        self.states = states
        self.settings = settings
        self._beating: int | None = None  # the pid whose heartbeat runs (a forked child starts its own)
        self._lock = threading.Lock()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if not is_call(broker, message):
            return
        process = f"{socket.gethostname()}:{os.getpid()}"
        holder = f"{process}/{threading.current_thread().name}/{uuid.uuid4().hex[:12]}"  # this delivery, no other
        attempts.reset(holder)  # this delivery's attempts, for the record's WAIT or FINISH (appended once)
        try:
            self._keep_alive(process)
            verdict = self.states.claim(
                message.message_id, holder, self._lease_ms(message), message.options.get(UNRECORDED_WAIT)
            )
        except Exception as error:
            self._claim_later(broker, message, f"cannot record that it starts ({error})", "claim")
        if verdict == BUSY:
            self._claim_later(broker, message, "another delivery of it is in flight", "busy")
        message.options.pop(UNRECORDED_WAIT, None)  # written: the copies re-enqueued from here do not carry it
        if verdict == CANCELLED:
            message.options["cancelled"] = True
            raise SkipMessage(f"call {message.message_id} was cancelled")
        if verdict == DONE:
            call_log.info("call %s: its outcome is stored already; acked, not sent again", message.message_id)
            message.options["postponed"] = "stored"
            raise SkipMessage(f"call {message.message_id} has its outcome")

    def _keep_alive(self, process: str) -> None:
        """Say this process is alive before its first claim, then every HEARTBEAT_SECONDS from a thread."""
        if self._beating == os.getpid():
            return
        with self._lock:
            if self._beating == os.getpid():
                return
            self.states.heartbeat(process, int(HEARTBEAT_TTL_SECONDS * 1000))
            self._beating = os.getpid()
            threading.Thread(target=self._beat, args=(process,), name="dispatch-heartbeat", daemon=True).start()

    def _beat(self, process: str) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                self.states.heartbeat(process, int(HEARTBEAT_TTL_SECONDS * 1000))
            except Exception as error:  # Redis down: claims fail too; a lease may be taken over meanwhile
                logger.warning("cannot say this worker is alive: %s", error)

    def _lease_ms(self, message: MessageProxy) -> int:
        """How long the claim holds the record: the delivery's worst case, plus a margin."""
        return int((worst_case(Call.from_message(message).options, self.settings) + LEASE_MARGIN) * 1000)

    def _claim_later(self, broker: dramatiq.Broker, message: MessageProxy, why: str, label: str) -> NoReturn:
        waits = message.options.get("claim_waits", 0) + 1
        delay_ms = int(min(2**waits, CLAIM_WAIT_MAX) * 1000 * random.uniform(1.0, 1.5))  # jitter: not all at once
        try:
            broker.enqueue(message.copy(options={"claim_waits": waits}), delay=delay_ms)
        except Exception as enqueue_error:
            raise DispatchError(f"{why}, and it cannot be queued again ({enqueue_error}); it was not sent") from None
        call_log.warning("call %s: %s; not sent, claimed again in %.1fs", message.message_id, why, delay_ms / 1000)
        message.options["postponed"] = label  # no outcome to store, no skip warning; a metrics label
        raise SkipMessage(f"call {message.message_id} waits for its claim")
