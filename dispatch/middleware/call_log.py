"""Worker middleware that belongs to dispatch: the call log, cancelled calls skipped, pools sized.

Features that act around every message are dramatiq middleware hooks, not
branches in the actor: the actor performs one call, the hooks observe it.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.middleware import SkipMessage

from .call import Call, is_call
from .states import MemoryCallStates, RedisCallStates

#: Redis connections a worker process keeps beyond one per worker thread (consumers, heartbeats, cancels).
REDIS_HEADROOM = 16

call_log = logging.getLogger("dispatch.calls")


class CallLog(dramatiq.Middleware):
    """One INFO line per finished call: its id, method and URL, and the outcome.

    Operators grep worker logs by message id; dramatiq's own lines name the
    actor but not the outcome, so this is the line that says what happened.
    """

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.Message, *, result: Any = None, exception: Any = None
    ) -> None:
        if not is_call(broker, message):
            return
        call = Call.from_message(message)
        if exception is None:
            call_log.info("call %s %s %s processed: %r", message.message_id, call.method, call.url, result)
        elif isinstance(exception, dramatiq.Retry):
            call_log.info(
                "call %s %s %s scheduled for delivery in %gs: %s",
                message.message_id,
                call.method,
                call.url,
                exception.delay / 1000,
                exception,
            )
        else:
            call_log.info(
                "call %s %s %s failed: %s: %s",
                message.message_id,
                call.method,
                call.url,
                type(exception).__name__,
                exception,
            )

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        if is_call(broker, message) and message.options.get("cancelled"):  # not postponed (dispatch.flow)
            call = Call.from_message(message)
            call_log.info("call %s %s %s cancelled: not sent", message.message_id, call.method, call.url)


class SkipCancelled(dramatiq.Middleware):
    """Claims each call just before it is performed, and skips (acks, never sends) a cancelled one.

    If the state store cannot be asked, the call is performed: a worker that
    stopped performing calls whenever Redis blinks would be worse than the
    rare cancelled call that is sent during an outage (and whose outcome
    could not be stored either).
    """

    def __init__(self, states: RedisCallStates | MemoryCallStates) -> None:
        self.states = states

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        if not is_call(broker, message):
            return
        try:
            started = self.states.claim(message.message_id)
        except Exception as error:
            call_log.warning(
                "call %s: cannot check whether it was cancelled (%s); performing it", message.message_id, error
            )
            return
        if not started:
            message.options["cancelled"] = True
            raise SkipMessage(f"call {message.message_id} was cancelled")


class PoolSizing(dramatiq.Middleware):
    """Sizes the connection pools to the worker's thread count, which is known only once the worker boots.

    Every worker thread holds one Redis connection while it stores an outcome
    and one HTTP connection per host while it calls.  redis-py 8 caps a pool
    at 100 connections and then *raises* ("Too many connections"), and
    urllib3 keeps 32 per host and closes the rest after use: a worker with
    128 threads lost outcomes to the first and churned connections with the
    second.  The Redis pools grow here; the HTTP transport, built on first
    use after boot, reads ``broker.worker_threads``.
    """

    def __init__(self, redis_clients: list) -> None:
        self.redis_clients = redis_clients

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        broker.worker_threads = worker.worker_threads
        for client in self.redis_clients:
            pool = client.connection_pool
            pool.max_connections = max(pool.max_connections, worker.worker_threads + REDIS_HEADROOM)
