"""Scheduled deliveries a worker can trust: dramatiq's ``Retries``, dead-lettering what it cannot re-enqueue.

dramatiq acks a message after its ``after_process_message`` hooks ran,
whether they worked or not.  Re-enqueueing a scheduled delivery can fail
(RabbitMQ refusing the publish), and with stock dramatiq the call would be
acked and lost; here it is dead-lettered instead (kept in ``.XQ``,
replayable).  Its twin for outcomes is :class:`dispatch.results.DurableResults`.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Retries

from ..errors import TransportError

logger = logging.getLogger("dispatch.durability")


class DurableRetries(Retries):
    """dramatiq's Retries, dead-lettering a message whose scheduled delivery cannot be re-enqueued."""

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
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
