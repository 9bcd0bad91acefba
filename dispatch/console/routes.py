"""The console's pages and forms: server-rendered Jinja2 templates, readable without JavaScript.

:func:`create_console` builds the app the gateway mounts under ``/console``: the pages
(overview, a call, dead letters, hosts), the sign-in form, and the forms that act (cancel
a call, replay or discard dead letters after a confirmation, close a breaker).  Every form
posts a CSRF token, checked before it acts; every action answers with a redirect to the
page that shows its effect.  Pages that watch something moving (the overview, the hosts,
a call in flight) reload themselves with ``<meta http-equiv="refresh">``, which the
operator can turn off.  The :class:`~.guard.Guard` around the app lets no request in
without a session or a bearer token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from . import views
from .guard import SESSION_COOKIE, Guard
from .session import SESSION_SECONDS, SIGN_IN_SECONDS, Session, Sessions, same_nonce, sign_in_nonce

HERE = Path(__file__).resolve().parent

#: The cookie of the sign-in form's double-submit token.
SIGN_IN_COOKIE = "dispatch_console_sign_in"

#: What a call id looks like (dramatiq's are UUIDs); anything else is not looked up.
CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

#: Seconds between reloads of a live page.
REFRESH_SECONDS = 3

ACTIONS = ("replay", "discard")

T = TypeVar("T")


def base(request: Request) -> str:
    """Where the console is mounted (``/console``, or under a proxy's prefix): every link starts here."""
    return str(request.scope.get("root_path", ""))


def _go(request: Request, path: str, **query: Any) -> RedirectResponse:
    """303 to ``path`` inside the console: the page that shows what a form did."""
    suffix = f"?{urlencode(query)}" if query else ""
    return RedirectResponse(f"{base(request)}{path}{suffix}", status_code=303)


def _safe_next(request: Request, target: str) -> str:
    """Where to go after signing in: a path inside the console, else its overview (no open redirect)."""
    root = base(request) + "/"
    if target.startswith(root) and not target.startswith("//") and "\\" not in target:
        return target
    return root


def create_console(tokens: Sequence[str], desk: views.CallDesk) -> ASGIApp:
    """The console app, to be mounted at ``/console``: sign in with one of ``tokens`` (already checked).

    ``desk`` answers for one call as the gateway's ``GET``/``DELETE /calls/{id}`` do.
    """
    sessions = Sessions(tokens)
    templates = Jinja2Templates(directory=HERE / "templates")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = getattr(request.state, "session", None)
        signed_in = session is not None
        csrf = sessions.csrf_token(session) if session is not None and session.session_id else ""
        liveable = context.pop("live", False)
        live = liveable and request.query_params.get("live") != "0"
        shared = {"base": base(request), "signed_in": signed_in, "csrf": csrf, "liveable": liveable, "live": live}
        return templates.TemplateResponse(
            request,
            template,
            {**shared, "refresh_seconds": REFRESH_SECONDS, **context},
            status_code=status,
        )

    def sign_in_page(request: Request, status: int = 401, refused: bool = False, after: str = "") -> Response:
        """The sign-in form; once signed in, the operator goes on to ``after`` (default: the page asked for)."""
        nonce = sign_in_nonce()
        asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        next_page = _safe_next(request, after or (asked if request.method == "GET" else ""))
        response = render(request, "sign_in.html", status, nonce=nonce, next_page=next_page, refused=refused)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="dispatch"'
        _cookie(request, response, SIGN_IN_COOKIE, nonce, SIGN_IN_SECONDS, "/sign-in")
        if SESSION_COOKIE in request.cookies:  # expired or forged: drop it
            response.delete_cookie(SESSION_COOKIE, path=base(request) + "/")
        return response

    async def checked_form(request: Request, max_fields: int = 16) -> FormData:
        """The posted form, once its CSRF token is this session's (403 otherwise); parsed after the guard."""
        form = await request.form(max_files=0, max_fields=max_fields)
        if not sessions.csrf_ok(request.state.session, str(form.get("csrf", ""))):
            raise HTTPException(403, "This form did not come from this console, or it has expired: reload the page.")
        return form

    @app.exception_handler(StarletteHTTPException)
    async def problem(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "problem.html", exc.status_code, detail=exc.detail)

    @app.get("/sign-in")
    def show_sign_in(request: Request) -> Response:
        if sessions.verify(request.cookies.get(SESSION_COOKIE, "")) is not None:
            return _go(request, "/")
        return sign_in_page(request, 200)

    @app.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        if not same_nonce(request.cookies.get(SIGN_IN_COOKIE, ""), str(form.get("nonce", ""))):
            raise HTTPException(403, "This sign-in form did not come from this console, or it has expired.")
        key_id = sessions.key_id_for(str(form.get("token", "")))
        if key_id is None:
            return sign_in_page(request, 401, refused=True, after=str(form.get("next", "")))
        response = RedirectResponse(_safe_next(request, str(form.get("next", ""))), status_code=303)
        _cookie(request, response, SESSION_COOKIE, sessions.issue(key_id), SESSION_SECONDS, "/")
        response.delete_cookie(SIGN_IN_COOKIE, path=base(request) + "/sign-in")
        return response

    @app.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        await checked_form(request)
        response = _go(request, "/sign-in")
        response.delete_cookie(SESSION_COOKIE, path=base(request) + "/")
        return response

    @app.get("/")
    def overview(request: Request) -> Response:
        return render(request, "overview.html", page="overview", live=True, overview=views.overview())

    @app.get("/calls")
    def find_call(request: Request, id: str = "") -> Response:  # id: the search box field
        call_id = id.strip()
        return _go(request, f"/calls/{quote(call_id, safe='')}") if call_id else _go(request, "/")

    @app.get("/calls/{call_id}")
    def call(request: Request, call_id: str) -> Response:
        if not CALL_ID.fullmatch(call_id):
            raise HTTPException(404, "That is not a call id.")
        shown = views.call_page(desk, call_id)
        waiting = not shown.recorded or shown.state in ("scheduled", "pending", "started")  # live until an outcome
        return render(
            request, "call.html", 200 if shown.found else 503, page="call", call=shown, live=waiting,
            cancel=request.query_params.get("cancel"), replayed=request.query_params.get("replayed") == "1",
        )  # fmt: skip

    @app.post("/calls/{call_id}/cancel")
    async def cancel(request: Request, call_id: str) -> Response:
        await checked_form(request)
        if not CALL_ID.fullmatch(call_id):
            raise HTTPException(404, "That is not a call id.")
        refused = await run_in_threadpool(views.cancel, desk, call_id)
        return _go(request, f"/calls/{call_id}", cancel="refused" if refused else "done")

    def available(part: views.Part[T]) -> T:
        """The part's value; its failure (RabbitMQ or Redis down) is the problem page, 503, saying why."""
        if part.error is not None:
            raise HTTPException(503, part.error)
        return cast(T, part.value)

    @app.get("/dead")
    def dead(request: Request, host: str = "", error: str = "") -> Response:
        shown = available(views.gather(lambda: views.dead_page(host, error), "the dead letters"))
        done = {
            k: int(v)
            for k, v in request.query_params.items()
            if k in ("replayed", "discarded", "missed") and v.isdigit()
        }
        return render(request, "dead.html", page="dead", dead=shown, host=host, error=error, done=done)

    @app.post("/dead/confirm")
    async def confirm(request: Request) -> Response:
        form = await checked_form(request, views.DEAD_LETTERS_SHOWN + 8)
        action, _, one = str(form.get("one", "")).partition(":")
        ids = [one] if one else [str(value) for value in form.getlist("id")]
        action = action or str(form.get("action", ""))
        if action not in ACTIONS:
            raise HTTPException(400, "Choose to replay or to discard.")
        if not ids:
            return _go(request, "/dead")
        letters = available(await run_in_threadpool(views.gather, lambda: views.dead_letters(ids), "the dead letters"))
        return render(request, "confirm.html", page="dead", action=action, letters=letters, asked=len(ids))

    @app.post("/dead/{action}")
    async def act(request: Request, action: str) -> Response:
        form = await checked_form(request, views.DEAD_LETTERS_SHOWN + 8)
        if action not in ACTIONS:
            raise HTTPException(404, "No such action.")
        ids = [str(value) for value in form.getlist("id")]
        acted = await run_in_threadpool(views.act_on_dead, action, ids)
        if acted.error is not None:  # say what was done before it stopped: acting again would skip those
            return render(request, "problem.html", 503, detail=acted.error, action=action, done=acted.done, asked=ids)
        done = acted.done or []
        if action == "replay" and len(ids) == len(done) == 1:
            return _go(request, f"/calls/{quote(done[0], safe='')}", replayed=1)
        return _go(request, "/dead", **{f"{action}ed": len(done), "missed": len(ids) - len(done)})

    @app.get("/hosts")
    def hosts(request: Request) -> Response:
        shown = views.gather(views.hosts, "the hosts")
        closed = request.query_params.get("closed")
        known = {row.state.host for row in shown.value or ()}
        return render(
            request, "hosts.html", page="hosts", hosts=shown, live=True, closed=closed if closed in known else None
        )

    @app.post("/hosts/close-breaker")
    async def close_breaker(request: Request) -> Response:
        form = await checked_form(request)
        host = str(form.get("host", ""))
        closing = await run_in_threadpool(views.gather, lambda: views.close_breaker(host), f"{host}'s breaker", "close")
        available(closing)
        return _go(request, "/hosts", closed=host)

    return Guard(app, sessions, sign_in_page)


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int, path: str) -> None:
    """A cookie scripts cannot read, sent to this console only, never from another site; Secure over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=base(request) + path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
