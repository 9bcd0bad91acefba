"""An HTTP gateway: queue a call and read its outcome from any language.

``POST /calls`` takes the same call a Python client would send with
``URL(...).send(...)`` (or ``send_in(delay, ...)``) and answers ``202`` with the
call's id; ``GET /calls/{id}`` answers ``scheduled``, ``pending``, ``started``,
``cancelled``, ``success`` with the endpoint's ``retval``, or ``failure`` with
the error class and message a Python client's ``res.get()`` would raise;
``DELETE /calls/{id}`` cancels a call no worker has started (``res.cancel()``).
``POST /tasks/{actor_name}`` applies one of the dramatiq actors listed in
``DISPATCH_GATEWAY_ACTORS``, and its outcome is read with the same
``GET /calls/{id}``: outcomes are keyed by message id alone.  It is Celery's
old ``celery_http_gateway`` (``/apply/<task>/``, ``/<task_id>/status/``) with
what that example lacked:

* **A bearer token** (``DISPATCH_GATEWAY_TOKEN``, several comma-separated
  while rotating), compared in constant time.  With no token the gateway
  refuses to start: an open gateway is an open proxy into the network.
* **A destination policy that denies private addresses** whatever
  ``DISPATCH_DENY_PRIVATE`` says -- the URLs come from outside, so loopback,
  private, link-local and cloud-metadata hosts are refused *before* anything
  is queued, except those ``DISPATCH_ALLOWED_HOSTS`` opens.  Workers fed by a
  gateway should run with ``DISPATCH_DENY_PRIVATE=1`` too: they check again at
  connect time, which also catches a name that resolves differently later.
* **Validation by** :mod:`dispatch.protocol`, so a body is judged exactly as
  ``URL.send()`` judges its arguments; its messages become the 422 details.
  That includes the ceilings of the per-call options (``MAX_TIMEOUT`` and the
  like), which the OpenAPI document states too.
* **A body limit** (``DISPATCH_GATEWAY_MAX_BODY``, 1 MiB by default), enforced
  by :class:`BodyLimit` *while the body is read* -- before it is parsed and
  before the token is checked, since FastAPI reads a body before running any
  dependency: a too-large Content-Length is answered 413 without reading a
  byte, a chunked body once the limit is crossed.

* **Actors named up front**: ``POST /tasks/...`` applies only the actors
  listed in ``DISPATCH_GATEWAY_ACTORS``, imported when the app is built; a path
  that does not import, an object that is not an actor on dispatch's broker, an
  actor that does not store results, or an HTTP dispatcher (whose calls must go
  through ``POST /calls`` and its destination policy) stops the gateway from starting.

Telling a *pending* call from an *unknown* id needs a record of the ids the
gateway queued: a small Redis key beside the results, with the results' TTL,
written before the call is published (so no queued call is ever unknown).  Its
value says what was queued (a call, or a task and its actor).  A call's
``scheduled``/``started``/``cancelled`` states are :mod:`dispatch.states`' keys,
so calls sent later or cancelled from Python are found too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import importlib
import inspect
import json
import logging
import math
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import dramatiq
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import TypedDict

from . import __version__
from .actor import default_dispatcher
from .errors import BrokerUnavailable, ConfigurationError, DestinationRefused, PublishRefused
from .protocol import (
    MAX_ATTEMPTS,
    MAX_SCHEDULE_DELAY,
    MAX_SCHEDULE_ENTRIES,
    MAX_SCHEDULE_SPAN,
    MAX_TIMEOUT,
    METHODS,
    check_headers,
    check_method,
    check_options,
    check_params,
    check_url,
    sends_json,
    shape_options,
)
from .publisher import publish
from .result import CallResult
from .url import MAX_DELAY
from .wiring import get_settings

log = logging.getLogger("dispatch.gateway")

TOKEN_ENV = "DISPATCH_GATEWAY_TOKEN"
ACTORS_ENV = "DISPATCH_GATEWAY_ACTORS"
MIN_TOKEN_LENGTH = 16

#: The security scheme in the OpenAPI document; the check itself is in ``create_app``.
bearer = HTTPBearer(auto_error=False, description=f"One of the tokens in {TOKEN_ENV}.")


class CallOptions(TypedDict, total=False):
    """Per-call overrides of the worker's settings (``dispatch.protocol.OPTIONS``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    # The bounds are dispatch.protocol's, which refuses a value past them first (with its own message).
    timeout: Annotated[
        float, Field(gt=0, le=MAX_TIMEOUT, description="Seconds for one HTTP attempt (DISPATCH_TIMEOUT).")
    ]
    max_attempts: Annotated[
        int, Field(ge=1, le=MAX_ATTEMPTS, description="Transport attempts before failing (DISPATCH_MAX_ATTEMPTS).")
    ]
    retry_schedule: Annotated[
        list[Annotated[float, Field(ge=0, le=MAX_SCHEDULE_DELAY)]],
        Field(
            max_length=MAX_SCHEDULE_ENTRIES,
            description="Seconds between later deliveries once the quick attempts fail (DISPATCH_RETRY_SCHEDULE); "
            f"at most {MAX_SCHEDULE_SPAN:g} seconds in all.",
        ),
    ]


