"""What goes into a delivery and what comes out of it: the call as the transport sees it, and the answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..validation import Params


@dataclasses.dataclass(frozen=True)
class Request:
    """Everything one call needs to be attempted, however many times."""

    url: str
    method: str
    params: Params
    timeout: float
    max_response_bytes: int
    call_id: str | None = None  # the message id: Idempotency-Key and webhook-id
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the call's own, checked by the caller
    body_format: str = "form"  # how params travel in a method with a body: "form" or "json"


@dataclasses.dataclass(frozen=True)
class Answer:
    """The endpoint's final answer to one call: what :meth:`HttpDispatch.parse` reads."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    body: bytes
