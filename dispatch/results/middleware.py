"""No ack without a durable outcome: the results middleware a worker can trust.

dramatiq acks a message after its ``after_process_message`` hooks ran,
whether they worked or not: a hook that raises is logged as CRITICAL and
the message is acked all the same.  Storing the outcome can fail for
reasons outside the call (Redis down or hung), and with stock dramatiq
that loses the call silently.  :class:`DurableResults` replaces dramatiq's
``Results``: it stores an outcome with bounded, retried writes
(``DISPATCH_RESULTS_WRITE_TIMEOUT`` per write, retried for
``DISPATCH_RESULTS_STORE_PATIENCE``).  When the store stays down the call
is **performed again later**: a copy goes back on the queue through the
delay queue (same message id, so the endpoint sees the same
``Idempotency-Key``) before this delivery is acked.  Performing again was
chosen over dead-lettering because the caller is waiting for an outcome:
a dead letter would need an operator, a later delivery delivers one by
itself once Redis is back.  Only if even that re-enqueue fails is the
message dead-lettered (kept in ``.XQ``, replayable).  Its twin for
scheduled deliveries is :class:`dispatch.middleware.DurableRetries`.

A failed call's outcome is stored after its message was dead-lettered
(dramatiq's ``after_nack``): there the message is already kept, so a store
that still fails is logged, and the dead letter is what remains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import tenacity
from dramatiq.broker import MessageProxy
from dramatiq.results import Results

from ..errors import DispatchError
from ..upstream import result_options

logger = logging.getLogger("dispatch.durability")

#: The longest wait before a call whose outcome could not be stored is performed again.
_REDO_MAX_SECONDS = 3600


class DurableResults(Results):
    """dramatiq's Results middleware with retried writes and no ack when the outcome was not stored."""

    def __init__(self, *, patience: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.patience = patience
        self.retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(patience),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2),
            before_sleep=tenacity.before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )

    def _durably(self, write: Callable[..., Any], *args: Any) -> Any:
        """``write(*args)``, retried for ``patience`` seconds if it fails.

        The first try is made outside tenacity: setting up a retry loop for
        every outcome cost ~25 µs of a call's path, for the rare failure.
        """
        try:
            return write(*args)
        except Exception:
            return self.retrying(write, *args)

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        store_results, result_ttl = result_options(self, broker, message)
        if not (store_results and exception is None):
            return super().after_process_message(broker, message, result=result, exception=exception)
        try:
            self._durably(self.backend.store_result, message, result, result_ttl)
        except Exception as error:
            self._perform_again_later(broker, message, error)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        # A cancelled call's outcome was stored by cancel(); a postponed one (dispatch.flow) has none yet.
        if not (message.options.get("cancelled") or message.options.get("postponed")):
            super().after_skip_message(broker, message)

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        try:
            self._durably(super().after_nack, broker, message)
        except Exception as error:
            logger.error(
                "call %s failed and is kept in the dead-letter queue, but its outcome could not be stored: %s",
                message.message_id,
                error,
            )

    def _perform_again_later(self, broker: dramatiq.Broker, message: MessageProxy, error: Exception) -> None:
        redone = message.options.get("unstored_outcomes", 0)
        delay = min(max(self.patience, 1) * 2**redone, _REDO_MAX_SECONDS)  # as long again as it tried, doubling
        message.options["unstored_outcomes"] = redone + 1
        try:
            broker.enqueue(message.copy(), delay=int(delay * 1000))
        except Exception as enqueue_error:
            logger.error(
                "call %s: its outcome could not be stored (%s) nor the call queued again (%s); dead-lettering it",
                message.message_id,
                error,
                enqueue_error,
            )
            message.fail()
            message.stuff_exception(DispatchError(f"the outcome could not be stored: {error}"))
            return
        logger.warning(
            "call %s: its outcome could not be stored (%s); it will be performed again in %gs with the same "
            "Idempotency-Key",
            message.message_id,
            error,
            delay,
        )
