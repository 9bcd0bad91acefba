"""The gateway's FastAPI app: its routes, their documented answers, and ``serve`` (uvicorn).

The routes are thin: each hands its checked body to :class:`~.service.Gateway` and
shapes the answer.  Two ASGI middlewares come first, in this order, so a request is
judged before anything reads its body: :class:`~.auth.BearerAuth` (401 without a
token, whatever the request), then :class:`~.limits.BodyLimit` (413).  Only the
OpenAPI document and its pages, and the console (mounted with its own sign-in),
are open without a token.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from redis.exceptions import RedisError
from starlette.routing import Match, Mount
from starlette.types import Scope

from .. import __version__
from ..console import create_console
from ..errors import ResultsUnavailable
from ..redaction import install_log_redaction, redact
from ..redis_errors import store_error_message
from ..runtime import get_runtime
from ..settings import Settings
from .auth import BearerAuth, bearer, check_tokens
from .limits import BodyLimit
from .models import CallAttempts, CallStatus, Cancelled, NewCall, NewTask, Problem, Queued, Status
from .service import Gateway


def _responses(*codes: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """Documented error answers; ``_404="..."`` words one differently for a route."""
    meaning = {
        400: "The body is not JSON text: it is not UTF-8.",
        401: "Missing or wrong bearer token.",
        403: "The destination policy refuses this URL (a private address); nothing was queued.",
        404: "No call with this id: never queued here, or its outcome has expired.",
        409: "The call cannot be cancelled: a worker already started or finished it "
        "(or it is a task applied over /tasks, which workers do not check for cancellation).",
        413: f"The body is larger than {Settings.env('gateway_max_body')} bytes; it was not read.",
        503: "RabbitMQ or Redis is unavailable; nothing was queued. Try again later.",
    }
    for name, text in meanings.items():
        meaning[int(name.lstrip("_"))] = text
    return {code: {"model": Problem, "description": meaning[code]} for code in codes}


def create_app(tokens: Sequence[str] | None = None, max_body: int | None = None) -> FastAPI:
    """The gateway app; ``tokens`` default to ``DISPATCH_GATEWAY_TOKEN``.  ConfigurationError if there are none.

    ``max_body`` defaults to ``DISPATCH_GATEWAY_MAX_BODY``: a larger request body is answered 413
    (:class:`BodyLimit`, right after the token is checked).

    Building it reads the settings and builds the broker, so a bad ``DISPATCH_*`` variable fails here,
    before serving.
    """
    tokens = check_tokens(get_runtime().settings.gateway_tokens if tokens is None else tokens)
    gateway = Gateway()

    app = FastAPI(
        title="dispatch gateway",
        version=__version__,
        description="Queue HTTP callback calls and read their outcomes. See docs/gateway.md.",
        dependencies=[Depends(bearer)],  # states the scheme in the document; BearerAuth checks it
    )
    app.add_middleware(BodyLimit, max_body=gateway.settings.gateway_max_body if max_body is None else max_body)
    app.add_middleware(BearerAuth, tokens=tokens, is_open=_open_without_token(app))  # the last added runs first

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, its messages and the input it echoes redacted (a URL's password, a header's secret)."""
        errors = json.dumps(jsonable_encoder(exc.errors()), ensure_ascii=False)
        return JSONResponse({"detail": json.loads(redact(errors))}, 422)

    @app.exception_handler(ResultsUnavailable)
    @app.exception_handler(RedisError)
    async def results_unavailable(request: Request, exc: Exception) -> JSONResponse:
        """503 wherever the results store fails: which Redis, what it said and the fix, never a secret."""
        message = store_error_message(exc, gateway.settings.results_url) or str(exc)
        return JSONResponse({"detail": message}, 503, {"Retry-After": "5"})

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        """405 naming in ``Allow`` every method the path takes (Starlette names those of its first route only)."""
        allowed = {
            method
            for route in app.routes
            if route.matches(request.scope)[0] is not Match.NONE
            for method in getattr(route, "methods", None) or ()
        }
        return JSONResponse({"detail": "Method Not Allowed"}, 405, {"Allow": ", ".join(sorted(allowed))})

    def queued(call_id: str, request: Request, response: Response) -> Queued:
        """202's body, its status URL also in ``Location``."""
        status_url = request.scope.get("root_path", "") + app.url_path_for("get_call", call_id=call_id)
        response.headers["Location"] = status_url
        return Queued(id=call_id, status_url=status_url)

    accepted_response = {
        "headers": {"Location": {"description": "The status URL, as in the body.", "schema": {"type": "string"}}},
        "links": {
            operation: {"operationId": operation, "parameters": {"call_id": "$response.body#/id"}}
            for operation in ("getCall", "cancelCall", "getCallAttempts")
        },
    }

    @app.post(
        "/calls",
        summary="Queue a call",
        operation_id="queueCall",
        status_code=202,
        response_model=Queued,
        responses={202: accepted_response, **_responses(400, 401, 403, 413, 503)},
    )
    def queue_call(call: NewCall, request: Request, response: Response) -> Queued:
        """Queue a call; a worker performs it (after `delay` seconds, if given). Poll `status_url` (also in
        `Location`) for the outcome."""
        return queued(gateway.submit(call), request, response)

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
        return gateway.status(str(call_id))

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
        return gateway.cancel(str(call_id))

    @app.get(
        "/calls/{call_id}/attempts",
        summary="Read every attempt of a call",
        operation_id="getCallAttempts",
        response_model=CallAttempts,
        responses=_responses(401, 404, 503),
    )
    def get_call_attempts(call_id: uuid.UUID) -> CallAttempts:
        """Every HTTP attempt of the call over its whole life, oldest first (the last 100): when, how long,
        the status it got (null when no answer came) and the error it ended with (null for the success)."""
        return gateway.attempts(str(call_id))

    actors_variable = Settings.env("gateway_actors")
    listed = ", ".join(sorted(gateway.actors)) or f"none: {actors_variable} is empty"
    # The document lists the actors; an unlisted name is the service's 404, not a validation error.
    actor_names = Path(json_schema_extra={"enum": sorted(gateway.actors)} if gateway.actors else None)

    @app.post(
        "/tasks/{actor_name}",
        summary="Apply an actor",
        operation_id="applyTask",
        description="Queue `actor.send(*args, **kwargs)` for one of the dramatiq actors listed in "
        f"`{actors_variable}` (here: {listed}). Poll `status_url` (also in `Location`) for its outcome; "
        "a task cannot be cancelled.",
        status_code=202,
        response_model=Queued,
        responses={
            202: accepted_response,
            **_responses(
                400, 401, 404, 413, 503, _404=f"No such actor: the gateway applies only those in {actors_variable}."
            ),
        },
    )
    def apply_task(task: NewTask, request: Request, response: Response, actor_name: str = actor_names) -> Queued:
        return queued(gateway.submit_task(actor_name, task), request, response)

    @app.get("/console", include_in_schema=False)
    def console_without_slash(request: Request) -> RedirectResponse:
        """The console lives at ``/console/``: an operator typing ``/console`` goes there, not to a JSON 401."""
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.scope.get('root_path', '')}/console/{query}", status_code=307)

    app.mount("/console", create_console(tokens, gateway))  # with its own sign-in: BearerAuth lets mounts through
    return app


def _open_without_token(app: FastAPI) -> Callable[[Scope], bool]:
    """Whether a request is for the OpenAPI document or its pages (nothing there is secret), or for an app
    mounted with a door of its own (the console, and ``/console`` leading to it); the app's routes are read per
    request, mounts added later too."""
    documents = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url, "/console"}

    def is_open(scope: Scope) -> bool:
        return any(
            (isinstance(route, Mount) or getattr(route, "path", None) in documents)
            and route.matches(scope)[0] is not Match.NONE
            for route in app.routes
        )

    return is_open


def serve(host: str, port: int) -> None:
    """Run the gateway with uvicorn until interrupted; ConfigurationError (before listening) if misconfigured."""
    app = create_app()
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")  # for "queued call" lines
    config = uvicorn.Config(app, host=host, port=port, log_level="info")  # sets up uvicorn's loggers and handlers
    install_log_redaction()  # on them and the root's handlers: every line the process writes is redacted
    uvicorn.Server(config).run()
