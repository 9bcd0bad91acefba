"""The ``dispatch`` command: send calls, watch the queues, run a worker or the gateway.

    dispatch call http://example.com/multiply x=10 y=10 --wait
    dispatch call http://example.com/multiply x=1 y=2 --delay 300
    dispatch result 7c0e9a1e-... --wait 30
    dispatch cancel 7c0e9a1e-...
    dispatch status --watch
    dispatch worker --processes 2 --threads 16
    dispatch gateway --port 8080

Results go to stdout, messages and errors to stderr.  On a terminal results
are Rich tables; piped, plain lines -- one record per line, tab-separated,
ids first and never wrapped -- for grep, cut and awk (see
:mod:`dispatch.cli_output`).  Every command takes ``--json``: one JSON
document on stdout (errors too, as ``{"error": {"type": ..., "message":
...}}``), no colours, no progress bars.  Errors name what was tried
(RabbitMQ host:port and vhost, Redis host:port/db, never a password) and
what to check.

Exit codes: 0 success; 1 a call failed, or a service could not be reached;
2 bad input or configuration (nothing was sent).

The commands are a Typer app; a group of commands is a sub-app of its own
(see the end of this file for where ``dispatch dead ...`` goes).  The
package's heavier parts (the broker, the gateway) are imported inside the
commands that need them, so ``dispatch --help`` is quick and works with no
services around.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape

from .cli_output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Output,
    describe,
    explain_broker_error,
    explain_redis_error,
    hosts_table,
    is_missing_queue,
    is_redis_error,
    print_calls,
    print_dead,
    print_result,
    status_line,
    status_table,
)
from .cluster import vhost_of
from .errors import ConfigurationError, DispatchError, ResultTimeout
from .settings import Settings

if TYPE_CHECKING:
    from .url import URL

CORES = os.cpu_count() or 1

app = typer.Typer(
    name="dispatch",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout; no colours.")]


def load_settings(output: Output) -> Settings:
    """The environment's settings, or exit 2 naming the bad variable."""
    try:
        return Settings.from_env()  # not wiring's: that module loads dramatiq, which status and --help never need
    except ConfigurationError as exc:
        output.fail(exc, EXIT_USAGE)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"dispatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Call any language over HTTP, reliably and asynchronously (Dramatiq + RabbitMQ + Redis)."""


# --- dispatch call ------------------------------------------------------------------------------


