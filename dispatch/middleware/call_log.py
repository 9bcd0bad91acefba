"""The call log: one INFO line per finished call, on the ``dispatch.calls`` logger.

Operators grep worker logs by message id; dramatiq's own lines name the
actor but not the outcome, so this is the line that says what happened.
The URL is written with its password masked, and the logger redacts the
whole line (:mod:`dispatch.redaction`).  At each worker process's boot the
middleware puts the redacting filter on dramatiq's loggers and the process's
log handlers too: dramatiq's own lines name a failed message's arguments,
URL and all.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy

from ..call import Call, is_call
from ..redaction import get_logger, install_log_redaction, redact_url

call_log = get_logger("dispatch.calls")


class CallLog(dramatiq.Middleware):
    """One INFO line per finished call: its id, method and URL, and the outcome; every log line redacted."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        install_log_redaction()

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if not is_call(broker, message):
            return
        call = Call.from_message(message)
        if exception is None:
            call_log.info("call %s %s %s processed: %r", message.message_id, call.method, redact_url(call.url), result)
        elif isinstance(exception, dramatiq.Retry):
            call_log.info(
                "call %s %s %s scheduled for delivery in %gs: %s",
                message.message_id,
                call.method,
                redact_url(call.url),
                (exception.delay or 0) / 1000,
                exception,
            )
        else:
            call_log.info(
                "call %s %s %s failed: %s: %s",
                message.message_id,
                call.method,
                redact_url(call.url),
                type(exception).__name__,
                exception,
            )

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if is_call(broker, message) and message.options.get("cancelled"):  # not postponed (dispatch.flow)
            call = Call.from_message(message)
            call_log.info("call %s %s %s cancelled: not sent", message.message_id, call.method, redact_url(call.url))
