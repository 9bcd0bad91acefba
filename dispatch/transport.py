"""One HTTP call: the attempts, the retry policy, and the capped read.

Why the pieces look the way they do:

* **A session per worker thread.**  ``requests.Session`` reuses keep-alive
  connections, which matters more than anything else for throughput, but a
  session is not safe to share between threads.  ``threading.local`` gives
  each dramatiq worker thread its own.
* **A timeout on every attempt**, and a deadline on the body read: requests'
  own timeout bounds each socket operation, not the whole answer, so a
  server dripping one byte a second would otherwise hold a thread forever.
* **A streamed, capped read.**  A declared ``Content-Length`` over the cap
  fails the call without reading; an undeclared one is read until the cap
  is crossed, then dropped.
* **Retries for transport failures only**, as a tenacity policy: refused,
  reset, timed out, or 429/502/503/504.  Any answer the endpoint meant to
  give (a ``failure``, a 404, a malformed body) is final.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from urllib.parse import urlsplit

import requests
import tenacity

from .errors import BadStatusError, ResponseTooLargeError, TransportError
from .policy import DestinationPolicy, PinnedAdapter
from .protocol import Params
from .signing import sign_request

logger = logging.getLogger(__name__)

USER_AGENT = f"dispatch/{version('dispatch')}"

#: Statuses that mean "not now" rather than "no": the call is tried again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

_READ_CHUNK = 64 * 1024


class AttemptFailed(Exception):
    """One attempt got no usable answer; another attempt may.

    ``retry_after`` is the wait in seconds the endpoint asked for, if any.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryFailed(TransportError):
    """Every quick attempt failed; ``retry_after`` says how long the endpoint asked us to wait, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class wait_at_least_retry_after(tenacity.wait.wait_base):
    """Wait as ``fallback`` says, but never less than the endpoint's ``Retry-After``."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        asked = getattr(retry_state.outcome.exception(), "retry_after", None) or 0.0
        return max(asked, self.fallback(retry_state))


class stop_if_retry_after_exceeds(tenacity.stop.stop_base):
    """Stop the quick attempts when the endpoint asks for a longer wait than a thread should hold."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        asked = getattr(retry_state.outcome.exception(), "retry_after", None)
        return asked is not None and asked > self.limit


@dataclasses.dataclass(frozen=True)
class Request:
    """Everything one call needs to be attempted, however many times."""

    url: str
    method: str
    params: Params
    timeout: float
    max_response_bytes: int
    call_id: str | None = None  # the message id: Idempotency-Key and webhook-id


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them.

    Exponential backoff with jitter (tenacity's ``wait_exponential_jitter``)
    keeps many workers that saw the same outage from retrying in lockstep.
    An endpoint's ``Retry-After`` is honoured as a minimum wait, up to
    ``retry_after_max``; a longer one ends the quick attempts so the call
    can wait as a delayed message instead of in a sleeping thread.
    """

    max_attempts: int
    backoff_initial: float
    backoff_max: float
    retry_after_max: float

    @functools.cached_property
    def retrying(self) -> tenacity.Retrying:
        """The tenacity loop for this policy; one per policy, as tenacity keeps each run's state per thread."""
        backoff = tenacity.wait_exponential_jitter(
            multiplier=self.backoff_initial, max=self.backoff_max, jitter=self.backoff_initial
        )
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts) | stop_if_retry_after_exceeds(self.retry_after_max),
            wait=wait_at_least_retry_after(backoff),
            retry=tenacity.retry_if_exception_type(AttemptFailed),
            before_sleep=tenacity.before_sleep_log(logger, logging.DEBUG),
            reraise=True,
        )


#: Called after every attempt with (request, seconds, outcome); outcome is
#: "ok" or the name of the error class the attempt ended with.
AttemptListener = Callable[[Request, float, str], None]


