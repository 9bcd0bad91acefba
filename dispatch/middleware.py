"""Worker middleware that belongs to dispatch: the call log.

Features that act around every message are dramatiq middleware hooks, not
branches in the actor: the actor performs one call, the hooks observe it.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from .call import Call, is_call

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
