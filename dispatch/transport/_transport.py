"""The transport: a call delivered in attempts, each attempt one request (and its redirects) under a deadline.

* **Retries for transport failures only**, by the strategies of
  :mod:`dispatch.retries`: refused, reset, timed out, or 429/502/503/504.
  Any answer the endpoint meant to give (a ``failure``, a 404, a malformed
  body) is final.
* **A streamed, capped read.**  A declared ``Content-Length`` over the cap
  fails the call without reading; an undeclared one is read until the cap
  is crossed, then dropped.
* **A refusal says why.**  A non-2xx answer (not retried) is a
  ``BadStatusError``; when its body is a protocol ``failure`` (a receiver
  refusing an unsigned call), its reason joins the message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import urllib3

from ..destinations import Destinations
from ..errors import BadStatusError, ResponseTooLargeError
from ..policy import DestinationPolicy
from ..protocol import refusal_reason
from ..redaction import redact_url
from ..retries import RETRY_STATUSES, AttemptFailed, DeliveryFailed, RetryPolicy, parse_retry_after
from ..validation import MAX_TIMEOUT
from ._connections import MIN_POOL_SIZE, Connections
from ._deadline import Deadline
from ._errors import mapped_errors
from ._models import Answer, Request
from ._observers import AttemptObserver, Observation, observing
from ._redirects import MAX_REDIRECTS, redirected
from ._wire import Shaper, WireRequest, build_wire_request

_READ_CHUNK = 64 * 1024

#: The most of a non-2xx answer's body read for a ``failure`` reason; a larger body is not read.
_REFUSAL_BODY_BYTES = 16 * 1024


class Transport:
    """Performs calls over HTTP through one thread-safe ``urllib3.PoolManager``.

    ``observers`` are told about every attempt (:mod:`._observers`), the
    first outermost; :func:`dispatch.runtime.build_runtime` chooses them.
    """

    def __init__(
        self,
        policy: DestinationPolicy | None = None,
        signing_secrets: Sequence[str] = (),
        destinations: Destinations | None = None,
        pool_size: int = MIN_POOL_SIZE,
        observers: Sequence[AttemptObserver] = (),
    ) -> None:
        self.policy = policy or DestinationPolicy()
        self.signing_secrets = tuple(signing_secrets)
        self.destinations = destinations or Destinations()
        self.observers: tuple[AttemptObserver, ...] = tuple(observers)
        self.connections = Connections(self.policy, pool_size)

    @property
    def pools(self) -> urllib3.PoolManager:
        """The pool manager of direct connections (and of those pinned by the policy)."""
        return self.connections.pools

    def size_pools(self, connections_per_host: int) -> None:
        """Keep at least ``connections_per_host`` connections per origin; at worker boot, before any call.

        A worker's thread count is known only once it boots (:class:`~dispatch.middleware.PoolSizing`);
        pools made from then on take the size.  It never shrinks.
        """
        self.connections.size(connections_per_host)

    def deliver(self, request: Request, policy: RetryPolicy, shape: Shaper | None = None) -> Answer:
        """The endpoint's 2xx answer, after as many attempts as the policy allows.

        Raises DeliveryFailed when every attempt failed, and the errors of
        :meth:`attempt` for an answer that is final.
        """
        retrying = policy.retrying
        try:
            return retrying(self.attempt, request, shape)
        except AttemptFailed as exc:
            attempts = retrying.statistics.get("attempt_number", policy.max_attempts)
            raise DeliveryFailed(
                f"{request.method} {redact_url(request.url)} failed after {attempts} attempt(s): {exc}", exc.retry_after
            ) from None

    def attempt(self, request: Request, shape: Shaper | None = None) -> Answer:
        """One request: the 2xx answer, or AttemptFailed, BadStatusError, ResponseTooLargeError."""
        with observing(self.observers, request.method, request.url) as observation:
            return self._attempt(request, shape, observation)

    def prepare(self, request: Request, shape: Shaper | None = None) -> WireRequest:
        """The request exactly as it goes on the wire (:func:`~._wire.build_wire_request`)."""
        return build_wire_request(request, self.destinations, self.signing_secrets, shape)

    def _attempt(self, request: Request, shape: Shaper | None, observation: Observation) -> Answer:
        # Bounded here too, as a message put on the queue by hand is not checked (validation.OPTIONS).
        deadline = Deadline(min(request.timeout, MAX_TIMEOUT) if request.timeout > 0 else MAX_TIMEOUT)
        wire = self.prepare(request, shape)
        with deadline, mapped_errors(deadline, lambda: wire.url):
            for _ in range(MAX_REDIRECTS + 1):
                remaining = deadline.at - time.monotonic()
                if remaining <= 0:
                    raise AttemptFailed(deadline.message)
                response = self.connections.open(wire, urllib3.Timeout(connect=remaining, read=remaining))
                observation.answered(response.status)
                complete = False
                try:
                    status = response.status
                    location = response.get_redirect_location()
                    if location:
                        wire = redirected(wire, status, location, self.destinations, request.call_id)
                        continue
                    if status in RETRY_STATUSES:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        asked = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
                        raise AttemptFailed(f"HTTP {status} {response.reason}{asked}", retry_after)
                    if not 200 <= status < 300:
                        raise BadStatusError(
                            f"HTTP {status} {response.reason} from {request.method} {redact_url(request.url)}"
                            + _refusal(response, deadline.at)
                        )
                    body = _read_capped(response, request.max_response_bytes, deadline.at)
                    if deadline.expired:  # a body without a length ends early, and looks whole, when cut
                        raise AttemptFailed(deadline.message)
                    complete = True
                    return Answer(status, response.headers, body)
                finally:
                    if not complete:  # unread data would poison a kept-alive connection
                        response.close()
                    deadline.forget()  # the connection may go to another thread now: the watchdog lets go of it
                    response.release_conn()
            raise BadStatusError(f"more than {MAX_REDIRECTS} redirects from {request.method} {redact_url(request.url)}")


def _refusal(response: urllib3.BaseHTTPResponse, deadline: float) -> str:
    """``: <reason>`` when a non-2xx body is a protocol ``failure`` (:func:`~dispatch.protocol.refusal_reason`),
    else nothing: a body too large, cut off or late does not turn the answer into a transport failure."""
    try:
        body = _read_capped(response, _REFUSAL_BODY_BYTES, deadline)
    except (ResponseTooLargeError, AttemptFailed, urllib3.exceptions.HTTPError, OSError):
        return ""
    reason = refusal_reason(body)
    return f": {reason}" if reason else ""


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(f"response of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    for chunk in response.stream(_READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise ResponseTooLargeError(f"response exceeds the {limit}-byte limit")
        if time.monotonic() > deadline:
            raise AttemptFailed("timed out reading the response body")
    return bytes(body)
