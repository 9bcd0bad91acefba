"""An outcome in hand is stored, never re-earned: the results middleware a worker can trust.

dramatiq acks a message after its ``after_process_message`` hooks ran,
whether they worked or not: a hook that raises is logged as CRITICAL and
the message is acked all the same.  Storing the outcome can fail for
reasons outside the call (Redis down or hung), and with stock dramatiq
that loses the call silently.  :class:`DurableResults` replaces dramatiq's
``Results``: it stores an outcome -- with the delivery's attempts -- through
the call record's FINISH script (:mod:`dispatch.results.states`), with
bounded, retried writes (``DISPATCH_RESULTS_WRITE_TIMEOUT`` per write,
retried for ``DISPATCH_RESULTS_STORE_PATIENCE``).

When the store stays down, the outcome **travels**: a copy of the message
goes back on the queue through the delay queue carrying the encoded
outcome and its attempts (``options["outcome"]``), with a doubling delay,
before this delivery is acked.  That copy's next delivery only stores the
outcome (before flow control and the claim) and is acked: the endpoint is
not called again for an answer the worker already had -- with a signed
``Receiver`` a second call would be a replay, answered 409.  Only if even
that re-enqueue fails is the message dead-lettered (kept in ``.XQ``,
replayable).  A redelivery after a lost ack finds the outcome stored at its
claim and is acked too (:class:`dispatch.middleware.SkipCancelled`).

A failed call's outcome is stored just before its message is dead-lettered
(dramatiq's ``before_nack``, in the consumer thread: dramatiq nacks right
after it, whatever the hook does), so a worker killed between the two leaves
a redelivery that finds the failure stored, not a dead letter without an
outcome.  A store that fails within the patience sends the failure on in a
travelling copy, as for a success; the dead letter is kept all the same (the
nack cannot be withheld), and a replay of it is not answered by that copy's
late outcome: FINISH refuses an outcome from before the record's last replay
(``options["replays"]``, see :meth:`CallResultsBackend.forget`).  The
scheduled deliveries' twin is :class:`dispatch.middleware.DurableRetries`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import tenacity
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage
from dramatiq.results import Results
from dramatiq.results.result import wrap_exception, wrap_result

from .. import attempts as delivery_attempts
from ..call import is_call
from ..errors import DispatchError
from ..redaction import get_logger, redact
from ..upstream import failure_of, result_options
from .backends import ResultsBackend
from .states import Attempt

logger = get_logger("dispatch.durability")

#: The longest wait before an outcome that could not be stored is tried again.
_REDO_MAX_SECONDS = 3600

#: Why a delivery is skipped when its outcome was stored instead of performing it (``options["postponed"]``).
STORED = "stored"


class DurableResults(Results):
    """dramatiq's Results middleware storing through the call record, with retried writes; no outcome thrown away."""

    def __init__(self, *, backend: ResultsBackend, patience: float, **kwargs: Any) -> None:
        super().__init__(backend=backend, **kwargs)
        self.states = backend.states
        self.patience = patience
        self.retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(patience),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2),
            before_sleep=tenacity.before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        # From the worker thread to the consumer's before_nack: a failure's attempts and its delivery token.
        self._failed_attempts: dict[str, tuple[list[Attempt], str]] = {}

    def _durably(self, write: Callable[..., Any], *args: Any) -> Any:
        """``write(*args)``, retried for ``patience`` seconds if it fails.

        The first try is made outside tenacity: setting up a retry loop for
        every outcome cost ~25 µs of a call's path, for the rare failure.
        """
        try:
            return write(*args)
        except Exception:
            return self.retrying(write, *args)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        travelling = message.options.get("outcome")
        if travelling is None:
            return
        _, ttl = result_options(self, broker, message)
        outcome, attempts = travelling["value"], travelling.get("attempts", [])
        try:
            self.states.finish(message.message_id, outcome, ttl, attempts, replays=_replays(message))
        except Exception as error:
            self._store_later(broker, message, outcome, attempts, error)
        else:
            logger.info("call %s: its outcome is stored now; not performed again", message.message_id)
            message.options["postponed"] = STORED
        raise SkipMessage(f"call {message.message_id} carries its outcome: not performed again")

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        store_results, ttl = result_options(self, broker, message)
        if not store_results:
            return super().after_process_message(broker, message, result=result, exception=exception)
        if isinstance(exception, dramatiq.Retry):
            return  # a scheduled redelivery: DurableRetries writes the record's WAIT with this delivery's attempts
        attempts = delivery_attempts.take_delivery_attempts() if is_call(broker, message) else []
        delivery = delivery_attempts.delivery() if is_call(broker, message) else ""
        if exception is not None:
            if attempts:  # a call's failure ends dead-lettered; its outcome is stored then, with these
                self._failed_attempts[message.message_id] = (attempts, delivery)
            return
        outcome = wrap_result(result)
        try:
            self._durably(self.states.finish, message.message_id, outcome, ttl, attempts, delivery, _replays(message))
        except Exception as error:
            self._store_later(broker, message, outcome, attempts, error)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        # Cancelled: cancel() stored its outcome; postponed (claim, flow control) or stored: none to store now.
        if not (message.options.get("cancelled") or message.options.get("postponed")):
            super().after_skip_message(broker, message)

    def before_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        attempts, delivery = self._failed_attempts.pop(message.message_id, ([], ""))
        store_results, ttl = result_options(self, broker, message)
        if not (store_results and message.failed):
            return
        outcome = _stored_failure(failure_of(message))
        try:
            self._durably(self.states.finish, message.message_id, outcome, ttl, attempts, delivery, _replays(message))
        except Exception as error:
            self._store_later(broker, message, outcome, attempts, error)

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        """Nothing: the failure was stored before the nack (dramatiq's Results stores it here)."""

    def _store_later(
        self, broker: dramatiq.Broker, message: MessageProxy, outcome: Any, attempts: list[Attempt], error: Exception
    ) -> None:
        """Send the outcome on in a copy of the message, stored by its next delivery; dead-letter if that fails."""
        tries = message.options.get("unstored_outcomes", 0)
        delay = min(max(self.patience, 1) * 2**tries, _REDO_MAX_SECONDS)  # as long again as it tried, doubling
        travelling = {"outcome": {"value": outcome, "attempts": attempts}, "unstored_outcomes": tries + 1}
        try:
            broker.enqueue(message.copy(options=travelling), delay=int(delay * 1000))
        except Exception as enqueue_error:
            logger.error(
                "call %s: its outcome could not be stored (%s) nor queued to be stored later (%s); dead-lettering it",
                message.message_id,
                error,
                enqueue_error,
            )
            message.fail()
            message.stuff_exception(DispatchError(f"the outcome could not be stored: {error}"))
            return
        message.options["postponed"] = STORED
        logger.warning(
            "call %s: its outcome could not be stored (%s); it travels with the message and is stored in %gs "
            "(the call is not performed again)",
            message.message_id,
            error,
            delay,
        )


def _replays(message: MessageProxy) -> int:
    """How many times this call was replayed from the dead letters: an outcome from before the last is not stored."""
    return int(message.options.get("replays", 0))


def _stored_failure(exception: BaseException) -> Any:
    """The failure as the results store keeps it, its message redacted: an endpoint may echo a secret back."""
    outcome = wrap_exception(exception)
    outcome["exn"]["msg"] = redact(outcome["exn"]["msg"])
    return outcome