class Transport:
    """Performs calls over HTTP with one ``requests.Session`` per thread.

    ``listeners`` are told about every attempt (metrics use this); a
    listener must be quick and must not raise.
    """

    def __init__(self, policy: DestinationPolicy | None = None, signing_secrets: Sequence[str] = ()) -> None:
        self._local = threading.local()
        self.policy = policy or DestinationPolicy()
        self.signing_secrets = tuple(signing_secrets)
        self.listeners: list[AttemptListener] = []

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
            if self.policy.active:
                # A proxy from the environment would connect on our behalf, unchecked.
                session.trust_env = False
                session.mount("http://", PinnedAdapter(self.policy))
                session.mount("https://", PinnedAdapter(self.policy))
        return session

    def deliver(self, request: Request, policy: RetryPolicy) -> bytes:
        """The body of the endpoint's 2xx answer, after as many attempts as the policy allows.

        Raises TransportError when every attempt failed, and the errors of
        :meth:`attempt` for an answer that is final.
        """
        retrying = policy.retrying
        try:
            return retrying(self.attempt, request)
        except AttemptFailed as exc:
            attempts = retrying.statistics.get("attempt_number", policy.max_attempts)
            raise DeliveryFailed(
                f"{request.method} {request.url} failed after {attempts} attempt(s): {exc}", exc.retry_after
            ) from None

    def attempt(self, request: Request) -> bytes:
        """One request: the 2xx body, or AttemptFailed, BadStatusError, ResponseTooLargeError."""
        if not self.listeners:
            return self._attempt(request)
        started, outcome = time.perf_counter(), "ok"
        try:
            return self._attempt(request)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            for listener in self.listeners:
                listener(request, time.perf_counter() - started, outcome)

    def prepare(self, request: Request) -> requests.PreparedRequest:
        """The request exactly as it goes on the wire, signed when secrets are configured.

        Signing happens here, on every attempt, because the signature covers a
        timestamp: one made for the first attempt would be stale for a
        delivery scheduled hours later.
        """
        session = self.session
        in_body = "params" if request.method == "GET" else "data"
        headers = {"Idempotency-Key": request.call_id} if request.call_id else {}
        prepared = session.prepare_request(
            requests.Request(request.method, request.url, headers=headers, **{in_body: request.params})
        )
        if self.signing_secrets and request.call_id:
            prepared.headers.update(
                sign_request(self.signing_secrets, request.call_id, prepared.method, prepared.url, prepared.body)
            )
        return prepared

    def _environment(self, session: requests.Session, url: str) -> dict:
        """Proxies, verify and cert from the environment, as ``session.request()`` would merge them.

        requests looks them up on every request (netrc, proxy variables, CA
        bundle paths: several filesystem checks); they depend only on the
        origin, so each thread keeps them per scheme and host.
        """
        origin = urlsplit(url)[:2]
        cache = self._local.__dict__.setdefault("environment", {})
        if origin not in cache:
            cache[origin] = session.merge_environment_settings(url, {}, True, None, None)
        return cache[origin]

    def _attempt(self, request: Request) -> bytes:
        deadline = time.monotonic() + request.timeout
        session = self.session
        prepared = self.prepare(request)
        environment = self._environment(session, prepared.url)
        try:
            with session.send(prepared, timeout=request.timeout, **environment) as response:
                status = response.status_code
                if status in RETRY_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    asked = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
                    raise AttemptFailed(f"HTTP {status} {response.reason}{asked}", retry_after)
                if not 200 <= status < 300:
                    raise BadStatusError(f"HTTP {status} {response.reason} from {request.method} {request.url}")
                return _read_capped(response, request.max_response_bytes, deadline)
        except requests.Timeout as exc:
            raise AttemptFailed(f"timed out after {request.timeout:g}s ({type(exc).__name__})") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:  # the destination policy's own DNS lookup
            raise AttemptFailed(f"cannot resolve {request.url}: {exc}") from None


def _read_capped(response: requests.Response, limit: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(f"response of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    for chunk in response.iter_content(_READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise ResponseTooLargeError(f"response exceeds the {limit}-byte limit")
        if time.monotonic() > deadline:
            raise AttemptFailed("timed out reading the response body")
    return bytes(body)