# JSON can put any type anywhere; dispatch.protocol's checks expect Python callers, and
# check_method({}) or check_options([...]) would raise TypeError (a 500) instead of ValueError.
def _check_method(method: Any) -> str:
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, one of {', '.join(sorted(METHODS))}, not {type(method).__name__}")
    return check_method(method)


def _check_options(options: Any) -> dict[str, Any]:
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"options must be an object of call options, not {type(options).__name__}")
    return check_options(options)


def _check_delay(delay: Any) -> Any:
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):  # pydantic would take true as 1
        raise ValueError(f"delay must be a number of seconds, 0 to {MAX_DELAY}, not {type(delay).__name__}")
    return delay


class NewCall(BaseModel):
    """A call to queue.  Each field is checked by ``dispatch.protocol``, as ``URL.send()`` checks it."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, BeforeValidator(check_url)] = Field(
        description="Absolute http(s) URL of an endpoint speaking the callback protocol.",
        examples=["https://example.com/multiply"],
        json_schema_extra={"pattern": r"^https?://\S+$"},
    )
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_check_method)] = Field(
        "GET", description="GET sends params in the query string; the others in the body (see `body`)."
    )
    params: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Parameters. In a query or a form: strings, numbers, booleans, null (left out) or lists of "
        'those (key repeated). In a JSON body (`"body": "json"`): any JSON values.',
        examples=[{"x": 10, "y": 10}],
    )
    headers: Annotated[dict[str, str], BeforeValidator(check_headers)] = Field(
        default_factory=dict,
        description="Extra request headers sent on every attempt. Names are HTTP tokens; Host, Content-Length, "
        "Transfer-Encoding, Idempotency-Key and webhook-* are the worker's. Credentials belong in the worker's "
        "destinations file (DISPATCH_DESTINATIONS), not here: these travel in the message.",
        examples=[{"X-Tenant": "acme"}],
    )
    body: Literal["form", "json"] = Field(
        "form", description="How params travel in a method with a body: form-encoded, or one JSON object."
    )
    options: Annotated[CallOptions, BeforeValidator(_check_options)] = Field(default_factory=CallOptions)
    delay: Annotated[float, BeforeValidator(_check_delay)] = Field(
        0,
        ge=0,
        le=MAX_DELAY,
        description="Seconds to wait before the call is performed (as send_in(); at most 30 days). "
        "Until then GET answers state scheduled, and DELETE can cancel it.",
        examples=[30],
    )

    @model_validator(mode="after")
    def _params_fit_the_body(self) -> NewCall:
        self.params = check_params(self.params, json_body=sends_json(self.method, {"body": self.body}))
        return self

    @property
    def call_options(self) -> dict[str, Any]:
        """The options of the message: the per-call overrides and the call's shape."""
        return {**self.options, **shape_options(self.headers, self.body)}


class NewTask(BaseModel):
    """The arguments of one actor run, as JSON: ``actor.send(*args, **kwargs)``."""

    model_config = ConfigDict(extra="forbid")

    args: list[JsonValue] = Field(default_factory=list, description="Positional arguments.", examples=[[2, 3]])
    kwargs: dict[str, JsonValue] = Field(default_factory=dict, description="Keyword arguments.", examples=[{}])


