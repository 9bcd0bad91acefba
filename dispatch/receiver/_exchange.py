"""What passes between a framework adapter and the core: the request in (:class:`Incoming`), the reply out.

Adapters depend on this module only -- never on the core -- so each one is a
translation between its framework's request and response objects and these two.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Protocol

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
#: The methods a receiver answers (any other is a 405): every method a call may use, dispatch.validation.CALL_METHODS,
#: which is not imported here because it loads urllib3 (a web app importing the receiver needs none of it).
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

Headers = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class Incoming:
    """One request, as every adapter hands it to :meth:`Receiver.handle`.

    ``query`` is the raw query string (no ``?``) and ``body`` the raw body:
    signatures are checked on the exact bytes, never on re-encoded ones.
    ``headers`` is any mapping; names are matched case-insensitively.
    """

    method: str
    path: str
    query: bytes
    body: bytes
    headers: Mapping[Any, Any]
    content_type: str = ""


@dataclasses.dataclass(frozen=True)
class Reply:
    """The HTTP status, JSON body and any extra headers of a receiver's response."""

    status: int
    body: bytes
    headers: Headers = ()

    @property
    def all_headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", JSON), ("Content-Length", str(len(self.body))), *self.headers]

    @classmethod
    def of(cls, status: int, payload: dict[str, Any], headers: Headers = ()) -> Reply:
        return cls(status, json.dumps(payload, ensure_ascii=False, allow_nan=False).encode(), headers)

    @classmethod
    def failure(cls, status: int, reason: str, headers: Headers = ()) -> Reply:
        """A protocol ``failure`` answer with ``reason``, under any HTTP status."""
        return cls.of(status, {"status": "failure", "reason": reason}, headers)

    @classmethod
    def success(cls, retval: Any) -> Reply:
        """A ``success`` answer carrying ``retval``, or a failure saying why it cannot be sent as JSON."""
        try:
            return cls.of(200, {"status": "success", "retval": retval})
        except (TypeError, ValueError) as exc:
            return cls.failure(200, f"the return value cannot be sent as JSON: {exc}")


class Handler(Protocol):
    """What an adapter needs of a :class:`~dispatch.receiver.Receiver`."""

    max_body_bytes: int

    @property
    def name(self) -> str: ...

    def handle(self, incoming: Incoming) -> Reply: ...

    async def handle_async(self, incoming: Incoming) -> Reply: ...
