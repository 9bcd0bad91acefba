"""The work behind the gateway's endpoints: check a call or a task, record its id, publish; read a state; cancel.

Telling a *pending* call from an *unknown* id needs a record of the ids the
gateway queued: a small Redis key beside the results, with the results' TTL,
written before the call is published (so no queued call is ever unknown).  Its
value says what was queued (a call, or a task and its actor).  A call's
``scheduled``/``started``/``cancelled`` states are in its record (:mod:`dispatch.results.states`),
so calls sent later or cancelled from Python are found too.

URLs come from outside, so the destination policy denies private addresses
whatever ``DISPATCH_DENY_PRIVATE`` says: loopback, private, link-local and
cloud-metadata hosts are refused *before* anything is queued, except those
``DISPATCH_ALLOWED_HOSTS`` opens.  The lookup that check needs is given
``DISPATCH_SEND_TIMEOUT``: a resolver that hangs gets the caller a 503, not a held request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import socket
from typing import Any, NoReturn

import dramatiq
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError

from ..actor import default_dispatcher
from ..errors import BrokerUnavailable, ConfigurationError, DestinationRefused, PublishBlocked, PublishRefused
from ..policy import DestinationPolicy
from ..publisher import check_message_size, publish
from ..redaction import get_logger, redact_url
from ..redis_errors import store_error_message
from ..result import CallResult
from ..results import CallResultsBackend
from ..runtime import get_runtime
from ..settings import Settings
from ..transport import lookup_within
from .actors import load_actors
from .models import (
    Attempt,
    CallAttempts,
    CallError,
    Cancelled,
    Failed,
    NewCall,
    NewTask,
    Pending,
    Scheduled,
    Started,
    Status,
    Succeeded,
)

log = get_logger("dispatch.gateway")

#: The shortest wait for the resolver, whatever ``DISPATCH_SEND_TIMEOUT`` says.
MIN_LOOKUP_TIMEOUT = 1.0


def _unreachable(what: str) -> NoReturn:
    """A request does not wait for RabbitMQ to come back (its first try failed): the caller hears it at once."""
    raise BrokerUnavailable(f"{what}; nothing was queued")


def check_destination(policy: DestinationPolicy, url: str, timeout: float) -> None:
    """Answer for a call to ``url`` the policy refuses (403), whose host does not resolve (422), or whose host
    the resolver cannot answer for within ``timeout`` seconds (503): the request thread waits no longer."""
    shown = redact_url(url)
    try:
        lookup_within(timeout, policy.check, url)
    except DestinationRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:  # the resolver is down, not the caller wrong
            raise HTTPException(503, f"cannot resolve {shown} right now: {exc.strerror}") from None
        raise _invalid("url", f"the host of {shown} does not resolve: {exc.strerror}", shown) from None
    except TimeoutError:
        raise HTTPException(503, f"cannot resolve {shown} right now: no answer in {timeout:g}s") from None
    except (OSError, ValueError) as exc:
        raise _invalid("url", f"the host of {shown} cannot be resolved: {exc}", shown) from None


def _invalid(field: str, message: str, value: Any) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, so every 422 matches one documented schema."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}])


class Gateway:
    """The work behind the endpoints, on the process's runtime (:func:`dispatch.runtime.get_runtime`)."""

    def __init__(self) -> None:
        runtime = get_runtime()  # a bad variable fails here, before serving
        self.settings = runtime.settings
        self.broker = runtime.broker
        self.actor = default_dispatcher()
        self.policy = dataclasses.replace(self.settings.destination_policy(), deny_private=True)
        if not isinstance(runtime.results, CallResultsBackend):
            raise ConfigurationError(
                f"the gateway needs a Redis results store ({Settings.env('results_url')}=redis://...)"
            )
        self.redis = runtime.results.client
        self.states = runtime.call_states
        self.ttl_ms = int(self.settings.result_ttl * 1000)
        self.actors = load_actors(self.settings.gateway_actors, self.broker)

    def _marker(self, call_id: str) -> str:
        return f"dispatch:gateway:{self.settings.queue}:{call_id}"

    def submit(self, call: NewCall) -> str:
        """Check the destination, record the id (and the schedule), publish; return the id."""
        shown = redact_url(call.url)
        check_destination(self.policy, call.url, max(self.settings.send_timeout, MIN_LOOKUP_TIMEOUT))
        try:  # validates again and enforces DISPATCH_MAX_MESSAGE_BYTES
            message = self.actor.message(call.url, call.method, call.params, call.call_options)
        except ValueError as exc:
            raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": str(exc)}]) from None
        delay = math.ceil(call.delay * 1000)  # as URL.send_in() does
        self._publish(message, "call", delay)
        log.info("queued call %s %s %s%s", message.message_id, call.method, shown, f" in {call.delay:g}s" * bool(delay))
        return message.message_id

    def submit_task(self, actor_name: str, task: NewTask) -> str:
        """Apply a listed actor to ``task``'s arguments: check them, record the id, publish; return the id."""
        actor = self.actors.get(actor_name)
        if actor is None:
            raise HTTPException(
                404, f"no actor {actor_name!r} here: the gateway applies only those in {Settings.env('gateway_actors')}"
            )
        with contextlib.suppress(TypeError, ValueError):  # a signature Python cannot tell is left to the worker
            signature = inspect.signature(actor.fn)
            try:
                signature.bind(*task.args, **task.kwargs)
            except TypeError as exc:
                raise RequestValidationError(
                    [{"type": "value_error", "loc": ("body",), "msg": f"{actor_name}{signature}: {exc}"}]
                ) from None
        message = actor.message_with_options(args=tuple(task.args), kwargs=task.kwargs)
        try:
            check_message_size(message, self.settings, "the task's message")
        except ValueError as exc:
            raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": str(exc)}]) from None
        self._publish(message, f"task:{actor.actor_name}", 0)
        log.info("queued task %s %s", message.message_id, actor.actor_name)
        return message.message_id

    def _publish(self, message: dramatiq.Message, kind: str, delay: int) -> None:
        """Record the id (and for a delay, the scheduled state), then publish with confirms; 503 if either fails."""
        call_id = message.message_id
        try:
            self.redis.set(self._marker(call_id), kind, px=self.ttl_ms)
            if delay:  # recorded first, so a scheduled call is never seen as unknown, and can be cancelled
                self.states.schedule(call_id, delay)
        except RedisError as exc:
            reason = store_error_message(exc, self.settings.results_url)
            raise HTTPException(503, f"nothing was queued: {reason}", headers={"Retry-After": "5"}) from None
        try:
            publish(self.broker, message, delay or None, self.settings.send_timeout, on_wait=_unreachable)
        except PublishBlocked as exc:  # handed over unconfirmed: RabbitMQ may queue it when the alarm clears
            raise HTTPException(503, f"{exc}. {self._withdraw(call_id, kind)}", headers={"Retry-After": "30"}) from None
        except (BrokerUnavailable, PublishRefused) as exc:
            with contextlib.suppress(RedisError):
                self.redis.delete(self._marker(call_id))
                if delay:
                    self.states.forget(call_id)
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None

    def _withdraw(self, call_id: str, kind: str) -> str:
        """Cancel a call RabbitMQ holds unconfirmed, so it never runs if queued later; say what became of it."""
        if kind == "call":
            with contextlib.suppress(RedisError):
                if self.states.cancel(call_id):
                    return (
                        f"Call {call_id} was withdrawn (cancelled): should RabbitMQ queue it when the alarm clears, "
                        "no worker performs it; send it again once the alarm is over"
                    )
        what = "Call" if kind == "call" else "Task"
        return f"{what} {call_id} may still be queued when the alarm clears: GET /calls/{call_id} tells"

    def status(self, call_id: str) -> Status:
        """The outcome if stored; else the call's state if it has one; else pending if this gateway queued it; else 404.

        The outcome and the state are read first, so a call sent by a Python client (on any queue
        of the same results store) can be looked up too: its id (a random UUID) is what grants
        access, as it is for ``CallResult.from_id``.
        """
        snapshot = CallResult.from_id(call_id).snapshot()
        if snapshot.state == "success":
            return Succeeded(id=call_id, state="success", result=snapshot.result)
        if snapshot.state == "failure":
            return Failed(
                id=call_id,
                state="failure",
                error=CallError(type=snapshot.error_type or "", message=snapshot.error_message or ""),
            )
        if snapshot.state == "cancelled":
            return Cancelled(id=call_id, state="cancelled")
        if snapshot.state == "scheduled":
            return Scheduled(id=call_id, state="scheduled")
        if snapshot.state == "started":
            return Started(id=call_id, state="started")
        if self.redis.exists(self._marker(call_id)):
            return Pending(id=call_id, state="pending")
        raise HTTPException(404, f"no call {call_id}: never queued here, or its outcome has expired")

    def attempts(self, call_id: str) -> CallAttempts:
        """Every attempt on record (``res.attempts()``); 404 for a call with none that is not known either."""
        entries = CallResult.from_id(call_id).attempts()
        if not entries:
            self.status(call_id)  # 404 for an unknown id
        return CallAttempts(id=call_id, attempts=[Attempt(**entry) for entry in entries])

    def cancel(self, call_id: str) -> Cancelled:
        """Cancel a call no worker has started (``res.cancel()``); 409 if one has, 404 for an unknown id."""
        current = self.status(call_id)
        if isinstance(current, Cancelled):  # DELETE is idempotent
            return current
        if isinstance(current, (Succeeded, Failed)):  # a "started" one may wait, off the wire: res.cancel() decides
            raise HTTPException(409, f"call {call_id} already finished ({current.state}): it cannot be cancelled")
        kind = self.redis.get(self._marker(call_id))
        if kind is not None and kind.startswith(b"task:"):
            raise HTTPException(
                409,
                f"call {call_id} is a task applied over /tasks ({kind[5:].decode()}): workers check "
                "cancellation for HTTP calls only, so it cannot be cancelled",
            )
        if not CallResult.from_id(call_id).cancel():  # res.cancel() decides, as for a Python caller
            raise HTTPException(409, f"call {call_id} already started: it cannot be cancelled")
        log.info("cancelled call %s", call_id)
        return Cancelled(id=call_id, state="cancelled")