class Queued(BaseModel):
    """The call is on the queue (RabbitMQ confirmed it)."""

    id: str = Field(
        description="The call's id (the dramatiq message id, also sent to the endpoint as Idempotency-Key)."
    )
    status_url: str = Field(description="Where to read the outcome: a URL relative to this gateway.")


class Scheduled(BaseModel):
    """Sent with a delay that has not run out yet."""

    id: str
    state: Literal["scheduled"] = Field(description="Waiting for its time (delay); DELETE can still cancel it.")


class Pending(BaseModel):
    """No outcome yet, and no worker has started it."""

    id: str
    state: Literal["pending"] = Field(
        description="Queued, not started yet; a task applied over /tasks stays pending until it has an outcome."
    )


class Started(BaseModel):
    """A worker took the call: it is being performed, or waits between delivery attempts."""

    id: str
    state: Literal["started"] = Field(description="Being performed (retries included); it can no longer be cancelled.")


class Cancelled(BaseModel):
    """Cancelled before any worker started it: it will never be sent."""

    id: str
    state: Literal["cancelled"]


class Succeeded(BaseModel):
    """The endpoint answered ``{"status": "success", "retval": ...}``."""

    id: str
    state: Literal["success"]
    result: Any = Field(description="The endpoint's retval.")


class CallError(BaseModel):
    """The error a Python client's ``res.get()`` would raise (see the README's error hierarchy)."""

    type: str = Field(
        description="The error class, e.g. RemoteExecuteError or TransportError.", examples=["RemoteExecuteError"]
    )
    message: str = Field(description="The error's message; for RemoteExecuteError, the endpoint's reason.")


class Failed(BaseModel):
    """The call failed for good: the endpoint answered failure, broke the protocol, or never answered."""

    id: str
    state: Literal["failure"]
    error: CallError


Status = Scheduled | Pending | Started | Cancelled | Succeeded | Failed
CallStatus = Annotated[Status, Field(discriminator="state")]


class Problem(BaseModel):
    """An error other than a validation error."""

    detail: str


