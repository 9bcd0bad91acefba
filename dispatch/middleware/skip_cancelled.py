"""Cancelled calls skipped: each call is claimed just before it is performed, and a cancelled one never sent."""

from __future__ import annotations

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage

from ..call import is_call
from ..results.states import CallStates
from .call_log import call_log


class SkipCancelled(dramatiq.Middleware):
    """Claims each call just before it is performed, and skips (acks, never sends) a cancelled one.

    If the state store cannot be asked, the call is performed: a worker that
    stopped performing calls whenever Redis blinks would be worse than the
    rare cancelled call that is sent during an outage (and whose outcome
    could not be stored either).
    """

    def __init__(self, states: CallStates) -> None:
        self.states = states

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
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
