"""The gateway's request and response bodies: what the OpenAPI document states and FastAPI checks.

A call's fields are validated by :mod:`dispatch.validation` (its URL by
:mod:`dispatch.urlsafety`), so a body is judged exactly as ``URL.send()`` judges
its arguments, and its messages become the 422 details.  That includes the
ceilings of the per-call options (``MAX_TIMEOUT`` and the like), which the schema
states too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator
from typing_extensions import TypedDict

from ..url import MAX_DELAY
from ..urlsafety import check_url
from ..validation import (
    CALL_METHODS,
    MAX_ATTEMPTS,
    MAX_SCHEDULE_DELAY,
    MAX_SCHEDULE_ENTRIES,
    MAX_SCHEDULE_SPAN,
    MAX_TIMEOUT,
    check_headers,
    check_method,
    check_options,
    check_params,
    sends_json,
    shape_options,
)


class CallOptionsBody(TypedDict, total=False):
    """Per-call overrides of the worker's settings (``dispatch.validation.OPTIONS``)."""

    # The HTTP API's name for it (the schema's title and, below, its name) stays CallOptions.
    __pydantic_config__ = ConfigDict(extra="forbid", title="CallOptions")  # type: ignore[misc]
    # The bounds are dispatch.validation's, which refuses a value past them first (with its own message).
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


# A body's options, as sent (the worker resolves them with dispatch.options.CallOptions).  pydantic names a
# schema in the OpenAPI document after its class's __qualname__.
CallOptionsBody.__qualname__ = "CallOptions"


# JSON can put any type anywhere; dispatch.validation's checks expect Python callers, and
# check_method({}) or check_options([...]) would raise TypeError (a 500) instead of ValueError.
def _check_method(method: Any) -> str:
    if not isinstance(method, str):
        raise ValueError(
            f"method must be a string, one of {', '.join(sorted(CALL_METHODS))}, not {type(method).__name__}"
        )
    return check_method(method)


def _object_of(what: str, check: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """``check``, for an object only: null too is refused, as the document says an object (Python's None is {})."""

    def checked(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError(f"{what} must be an object, not {type(value).__name__}")
        return check(value)

    return checked


def _check_delay(delay: Any) -> Any:
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):  # pydantic would take true as 1
        raise ValueError(f"delay must be a number of seconds, 0 to {MAX_DELAY}, not {type(delay).__name__}")
    return delay


class NewCall(BaseModel):
    """A call to queue.  Each field is checked by ``dispatch.validation``, as ``URL.send()`` checks it."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, BeforeValidator(check_url)] = Field(
        description="Absolute http(s) URL of an endpoint speaking the callback protocol. A private address, "
        "loopback included, is refused (403) unless DISPATCH_ALLOWED_HOSTS opens it.",
        examples=["http://127.0.0.1:8000/multiply"],  # docs/gateway.md's example receiver
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
    headers: Annotated[dict[str, str], BeforeValidator(_object_of("headers", check_headers))] = Field(
        default_factory=dict,
        description="Extra request headers sent on every attempt. Names are HTTP tokens; Host, Content-Length, "
        "Transfer-Encoding, Idempotency-Key and webhook-* are the worker's. Credentials belong in the worker's "
        "destinations file (DISPATCH_DESTINATIONS), not here: these travel in the message.",
        examples=[{"X-Tenant": "acme"}],
    )
    body: Literal["form", "json"] = Field(
        "form", description="How params travel in a method with a body: form-encoded, or one JSON object."
    )
    options: Annotated[CallOptionsBody, BeforeValidator(_object_of("options", check_options))] = Field(
        default_factory=CallOptionsBody
    )
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


class Attempt(BaseModel):
    """One HTTP attempt of a call (``res.attempts()``'s entries)."""

    attempt: int = Field(description="Its number, from 1, over the call's whole life.")
    at: str = Field(description="When it started: ISO 8601, UTC, milliseconds.", examples=["2026-12-04T10:00:00.123Z"])
    duration_ms: float
    status_code: int | None = Field(description="The answer's HTTP status; null when none came (refused, timed out).")
    error: str | None = Field(description="The error class it ended with; null for the attempt that succeeded.")
    detail: str = Field(description="What happened, at most 300 characters; never a secret.")


class CallAttempts(BaseModel):
    """Every attempt of a call on record, oldest first (the last 100)."""

    id: str
    attempts: list[Attempt]