def _responses(*codes: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """Documented error answers; ``_404="..."`` words one differently for a route."""
    meaning = {
        401: "Missing or wrong bearer token.",
        403: "The destination policy refuses this URL (a private address); nothing was queued.",
        404: "No call with this id: never queued here, or its outcome has expired.",
        409: "The call cannot be cancelled: a worker already started or finished it "
        "(or it is a task applied over /tasks, which workers do not check for cancellation).",
        413: "The body is larger than DISPATCH_GATEWAY_MAX_BODY bytes; it was not read.",
        503: "RabbitMQ or Redis is unavailable; nothing was queued. Try again later.",
    }
    for name, text in meanings.items():
        meaning[int(name.lstrip("_"))] = text
    return {code: {"model": Problem, "description": meaning[code]} for code in codes}


def load_actors(paths: Sequence[str], broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """The actors ``POST /tasks/{actor_name}`` may apply, by actor name, imported from ``module:actor`` paths.

    ConfigurationError naming the path when one does not import, is not a dramatiq actor on
    dispatch's broker, does not store results, or is an HTTP dispatcher (whose calls must go
    through ``POST /calls``, where the destination policy is applied).
    """
    actors: dict[str, dramatiq.Actor] = {}
    for path in paths:
        module_name, _, name = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigurationError(
                f"{ACTORS_ENV}: cannot import {module_name} (for {path}): {type(exc).__name__}: {exc}"
            ) from None
        actor = getattr(module, name, None)
        if actor is None:
            raise ConfigurationError(f"{ACTORS_ENV}: module {module_name} has no {name} (for {path})")
        if not isinstance(actor, dramatiq.Actor):
            raise ConfigurationError(f"{ACTORS_ENV}: {path} is not a dramatiq actor (decorate it with @dramatiq.actor)")
        if getattr(actor, "performs_calls", False):
            raise ConfigurationError(
                f"{ACTORS_ENV}: {path} performs HTTP calls; queue those with POST /calls, where the "
                "destination policy applies"
            )
        if actor.broker is not broker:
            raise ConfigurationError(
                f"{ACTORS_ENV}: {path} is declared on another broker; declare it on dispatch's "
                "(@dramatiq.actor(broker=dispatch.wiring.get_broker(), ...)) so its outcome is stored beside the calls'"
            )
        if not actor.options.get("store_results"):
            raise ConfigurationError(
                f"{ACTORS_ENV}: {path} does not store results; declare it with store_results=True, "
                "or GET /calls/{id} could never tell its outcome"
            )
        if actors.get(actor.actor_name, actor) is not actor:
            raise ConfigurationError(f"{ACTORS_ENV}: two actors are named {actor.actor_name}")
        actors[actor.actor_name] = actor
    return actors


def check_tokens(tokens: Sequence[str]) -> list[str]:
    """The accepted tokens; ConfigurationError when there are none or one is too short to be a secret."""
    tokens = [token.strip() for token in tokens if token.strip()]
    if not tokens:
        raise ConfigurationError(
            f"{TOKEN_ENV} is not set: the gateway refuses to run without a bearer token. Create one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` (several, comma-separated, while rotating)"
        )
    if any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
        raise ConfigurationError(f"{TOKEN_ENV}: every token must be at least {MIN_TOKEN_LENGTH} characters long")
    return tokens


def _invalid(field: str, message: str, value: Any) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, so every 422 matches one documented schema."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}])


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once a body crosses the limit (the 413 is already sent)."""


class BodyLimit:
    """ASGI middleware: refuse a request body larger than ``max_body`` bytes with 413, while it is read.

    A Content-Length over the limit is answered at once, before any of the body is read.  A body
    without one (chunked) is counted as the app receives it; the chunk that crosses the limit is
    never handed over: the 413 is sent instead and the app's ``receive`` raises, so nothing
    downstream -- parsing, authentication -- sees more than ``max_body`` bytes.  The 413 says
    ``Connection: close``, so the server stops reading the rest.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                if not value.strip().isdigit():  # servers refuse these first; never trust that
                    await self._refuse(send, 400, "bad Content-Length header")
                    return
                if int(value) > self.max_body:
                    await self._refuse(send, 413, self._too_large())
                    return

        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    if not started:
                        refused = True
                        await self._refuse(send, 413, self._too_large())
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # whatever the app answers to the exception, the 413 has been sent
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):  # reaches here only if the app let it through
            await self.app(scope, limited_receive, guarded_send)

    def _too_large(self) -> str:
        return f"the body is larger than {self.max_body} bytes (DISPATCH_GATEWAY_MAX_BODY)"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Gateway:
    """The work behind the endpoints, on the process's broker and results store (:mod:`dispatch.wiring`)."""

    def __init__(self) -> None:
        self.settings = get_settings()  # a bad variable fails here, before serving
        self.actor = default_dispatcher()
        self.policy = dataclasses.replace(self.settings.destination_policy(), deny_private=True)
        backend = self.actor.broker.get_results_backend()
        if not hasattr(backend, "client"):
            raise ConfigurationError("the gateway needs a Redis results store (DISPATCH_RESULTS_URL=redis://...)")
        self.redis = backend.client
        self.states = self.actor.broker.call_states
        self.ttl_ms = int(self.settings.result_ttl * 1000)
        self.actors = load_actors(self.settings.gateway_actors, self.actor.broker)

    def _marker(self, call_id: str) -> str:
        return f"dispatch:gateway:{self.settings.queue}:{call_id}"

    def submit(self, call: NewCall) -> str:
        """Check the destination, record the id (and the schedule), publish; return the id."""
        try:
            self.policy.check(call.url)
        except DestinationRefused as exc:
            raise HTTPException(403, str(exc)) from None
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:  # the resolver is down, not the caller wrong
                raise HTTPException(503, f"cannot resolve {call.url} right now: {exc.strerror}") from None
            raise _invalid("url", f"the host of {call.url} does not resolve: {exc.strerror}", call.url) from None
        except (OSError, ValueError) as exc:
            raise _invalid("url", f"the host of {call.url} cannot be resolved: {exc}", call.url) from None
        try:  # validates again and enforces DISPATCH_MAX_MESSAGE_BYTES
            message = self.actor.message(call.url, call.method, call.params, call.call_options)
        except ValueError as exc:
            raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": str(exc)}]) from None
        delay = math.ceil(call.delay * 1000)  # as URL.send_in() does
        self._publish(message, "call", delay)
        log.info(
            "queued call %s %s %s%s", message.message_id, call.method, call.url, f" in {call.delay:g}s" * bool(delay)
        )
        return message.message_id

    def submit_task(self, actor_name: str, task: NewTask) -> str:
        """Apply a listed actor to ``task``'s arguments: check them, record the id, publish; return the id."""
        actor = self.actors.get(actor_name)
        if actor is None:
            raise HTTPException(404, f"no actor {actor_name!r} here: the gateway applies only those in {ACTORS_ENV}")
        with contextlib.suppress(TypeError, ValueError):  # a signature Python cannot tell is left to the worker
            signature = inspect.signature(actor.fn)
            try:
                signature.bind(*task.args, **task.kwargs)
            except TypeError as exc:
                raise RequestValidationError(
                    [{"type": "value_error", "loc": ("body",), "msg": f"{actor_name}{signature}: {exc}"}]
                ) from None
        message = actor.message_with_options(args=tuple(task.args), kwargs=task.kwargs)
        size, limit = len(message.encode()), self.settings.max_message_bytes
        if size > limit:
            raise RequestValidationError([{
                "type": "value_error",
                "loc": ("body",),
                "msg": f"the task's message encodes to {size} bytes, over the {limit}-byte limit for one message "
                "(DISPATCH_MAX_MESSAGE_BYTES); send a reference to the data instead",
            }])  # fmt: skip
        self._publish(message, f"task:{actor.actor_name}", 0)
        log.info("queued task %s %s", message.message_id, actor.actor_name)
        return message.message_id

    def _publish(self, message: dramatiq.Message, kind: str, delay: int) -> None:
        """Record the id (and for a delay, the scheduled state), then publish with confirms; 503 if either fails."""
        call_id = message.message_id
        try:
            self.redis.set(self._marker(call_id), kind, px=self.ttl_ms)
            if delay:  # recorded first, so a scheduled call is never seen as unknown, and can be cancelled
                self.states.schedule(call_id)
        except RedisError as exc:
            raise HTTPException(503, f"results store unavailable, nothing was queued: {exc}") from None
        try:
            publish(self.actor.broker, message, delay or None, self.settings.send_timeout)
        except (BrokerUnavailable, PublishRefused) as exc:
            with contextlib.suppress(RedisError):
                self.redis.delete(self._marker(call_id), *([self.states.key(call_id)] if delay else []))
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None

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
                id=call_id, state="failure", error=CallError(type=snapshot.error_type, message=snapshot.error_message)
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

    def cancel(self, call_id: str) -> Cancelled:
        """Cancel a call no worker has started (``res.cancel()``); 409 if one has, 404 for an unknown id."""
        current = self.status(call_id)
        if isinstance(current, Cancelled):  # DELETE is idempotent
            return current
        if isinstance(current, (Started, Succeeded, Failed)):
            done = "started" if isinstance(current, Started) else f"finished ({current.state})"
            raise HTTPException(409, f"call {call_id} already {done}: it cannot be cancelled")
        kind = self.redis.get(self._marker(call_id))
        if kind is not None and kind.startswith(b"task:"):
            raise HTTPException(
                409,
                f"call {call_id} is a task applied over /tasks ({kind[5:].decode()}): workers check "
                "cancellation for HTTP calls only, so it cannot be cancelled",
            )
        if not CallResult.from_id(call_id).cancel():  # a worker claimed it since
            raise HTTPException(409, f"call {call_id} already started: it cannot be cancelled")
        log.info("cancelled call %s", call_id)
        return Cancelled(id=call_id, state="cancelled")


def create_app(tokens: Sequence[str] | None = None, max_body: int | None = None) -> FastAPI:
    """The gateway app; ``tokens`` default to ``DISPATCH_GATEWAY_TOKEN``.  ConfigurationError if there are none.

    ``max_body`` defaults to ``DISPATCH_GATEWAY_MAX_BODY``: a larger request body is answered 413
    (:class:`BodyLimit`, the outermost middleware but Starlette's error handler).

    Building it reads the settings and builds the broker, so a bad ``DISPATCH_*`` variable fails here,
    before serving.
    """
    if tokens is None:
        tokens = get_settings().gateway_tokens
    accepted = [token.encode() for token in check_tokens(tokens)]
    gateway = Gateway()

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if credentials is None:
            raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": 'Bearer realm="dispatch"'})
        given = credentials.credentials.encode()
        matched = False
        for token in accepted:  # no early exit: every token costs the same time
            matched |= hmac.compare_digest(given, token)
        if not matched:
            challenge = 'Bearer realm="dispatch", error="invalid_token"'
            raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": challenge})

    app = FastAPI(
        title="dispatch gateway",
        version=__version__,
        description="Queue HTTP callback calls and read their outcomes. See 'The HTTP gateway' in README.md.",
        dependencies=[Depends(authorized)],
    )
    app.add_middleware(BodyLimit, max_body=gateway.settings.gateway_max_body if max_body is None else max_body)

    accepted_response = {
        "headers": {"Location": {"description": "The status URL, as in the body.", "schema": {"type": "string"}}},
        "links": {"getCall": {"operationId": "getCall", "parameters": {"call_id": "$response.body#/id"}}},
    }

    @app.post(
        "/calls",
        summary="Queue a call",
        operation_id="queueCall",
        status_code=202,
        response_model=Queued,
        responses={202: accepted_response, **_responses(401, 403, 413, 503)},
    )
    def queue_call(call: NewCall, request: Request, response: Response) -> Queued:
        """Queue a call; a worker performs it (after `delay` seconds, if given). Poll `status_url` (also in
        `Location`) for the outcome."""
        call_id = gateway.submit(call)
        status_url = request.scope.get("root_path", "") + app.url_path_for("get_call", call_id=call_id)
        response.headers["Location"] = status_url
        return Queued(id=call_id, status_url=status_url)

    @app.get(
        "/calls/{call_id}",
        summary="Read a call's state or outcome",
        operation_id="getCall",
        response_model=CallStatus,
        responses=_responses(401, 404, 503),
    )
    def get_call(call_id: uuid.UUID) -> Status:
        """The call's state: `scheduled`, `pending`, `started` or `cancelled`; `success` with `result`,
        or `failure` with `error`.  Tasks applied over `/tasks` are read here too."""
        try:
            return gateway.status(str(call_id))
        except RedisError as exc:
            raise HTTPException(503, f"results store unavailable: {exc}") from None

    @app.delete(
        "/calls/{call_id}",
        summary="Cancel a call",
        operation_id="cancelCall",
        response_model=Cancelled,
        responses={200: {"description": "Cancelled: no worker will ever send it."}, **_responses(401, 404, 409, 503)},
    )
    def cancel_call(call_id: uuid.UUID) -> Cancelled:
        """Cancel a call no worker has started yet (scheduled or pending): it will never be sent, and
        `GET` answers `cancelled` from now on.  409 if a worker already started or finished it."""
        try:
            return gateway.cancel(str(call_id))
        except RedisError as exc:
            raise HTTPException(503, f"results store unavailable: {exc}") from None

    listed = ", ".join(sorted(gateway.actors)) or "none: DISPATCH_GATEWAY_ACTORS is empty"

    @app.post(
        "/tasks/{actor_name}",
        summary="Apply an actor",
        operation_id="applyTask",
        description="Queue `actor.send(*args, **kwargs)` for one of the dramatiq actors listed in "
        f"`DISPATCH_GATEWAY_ACTORS` (here: {listed}). Poll `status_url` (also in `Location`) for its outcome; "
        "a task cannot be cancelled.",
        status_code=202,
        response_model=Queued,
        responses={
            202: accepted_response,
            **_responses(
                401, 404, 413, 503, _404="No such actor: the gateway applies only those in DISPATCH_GATEWAY_ACTORS."
            ),
        },
    )
    def apply_task(actor_name: str, task: NewTask, request: Request, response: Response) -> Queued:
        call_id = gateway.submit_task(actor_name, task)
        status_url = request.scope.get("root_path", "") + app.url_path_for("get_call", call_id=call_id)
        response.headers["Location"] = status_url
        return Queued(id=call_id, status_url=status_url)

    return app


def serve(host: str, port: int) -> None:
    """Run the gateway with uvicorn until interrupted; ConfigurationError (before listening) if misconfigured."""
    app = create_app()
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")  # for "queued call" lines
    uvicorn.run(app, host=host, port=port, log_level="info")