class Method(str, Enum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class Body(str, Enum):
    form = "form"
    json = "json"


def parse_headers(lines: list[str]) -> dict[str, str]:
    """``Name: value`` lines as a dict (checked later, with the call); ValueError for a line without a colon."""
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"--header {line!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def parse_targets(targets: list[str], method: str, **shape: Any) -> tuple[list[URL], dict[str, str | list[str]]]:
    """Split ``URL ... key=value ...`` into checked URLs and the parameters; ValueError says what is wrong.

    An argument is a URL when the text before its first ``=`` contains
    ``://`` (so ``http://h/p?a=1`` is a URL and ``next=http://h`` a
    parameter).  A repeated key sends the key once per value.  ``shape``
    (``headers``, ``body``) goes to every URL.
    """
    from .url import URL  # loads dramatiq: imported by the commands that send, not by --help

    urls, values = [], {}
    for arg in targets:
        name, has_value, value = arg.partition("=")
        if "://" in name:
            urls.append(URL(arg, method=method, **shape))
        elif has_value and name:
            values.setdefault(name, []).append(value)
        else:
            raise ValueError(f"{arg!r} is neither a URL (http://... or https://...) nor a parameter (key=value)")
    if not urls:
        raise ValueError("no URL given; URLs start with http:// or https://")
    return urls, {name: found[0] if len(found) == 1 else found for name, found in values.items()}


def _outcome(handle: Any, timeout: float) -> dict[str, Any]:
    """Wait for one call; its result, or the error class and message it ended with."""
    from dramatiq.results import ResultFailure

    try:
        return {"status": "success", "result": handle.get(timeout=timeout)}
    except (DispatchError, ResultFailure) as exc:
        return {"status": "failure", "error": {"type": type(exc).__name__, "message": str(exc)}}


@app.command()
def call(
    targets: Annotated[
        list[str],
        typer.Argument(metavar="URL... [KEY=VALUE]...", help="One or more URLs, and parameters sent to each."),
    ],
    method: Annotated[Method, typer.Option("--method", "-X", case_sensitive=False, help="HTTP method.")] = Method.GET,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            metavar="'NAME: VALUE'",
            help="An extra request header, sent on every attempt; repeat for more. "
            "Credentials belong in the destinations file, not here.",
            show_default=False,
        ),
    ] = None,
    body: Annotated[
        Body,
        typer.Option(help="How parameters travel with POST, PUT, PATCH and DELETE: a form, or one JSON object."),
    ] = Body.form,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the outcome and print it.")] = False,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds --wait waits for all the calls together.")] = 60.0,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Send each call this many times.")] = 1,
    delay: Annotated[
        float | None,
        typer.Option(
            "--delay",
            "-d",
            metavar="SECONDS",
            help="Perform each call no earlier than SECONDS from now (0 to 30 days); "
            "with --wait, --timeout counts from sending, so it must cover the delay.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue calls to URLs and print their message ids; with --wait, their outcomes.

    Parameters go in the query string (GET) or the body (POST, PUT, PATCH,
    DELETE): a form, or with --body json one JSON object of strings.  Every
    argument is checked before anything is sent: bad input sends nothing.

    --delay SECONDS schedules every call for later (like URL.send_in): until
    then it is `scheduled`, and `dispatch cancel ID` can still stop it.
    With --wait, --timeout counts from sending, delay included, so a
    --timeout not longer than the delay is refused (exit 2).

    Each id is printed the moment its call is queued -- on stdout, or with
    --wait on stderr (stdout then gets the outcomes) -- so it is never lost
    to a later failure.  If the outcomes cannot be read (Redis down,
    Ctrl-C), stdout gets every call's id and state.  --json prints one
    document at the end, always, with an "error" key if something failed.
    """
    output = Output(as_json)
    settings = load_settings(output)
    try:
        urls, params = parse_targets(targets, method.value, headers=parse_headers(header or []), body=body.value)
        delay_ms = _delay_ms(delay, timeout if wait else None)
    except ValueError as exc:
        output.fail(exc, EXIT_USAGE)
    initial = "scheduled" if delay_ms else "queued"

    calls: list[dict[str, Any]] = []
    handles: list[Any] = []

    def stop(error: BaseException | str, message: str, code: int = EXIT_FAILED) -> NoReturn:
        """End early: every call queued so far is shown with its id (stdout), then the error (stderr)."""
        if as_json:
            if code == EXIT_INTERRUPTED:
                output.json({"calls": calls})
                raise typer.Exit(code)
            output.fail(error, code, message, **({"calls": calls} if calls else {}))
        if wait and calls:
            print_calls(output, calls)  # without --wait each id is on stdout already
        if calls:
            output.note(f"{len(calls)} call(s) were queued; their ids are on stdout")
        if code == EXIT_INTERRUPTED:
            output.note(message)
            raise typer.Exit(code)
        output.fail(error, code, message)

    try:
        from .actor import default_dispatcher  # dramatiq and the broker: loaded only by commands that send

        dispatcher = default_dispatcher()
        for url in urls:
            for _ in range(count):
                handle = dispatcher.send_with_options(args=(str(url), url.method, params, url.options), delay=delay_ms)
                handles.append(handle)
                entry = {"message_id": handle.message_id, "method": url.method, "url": handle.args[0]}
                calls.append({**entry, "status": initial})
                if as_json:
                    continue
                if wait:
                    output.note(f"queued {handle.message_id}")
                else:
                    output.line(handle.message_id)
    except ValueError as exc:  # the actor's own checks (parameter encoding, message size)
        stop(exc, describe(exc), EXIT_FAILED if calls else EXIT_USAGE)
    except DispatchError as exc:  # RabbitMQ unreachable or refusing
        stop(exc, explain_broker_error(exc, settings.broker_url))
    except KeyboardInterrupt:
        stop("interrupted", "interrupted while sending", EXIT_INTERRUPTED)

    if wait:
        deadline = time.monotonic() + timeout
        try:
            with _progress(output, len(handles)) as advance:
                for entry, handle in zip(calls, handles, strict=True):
                    entry.update(_outcome(handle, max(0.0, deadline - time.monotonic())))
                    advance()
        except KeyboardInterrupt:  # show what is known; the rest stay "queued", their ids printed
            stop("interrupted", "interrupted while waiting for outcomes", EXIT_INTERRUPTED)
        except Exception as exc:
            if not is_redis_error(exc):
                raise
            stop(exc, explain_redis_error(exc, settings.results_url))
        _explain_timeouts(settings, calls, timeout)

    failed = any(entry["status"] == "failure" for entry in calls)
    if as_json:
        output.json({"calls": calls})
    elif wait and len(calls) == 1:
        _print_single(output, calls[0])
    elif wait:
        print_calls(output, calls)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _delay_ms(delay: float | None, wait_timeout: float | None) -> int | None:
    """``--delay`` in milliseconds, checked as ``URL.send_in`` checks it; ValueError says what is wrong.

    ``wait_timeout`` is --timeout when --wait is given: it counts from sending,
    so it must outlast the delay.
    """
    if delay is None:
        return None
    from .url import MAX_DELAY

    if not 0 <= delay <= MAX_DELAY:  # also refuses nan
        raise ValueError(f"--delay takes 0 to {MAX_DELAY} seconds (30 days), not {delay:.15g}")
    if wait_timeout is not None and delay and wait_timeout <= delay:
        raise ValueError(
            f"--wait --timeout {wait_timeout:g} would end before the --delay of {delay:g}s is over; "
            "--timeout counts from sending, so give one longer than the delay"
        )
    return math.ceil(delay * 1000)


def _no_outcome_reason(settings: Settings) -> str:
    """Why a call still has no outcome, when it is plain: no worker consumes the queue."""
    consumers = _consumer_count(settings)
    if consumers == 0:
        return (
            f"no worker is consuming queue {settings.queue!r} -- start one with "
            "`dispatch worker` (or `dramatiq dispatch.tasks`); the call stays queued until then"
        )
    if consumers:
        return f"{consumers} worker(s) consume queue {settings.queue!r}: the call is still queued or running"
    return "the call may still be queued or running"


def _explain_timeouts(settings: Settings, calls: list[dict[str, Any]], timeout: float) -> None:
    """Say why a call timed out when it is plain: no worker consumes the queue."""
    timed_out = [entry for entry in calls if entry.get("error", {}).get("type") == ResultTimeout.__name__]
    if not timed_out:
        return
    reason = _no_outcome_reason(settings)
    for entry in timed_out:
        entry["error"]["message"] = f"no outcome after {timeout:g}s; {reason}"


def _consumer_count(settings: Settings) -> int | None:
    """How many consumers the calls queue has, asked of RabbitMQ over AMQP (no plugin needed); None if unknown."""
    if settings.broker_url.startswith("stub:"):
        return None
    import pika

    from .cluster import connection_parameters

    parameters = connection_parameters(settings.broker_url)
    for node in parameters:
        node.connection_attempts, node.socket_timeout, node.blocked_connection_timeout = 1, 5, 5
    try:
        connection = pika.BlockingConnection(parameters)
    except Exception:
        return None
    try:
        return connection.channel().queue_declare(settings.queue, passive=True).method.consumer_count
    except Exception as exc:
        return 0 if is_missing_queue(exc) else None
    finally:
        with suppress(Exception):
            connection.close()


@contextmanager
def _progress(output: Output, total: int) -> Iterator[Callable[[], None]]:
    """A Rich progress bar on stderr while several calls are awaited; ``advance()`` after each one.

    Nothing is drawn for a single call, with --json, or when stderr is not a terminal.
    """
    if total < 2 or output.as_json or not output.err.is_terminal:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("waiting for calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=output.err, transient=True) as bar:
        task = bar.add_task("calls", total=total)
        yield lambda: bar.advance(task)


def _print_single(output: Output, entry: dict[str, Any]) -> None:
    """The result alone on stdout, so ``$(dispatch call --wait ...)`` captures just that (its id went to stderr)."""
    if entry["status"] == "success":
        print(json.dumps(entry["result"], ensure_ascii=False), flush=True)
    elif entry["status"] == "failure":
        error = entry["error"]
        output.err.print(f"[bold red]{error['type']}[/]: {escape(error['message'])}")


# --- dispatch result and cancel ----------------------------------------------------------------

CallIdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The call's message id, as `dispatch call` printed it.", show_default=False)
]


def _call_id(output: Output, text: str) -> str:
    """The id in its canonical form (a UUID, as dramatiq makes them), or exit 2: nothing is read or changed."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        output.fail(
            f"{text!r} is not a call id; ids are UUIDs such as 7c0e9a1e-3b5f-4c1d-9a57-0e5f1c2d3b4a", EXIT_USAGE
        )


@contextmanager
def _reading_outcomes(output: Output, settings: Settings) -> Iterator[None]:
    """Redis unreachable: exit 1 naming where it was looked for; Ctrl-C: exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        output.note("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        if not is_redis_error(exc):
            raise
        output.fail(exc, message=explain_redis_error(exc, settings.results_url))


def _read_now(handle: Any) -> dict[str, Any]:
    """``{"id", "state"}`` and, for a finished call, ``"result"`` or ``"error"`` -- without waiting."""
    snapshot = handle.snapshot()
    entry: dict[str, Any] = {"id": handle.message_id, "state": snapshot.state}
    if snapshot.state == "success":
        entry["result"] = snapshot.result
    elif snapshot.error_type is not None:  # read as stored, with the worker's own class name
        entry["error"] = {"type": snapshot.error_type, "message": snapshot.error_message}
    return entry


def _wait_for(handle: Any, seconds: float, settings: Settings) -> dict[str, Any]:
    """The outcome once there is one, within ``seconds``; else the state now, with a ResultTimeout error."""
    try:
        handle.get(timeout=seconds)
    except ResultTimeout:
        entry = {"id": handle.message_id, "state": handle.state()}
        if entry["state"] == "scheduled":
            reason = "it is scheduled for later and its time has not come yet"
        elif entry["state"] == "started":
            reason = "a worker is performing it and has not finished"
        else:
            reason = _no_outcome_reason(settings) + " (or no call has this id, or its outcome has expired)"
        message = f"no outcome for call {handle.message_id} after {seconds:g}s; {reason}"
        return {**entry, "error": {"type": ResultTimeout.__name__, "message": message}}
    except DispatchError:
        pass  # a stored failure: read as stored below, with the worker's own class name
    return _read_now(handle)


@app.command()
def result(
    call_id: CallIdArgument,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            "-w",
            min=0,
            metavar="SECONDS",
            help="Wait up to SECONDS for the outcome; then exit 1 if there is none.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a call's outcome, or where it stands: any call, sent from any process.

    States: success (with the result), failure (with the error's class and
    message), cancelled, scheduled (sent with a delay, its time not come),
    started (a worker is performing it) or pending (queued -- or an id
    nobody knows, or whose outcome expired after DISPATCH_RESULT_TTL).

    Piped: one line, `ID<tab>state<tab>outcome`, the outcome being the
    result as JSON, `ErrorType: message`, or `-`.  --json:
    {"id", "state", "result"} or {"id", "state", "error": {"type", "message"}}.

    Exit 0 when the call succeeded or has no outcome yet (without --wait);
    1 when it failed or was cancelled, when --wait ran out of time
    (ResultTimeout), or Redis could not be reached; 2 for an ID that is not
    a call id.
    """
    output = Output(as_json)
    settings = load_settings(output)
    call_id = _call_id(output, call_id)
    from .result import CallResult  # dramatiq and Redis: loaded by the commands that read outcomes

    handle = CallResult.from_id(call_id)
    with _reading_outcomes(output, settings):
        entry = _wait_for(handle, wait, settings) if wait else _read_now(handle)
    timed_out = entry.get("error", {}).get("type") == ResultTimeout.__name__
    if as_json:
        output.json(entry)
    else:
        print_result(output, entry)
        if timed_out:
            output.err.print(f"[bold red]error:[/] {escape(entry['error']['message'])}")
    if timed_out or entry["state"] in ("failure", "cancelled"):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def cancel(call_id: CallIdArgument, as_json: JsonOption = False) -> None:
    """Cancel a call no worker has started (e.g. one sent with --delay): it will never be sent.

    Piped: `ID<tab>cancelled` (exit 0), or `ID<tab>not_cancelled` (exit 1)
    when a worker already started or finished the call.  --json:
    {"id", "cancelled": true|false, "state"}.  Afterwards `dispatch result
    ID` shows `cancelled`, and waiting on it ends with CallCancelled.  An id
    no call has yet is cancelled too: ids are not recorded at send, so a call
    sent later under it would be skipped.
    """
    output = Output(as_json)
    settings = load_settings(output)
    call_id = _call_id(output, call_id)
    from .result import CallResult  # dramatiq and Redis: loaded by the commands that read outcomes

    handle = CallResult.from_id(call_id)
    with _reading_outcomes(output, settings):
        cancelled = handle.cancel()
        state = "cancelled" if cancelled else handle.state()
    if as_json:
        output.json({"id": call_id, "cancelled": cancelled, "state": state})
    elif output.tty:
        if cancelled:
            output.out.print(f"cancelled call {call_id}: it will never be sent")
    else:
        output.line(call_id, "cancelled" if cancelled else "not_cancelled")
    if not cancelled:
        output.note(f"call {call_id} cannot be cancelled: it already started or finished (state: {state})")
        raise typer.Exit(EXIT_FAILED)


@app.command()
def hosts(as_json: JsonOption = False) -> None:
    """Show each destination's limits, calls in flight and breaker state, across all workers.

    The hosts are those of the destinations file (DISPATCH_DESTINATIONS), and
    any other host a worker has limited.  Breaker: closed, open (its calls
    wait), half-open (one probe call is deciding), or off.  Piped: one line
    per host, `host<tab>max_concurrency<tab>rate<tab>in_flight<tab>breaker<tab>failures`.
    --json: a list of objects with those keys.
    """
    output = Output(as_json)
    settings = load_settings(output)
    if not settings.destinations:
        output.fail("no destinations file: set DISPATCH_DESTINATIONS (docs/destinations.md)")
    from .wiring import get_broker  # dramatiq and Redis: loaded by the commands that read them

    flow = get_broker().flow_control
    if flow is None:
        output.fail(f"{settings.destinations.path} sets no limit or breaker, so there is no state to show")
    with _reading_outcomes(output, settings):
        states = flow.host_states()
    if as_json:
        output.json([dataclasses.asdict(state) for state in states])
    elif output.tty:
        output.out.print(hosts_table(states))
    else:
        for s in states:
            output.line(s.host, s.max_concurrency, s.rate, s.in_flight, s.breaker, s.failures)


# --- dispatch status ----------------------------------------------------------------------------


@app.command()
def status(
    watch: Annotated[bool, typer.Option("--watch", "-W", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")] = 2.0,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="With --watch, stop after this many refreshes (for scripts).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the dispatch queues: ready, unacked, delayed and dead calls, consumers, rates.

    Read from RabbitMQ's management API at DISPATCH_MANAGEMENT_URL (default
    http://guest:guest@127.0.0.1:15672), for DISPATCH_QUEUE in the vhost of
    DISPATCH_BROKER_URL.  RabbitMQ refreshes these numbers every few seconds.
    With --watch --json, one JSON line per refresh.
    """
    output = Output(as_json)
    settings = load_settings(output)
    if settings.broker_url.startswith("stub:"):
        output.fail("DISPATCH_BROKER_URL is stub://: there is no RabbitMQ to ask", EXIT_USAGE)
    from .management import Management, ManagementError  # requests: loaded by this command only

    try:
        management = Management(settings.management_url)
    except ManagementError as exc:
        output.fail(exc, EXIT_USAGE)
    vhost = vhost_of(settings.broker_url)

    def show() -> None:
        """One snapshot: a table on a terminal, one line in a pipe, one JSON document with --json."""
        try:
            current = management.dispatch_status(vhost, settings.queue)
        except ManagementError as exc:
            output.fail(exc)
        if as_json:
            output.json(current.summary())
        elif output.tty and live is not None:
            live.update(status_table(current), refresh=True)
        elif output.tty:
            output.out.print(status_table(current))
        else:
            print(status_line(current.summary()), flush=True)

    live = None
    if not watch:
        show()
        return
    if output.tty:
        from rich.live import Live

        live = Live(console=output.out)
    shown = 0
    with suppress(KeyboardInterrupt), live or nullcontext():
        while iterations is None or shown < iterations:
            if shown:
                time.sleep(interval)  # the refresh period asked for, not a synchronisation
            show()
            shown += 1


# --- dispatch worker ----------------------------------------------------------------------------


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes (default: one per core).")] = CORES,
    threads: Annotated[int, typer.Option(min=1, help="Threads per process, each performing one call at a time.")] = 8,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Export Prometheus metrics on this port (sets DISPATCH_METRICS_PORT)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command instead of running it.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a worker: `dramatiq dispatch.tasks` with these defaults.

    Any other arguments are passed on to dramatiq (see `python -m dramatiq --help`),
    e.g. `dispatch worker --processes 2 --watch .`.
    """
    output = Output(as_json)
    load_settings(output)
    env = {}
    broker = "dispatch.tasks"
    if metrics_port is not None:
        from .metrics import require_prometheus_client

        try:
            require_prometheus_client()
        except ConfigurationError as exc:
            output.fail(exc, EXIT_USAGE)
        env["DISPATCH_METRICS_PORT"] = str(metrics_port)
    argv = [sys.executable, "-m", "dramatiq", broker, *ctx.args, "--processes", str(processes)]
    argv += ["--threads", str(threads)]
    if dry_run:
        if as_json:
            output.json({"argv": argv, "env": env})
        else:
            print(" ".join([*(f"{k}={v}" for k, v in env.items()), *argv]))
        return
    if as_json:
        output.json({"exec": argv, "env": env})
    os.environ.update(env)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


# --- dispatch gateway ---------------------------------------------------------------------------


@app.command()
def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    as_json: JsonOption = False,
) -> None:
    """Run the HTTP gateway, which takes calls over HTTP (needs the `gateway` extra)."""
    output = Output(as_json)
    load_settings(output)
    try:
        from .gateway import serve
    except ImportError as exc:
        output.fail(
            f"the HTTP gateway is not installed ({exc}); install it with: pip install 'dispatch[gateway]'",
        )
    try:
        serve(host, port)  # logs where it listens once it does
    except ConfigurationError as exc:  # e.g. no DISPATCH_GATEWAY_TOKEN
        output.fail(exc, EXIT_USAGE)
    except KeyboardInterrupt:
        pass


# --- dispatch dead -------------------------------------------------------------------------------

dead = typer.Typer(help="List, replay or purge dead letters (calls that failed for good, in <queue>.XQ).")
app.add_typer(dead, name="dead", no_args_is_help=True)


def _dead_letters(output: Output, action: str, empty: Any) -> Any:
    """Run ``action`` of dispatch.deadletters (with its arguments) and return its result.

    A dead-letter queue that does not exist yet holds nothing: ``empty`` is
    returned, with a note.  Any other failure exits naming what was tried.
    """
    settings = load_settings(output)
    if settings.broker_url.startswith("stub:"):
        output.fail("DISPATCH_BROKER_URL is stub://: there is no dead-letter queue", EXIT_USAGE)
    from . import deadletters  # pika and dramatiq: loaded by these commands only

    def run(*args: Any) -> Any:
        try:
            return getattr(deadletters, action)(*args)
        except Exception as exc:  # pika's connection and channel errors have no common public base
            if is_missing_queue(exc):
                output.note(
                    f"no dead-letter queue {settings.queue + '.XQ'!r} in vhost {vhost_of(settings.broker_url)!r} "
                    "yet: nothing has failed on it (is DISPATCH_QUEUE right?)"
                )
                return empty
            if is_redis_error(exc):
                output.fail(exc, message=explain_redis_error(exc, settings.results_url))
            output.fail(exc, message=explain_broker_error(exc, settings.broker_url))

    return run


@dead.command("list")
def dead_list(
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The dead calls, oldest first: message id, time, method, URL, error. The queue is left unchanged.

    Piped, one call per line, tab-separated in that order, so
    `dispatch dead list | grep ... | cut -f1` gives ids for `dispatch dead replay`.
    """
    output = Output(as_json)
    letters = _dead_letters(output, "list_dead", [])(limit)
    if as_json:
        output.json([letter.asdict() for letter in letters])
    else:
        print_dead(output, letters)


@dead.command("replay")
def dead_replay(
    message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids to replay.", show_default=False)] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead call.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead calls again under their own ids; each dead letter is removed only once its copy is confirmed.

    Piped, one line per id: `ID<tab>replayed` or `ID<tab>not_found`.
    """
    output = Output(as_json)
    if bool(message_ids) == replay_all:
        output.fail("name the message ids to replay, or pass --all (not both)", EXIT_USAGE)
    replayed = _dead_letters(output, "replay", [])(None if replay_all else set(message_ids or ()))
    replayed = list(dict.fromkeys(replayed))  # a replay that died again at once can be fetched twice
    missing = sorted(set(message_ids or ()) - set(replayed))
    if as_json:
        output.json({"replayed": replayed, "not_found": missing})
    elif output.tty:
        output.out.print(
            f"replayed {len(replayed)} call(s)" + (f"; not found: {', '.join(missing)}" if missing else "")
        )
    else:
        output.note(f"replayed {len(replayed)} call(s)" + (f", {len(missing)} not found" if missing else ""))
        for message_id in replayed:
            output.line(message_id, "replayed")
        for message_id in missing:
            output.line(message_id, "not_found")
    if missing:
        raise typer.Exit(EXIT_FAILED)


@dead.command("purge")
def dead_purge(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every dead call."""
    output = Output(as_json)
    run = _dead_letters(output, "purge", 0)
    if not yes and not as_json and not typer.confirm("Delete every dead call?"):
        raise typer.Exit(EXIT_FAILED)
    purged = run()
    if as_json:
        output.json({"purged": purged})
    else:
        output.out.print(f"purged {purged} dead call(s)")


def main() -> None:
    """The console script's entry point."""
    app()


if __name__ == "__main__":
    main()
