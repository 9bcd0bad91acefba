"""``dispatch call``: queue calls to URLs and, with ``--wait``, await and report their outcomes.

The arguments are checked first (bad input sends nothing, exit 2); then a
:class:`CallBatch` runs three steps -- send, await, report.  Ending early at
any step goes through :meth:`CallBatch.stop`, which shows every call queued so
far before the error, so no id is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape

from ..consumers import no_outcome_reason
from ..errors import DispatchError, ResultsUnavailable, ResultTimeout
from ..redaction import redact_url
from ..redis_errors import store_error_message
from ..settings import Settings
from .common import JsonOption, flag, load_settings
from .output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Output,
    describe,
    explain_broker_error,
    print_calls,
)

if TYPE_CHECKING:
    from ..url import URL


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
    from ..url import URL  # loads dramatiq: imported by the commands that send, not by --help

    urls: list[URL] = []
    values: dict[str, list[str]] = {}
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


def delay_ms(delay: float | None, wait_timeout: float | None) -> int | None:
    """``--delay`` in milliseconds, checked as ``URL.send_in`` checks it; ValueError says what is wrong.

    ``wait_timeout`` is --timeout when --wait is given: it counts from sending,
    so it must outlast the delay.
    """
    if delay is None:
        return None
    from ..url import MAX_DELAY

    if not 0 <= delay <= MAX_DELAY:  # also refuses nan
        raise ValueError(f"--delay takes 0 to {MAX_DELAY} seconds (30 days), not {delay:.15g}")
    if wait_timeout is not None and delay and wait_timeout <= delay:
        raise ValueError(
            f"--wait --timeout {wait_timeout:g} would end before the --delay of {delay:g}s is over; "
            "--timeout counts from sending, so give one longer than the delay"
        )
    return math.ceil(delay * 1000)


@dataclasses.dataclass
class CallBatch:
    """The calls one ``dispatch call`` sends: each call's record (id, request, state or outcome) and its handle."""

    output: Output
    settings: Settings
    wait: bool
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    handles: list[Any] = dataclasses.field(default_factory=list)

    def send(self, urls: list[URL], params: dict[str, str | list[str]], count: int, delay: int | None) -> None:
        """Queue ``count`` calls to each URL (``delay`` in ms, or None), showing each id the moment it is queued."""
        initial = "scheduled" if delay else "queued"
        try:
            from ..actor import default_dispatcher  # dramatiq and the broker: loaded only by commands that send

            dispatcher = default_dispatcher()
            for url in urls:
                for _ in range(count):
                    handle = dispatcher.send_with_options(args=(str(url), url.method, params, url.options), delay=delay)
                    self._queued(handle, url.method, initial)
        except ValueError as exc:  # the actor's own checks (parameter encoding, message size)
            self.stop(exc, describe(exc), EXIT_FAILED if self.calls else EXIT_USAGE)
        except DispatchError as exc:  # RabbitMQ unreachable or refusing
            self.stop(exc, explain_broker_error(exc, self.settings.broker_url))
        except KeyboardInterrupt:
            self.stop("interrupted", "interrupted while sending", EXIT_INTERRUPTED)

    def _queued(self, handle: Any, method: str, state: str) -> None:
        self.handles.append(handle)
        self.calls.append(
            {"message_id": handle.message_id, "method": method, "url": redact_url(handle.args[0]), "status": state}
        )
        if self.output.as_json:
            return
        if self.wait:
            self.output.note(f"queued {handle.message_id}")
        else:
            self.output.line(handle.message_id)

    def await_outcomes(self, timeout: float) -> None:
        """Wait for every outcome, all within ``timeout`` seconds; a call not finished by then ends as ResultTimeout."""
        deadline = time.monotonic() + timeout
        try:
            with _progress(self.output, len(self.handles)) as advance:
                for entry, handle in zip(self.calls, self.handles, strict=True):
                    entry.update(_outcome(handle, max(0.0, deadline - time.monotonic())))
                    advance()
        except KeyboardInterrupt:  # show what is known; the rest stay "queued", their ids printed
            self.stop("interrupted", "interrupted while waiting for outcomes", EXIT_INTERRUPTED)
        except Exception as exc:
            message = store_error_message(exc, self.settings.results_url)
            if message is None:
                raise
            self.stop(exc, message)
        _explain_timeouts(self.settings, self.calls, timeout)

    def report(self) -> None:
        """The outcomes on stdout (without --wait the ids are there already); exit 1 if a call failed."""
        failed = any(entry["status"] == "failure" for entry in self.calls)
        if self.output.as_json:
            self.output.json({"calls": self.calls})
        elif self.wait and len(self.calls) == 1:
            _print_single(self.output, self.calls[0])
        elif self.wait:
            print_calls(self.output, self.calls)
        if failed:
            raise typer.Exit(EXIT_FAILED)

    def stop(self, error: BaseException | str, message: str, code: int = EXIT_FAILED) -> NoReturn:
        """End early: every call queued so far is shown with its id (stdout), then the error (stderr)."""
        output, calls = self.output, self.calls
        if output.as_json:
            if code == EXIT_INTERRUPTED:
                output.json({"calls": calls})
                raise typer.Exit(code)
            output.fail(error, code, message, **({"calls": calls} if calls else {}))
        if self.wait and calls:
            print_calls(output, calls)  # without --wait each id is on stdout already
        if calls:
            output.note(f"{len(calls)} call(s) were queued; their ids are on stdout")
        if code == EXIT_INTERRUPTED:
            output.note(message)
            raise typer.Exit(code)
        output.fail(error, code, message)


def _outcome(handle: Any, timeout: float) -> dict[str, Any]:
    """Wait for one call; its result, or the error class and message it ended with."""
    from dramatiq.results import ResultFailure

    try:
        return {"status": "success", "result": handle.get(timeout=timeout)}
    except ResultsUnavailable:  # not this call's outcome: the wait stops, naming the store
        raise
    except (DispatchError, ResultFailure) as exc:
        return {"status": "failure", "error": {"type": type(exc).__name__, "message": str(exc)}}


def _explain_timeouts(settings: Settings, calls: list[dict[str, Any]], timeout: float) -> None:
    """Say why a call timed out when it is plain: no worker consumes the queue."""
    timed_out = [entry for entry in calls if entry.get("error", {}).get("type") == ResultTimeout.__name__]
    if not timed_out:
        return
    reason = no_outcome_reason(settings)
    for entry in timed_out:
        entry["error"]["message"] = f"no outcome after {timeout:g}s; {reason}"


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
    wait: Annotated[bool, flag("--wait", "-w", help="Wait for the outcome and print it.")] = False,
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
        delay_in_ms = delay_ms(delay, timeout if wait else None)
    except ValueError as exc:
        output.fail(exc, EXIT_USAGE)
    batch = CallBatch(output, settings, wait)
    batch.send(urls, params, count, delay_in_ms)
    if wait:
        batch.await_outcomes(timeout)
    batch.report()
