"""A call's time limit is its own worst case, not dramatiq's ten minutes for every message.

dramatiq's ``TimeLimit`` stops any actor after 10 minutes: a call with a
short timeout holds a thread long after it is known to be stuck, and a
call with many long attempts is cut while still in order.  Here each
call's limit is what its own options allow
(:attr:`dispatch.options.CallOptions.worst_case`: every attempt its whole
timeout, every wait between them its longest) plus
:data:`MARGIN_SECONDS`.  Its concurrency lease (:mod:`dispatch.flow`)
lasts a little longer still, so a live call never loses its slot.

A limit that still fires raises :class:`CallTimeLimitExceeded` in the
worker thread: a transport failure like any other, so the call goes to its
retry schedule (``dramatiq.Retry``), ends as ``TransportError`` once the
schedule is used up, and counts as a failure for its host's breaker.  It
is an ``Exception`` (dramatiq's is not), so the actor's own handling of
failed deliveries sees it; the limit is armed last and disarmed first, so
it never fires inside another middleware's hook.

Other messages keep dramatiq's rule: their ``time_limit`` option (ms), the
actor's, or 10 minutes.  The watchdog is a thread of each worker process,
started with its first message.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.threading import raise_thread_exception

from ..call import Call, is_call
from ..options import TIME_LIMIT_MARGIN_SECONDS, worst_case
from ..redaction import get_logger
from ..retries import DeliveryFailed
from ..settings import Settings

logger = get_logger("dispatch.time_limit")

#: What a call's limit adds to its worst case (the answer's parsing, the hooks around it).
MARGIN_SECONDS = TIME_LIMIT_MARGIN_SECONDS

#: The limit of a message that is not a call and names none, as dramatiq's.
DEFAULT_LIMIT_SECONDS = 600.0


class CallTimeLimitExceeded(DeliveryFailed):
    """A delivery ran past its time limit; raised in its worker thread, which takes no arguments."""

    def __init__(self, message: str = "the delivery ran past its time limit (its attempts' worst case)") -> None:
        super().__init__(message)


class CallTimeLimit(dramatiq.Middleware):
    """Stops a delivery that runs past its limit: a call's own worst case, or dramatiq's rule for other messages."""

    def __init__(self, settings: Settings, margin: float = MARGIN_SECONDS, interval: float = 0.2) -> None:
        self.settings = settings
        self.margin = margin
        self.interval = interval
        self._deadlines: dict[int, tuple[float, str, float]] = {}  # thread -> (monotonic deadline, message id, limit)
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None

    @property
    def actor_options(self) -> set[str]:
        return {"time_limit"}

    def limit(self, broker: dramatiq.Broker, message: MessageProxy) -> float:
        """Seconds ``message`` may run: its ``time_limit`` option (ms) if it has one, else as described above."""
        named = message.options.get("time_limit")
        if named:
            return float(named) / 1000
        if is_call(broker, message):
            return worst_case(Call.from_message(message).options, self.settings) + self.margin
        actor = broker.get_actor(message.actor_name)
        return float(actor.options.get("time_limit", DEFAULT_LIMIT_SECONDS * 1000)) / 1000

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        limit = self.limit(broker, message)
        with self._lock:
            self._deadlines[threading.get_ident()] = (time.monotonic() + limit, message.message_id, limit)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="dispatch-time-limit", daemon=True)
                self._watchdog.start()

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        with self._lock:
            self._deadlines.pop(threading.get_ident(), None)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        with self._lock:
            self._deadlines.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            with self._lock:  # raised under the lock: a thread that has disarmed its limit is never interrupted
                for thread, (deadline, message_id, limit) in list(self._deadlines.items()):
                    if now >= deadline:
                        del self._deadlines[thread]
                        logger.warning("call %s ran past its time limit of %gs; stopping it", message_id, limit)
                        raise_thread_exception(thread, CallTimeLimitExceeded)
