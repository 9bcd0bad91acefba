"""The callback protocol's answer: what an endpoint's 2xx body means.

``{"status": "success", "retval": ...}`` is the call's result; ``failure``
is :class:`RemoteExecuteError` with the endpoint's reason; anything else is
:class:`UnknownStatusError` or :class:`InvalidResponseError`.  A non-2xx
answer is a ``BadStatusError`` whatever its body, but a ``failure`` body's
reason goes into its message (:func:`refusal_reason`): a receiver refusing
an unsigned call says why.  This is what
:meth:`HttpDispatch.parse` does unless a dispatcher overrides it.  What a
call may carry is checked by :mod:`dispatch.validation`, its URL by
:mod:`dispatch.urlsafety`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import InvalidResponseError, RemoteExecuteError, UnknownStatusError
from .redaction import redact


def parse_answer(body: bytes) -> Any:
    """The ``retval`` of a 2xx answer, or the error the answer means."""
    if not body.strip():
        raise InvalidResponseError("empty response body")
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to decode
        raise InvalidResponseError(f"response is not JSON: {_preview(body)}") from None
    if not isinstance(answer, dict):
        raise InvalidResponseError(f"response is not a JSON object: {_preview(body)}")

    status = answer.get("status")
    if status == "success":
        return answer.get("retval")
    if status == "failure":
        raise RemoteExecuteError(_text(answer.get("reason", "")))
    raise UnknownStatusError(f"unknown status {_text(status, repr)}")


#: The longest reason of a non-2xx ``failure`` answer carried into a BadStatusError: why, not a page.
MAX_REFUSAL_REASON = 200


def refusal_reason(body: bytes) -> str | None:
    """The reason of a non-2xx body that is a protocol ``failure``, on one line, redacted, at most
    :data:`MAX_REFUSAL_REASON` characters; None for any other body (HTML, empty, another status)."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(answer, dict) or answer.get("status") != "failure":
        return None
    reason = " ".join(redact(_text(answer.get("reason", ""))).split())  # redacted whole: a cut secret would show
    if len(reason) > MAX_REFUSAL_REASON:
        reason = reason[: MAX_REFUSAL_REASON - 3] + "..."
    return reason or None


def _text(value: Any, render: Callable[[Any], str] = str) -> str:
    """``render(value)``, or a placeholder when the value is nested too deeply to render."""
    try:
        return render(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


def _preview(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(body) > limit else ""))
