"""Scheduled deliveries a worker can trust: dramatiq's ``Retries``, recording the wait and never acking a lost one.

A delivery that ends with a scheduled redelivery (the actor's ``dramatiq.Retry``)
first moves the call's record to ``waiting`` with this delivery's attempts
(the record's WAIT script, one round trip): from then on the record lives
until the next delivery is due plus ``DISPATCH_RESULT_TTL``, however long
the delay, so ``cancel()`` keeps answering False for a call that reached the
wire.  A WAIT that cannot be written is tried again for
``DISPATCH_RESULTS_STORE_PATIENCE``; if it still fails, the wait travels in
the re-enqueued message (``options["unrecorded_wait"]``: the wire flag and
the attempts) and the next delivery's claim writes it.  Until then the
record lives what the claim gave it (the lease plus ``DISPATCH_RESULT_TTL``):
only a Redis unwritable for the whole patience *and* a delay longer than that
can let it expire before the next delivery.  Then the message is re-enqueued.  Re-enqueueing can fail (RabbitMQ
refusing the publish), and with stock dramatiq the call would be acked and
lost; here it is dead-lettered instead (kept in ``.XQ``, replayable).  Its
twin for outcomes is :class:`dispatch.results.DurableResults`.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Retries

from .. import attempts
from ..call import is_call
from ..errors import TransportError
from ..redaction import get_logger
from ..redis_connect import patiently
from ..results.states import UNRECORDED_WAIT, CallStates, UnrecordedWait, reached_wire

logger = get_logger("dispatch.durability")


class DurableRetries(Retries):
    """dramatiq's Retries, recording each scheduled wait on the call's record, and dead-lettering what it cannot
    re-enqueue."""

    def __init__(self, states: CallStates, patience: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.states = states
        self.patience = patience

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if isinstance(exception, dramatiq.Retry) and exception.delay is not None and is_call(broker, message):
            self._record_wait(message, exception.delay)
        try:
            super().after_process_message(broker, message, result=result, exception=exception)
        except Exception as error:
            logger.error(
                "call %s: its next delivery could not be scheduled (%s); dead-lettering it", message.message_id, error
            )
            message.fail()
            message.stuff_exception(
                TransportError(f"{exception}; its next scheduled delivery could not be queued: {error}")
            )

    def _record_wait(self, message: MessageProxy, delay_ms: int) -> None:
        taken, delivery = attempts.take_delivery_attempts(), attempts.delivery()
        try:
            patiently(lambda: self.states.wait(message.message_id, delay_ms, taken, delivery), self.patience)
        except Exception as error:
            unrecorded: UnrecordedWait = {"delivery": delivery, "wire": reached_wire(taken), "attempts": taken}
            message.options[UNRECORDED_WAIT] = unrecorded  # re-enqueued with the message: its next claim writes it
            logger.warning(
                "call %s: its wait for the next delivery could not be recorded (%s); the next delivery records it",
                message.message_id,
                error,
            )
