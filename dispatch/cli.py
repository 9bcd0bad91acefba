"""The ``dispatch`` command: send calls, watch the queues, run a worker or the gateway.

    dispatch call http://example.com/multiply x=10 y=10 --wait
    dispatch status --watch
    dispatch worker --processes 2 --threads 16
    dispatch gateway --port 8080

Every command takes ``--json``: machine-readable output on stdout (errors
too, as ``{"error": {"type": ..., "message": ...}}``), no colours, no
progress bars.  Without it, results go to stdout and messages to stderr.

Exit codes: 0 success; 1 a call failed, or a service could not be reached;
2 bad input or configuration (nothing was sent).

The commands are a Typer app; a group of commands is a sub-app of its own
(see the end of this file for where ``dispatch dead ...`` goes).  The
package's heavier parts (the broker, the gateway) are imported inside the
commands that need them, so ``dispatch --help`` is quick and works with no
services around.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from enum import Enum
from typing import Annotated, Any, NoReturn

import typer
from dramatiq.results import ResultFailure
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from .errors import ConfigurationError, DispatchError
from .management import DispatchStatus, Management, ManagementError, vhost_of
from .settings import Settings
from .url import URL
from .wiring import get_settings

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C

CORES = os.cpu_count() or 1

app = typer.Typer(
    name="dispatch",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout; no colours.")]


class Output:
    """Where a command's results and errors go: JSON on stdout with ``--json``, Rich otherwise."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def json(self, data: Any) -> None:
        print(json.dumps(data, ensure_ascii=False, default=str), flush=True)

    def note(self, text: str) -> None:
        """A message for the human at the terminal; dropped with --json."""
        if not self.as_json:
            self.err.print(text)

    def fail(self, error: BaseException | str, code: int = EXIT_FAILED) -> NoReturn:
        """Report ``error`` and exit with ``code``."""
        kind = type(error).__name__ if isinstance(error, BaseException) else "Error"
        if self.as_json:
            self.json({"error": {"type": kind, "message": str(error)}})
        else:
            self.err.print(f"[bold red]error:[/] {escape(str(error))}")
        raise typer.Exit(code)


def load_settings(output: Output) -> Settings:
    """The environment's settings, or exit 2 naming the bad variable."""
    try:
        return get_settings()
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


def parse_targets(targets: list[str], method: str) -> tuple[list[URL], dict[str, str | list[str]]]:
    """Split ``URL ... key=value ...`` into checked URLs and the parameters; ValueError says what is wrong.

    An argument is a URL when the text before its first ``=`` contains
    ``://`` (so ``http://h/p?a=1`` is a URL and ``next=http://h`` a
    parameter).  A repeated key sends the key once per value.
    """
    urls, values = [], {}
    for arg in targets:
        name, has_value, value = arg.partition("=")
        if "://" in name:
            urls.append(URL(arg, method=method))
        elif has_value and name:
            values.setdefault(name, []).append(value)
        else:
            raise ValueError(f"{arg!r} is neither a URL (http://... or https://...) nor a parameter (key=value)")
    if not urls:
        raise ValueError("no URL given; URLs start with http:// or https://")
    return urls, {name: found[0] if len(found) == 1 else found for name, found in values.items()}


def _outcome(handle: Any, timeout: float) -> dict[str, Any]:
    """Wait for one call; its result, or the error class and message it ended with."""
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
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the outcome and print it.")] = False,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds --wait waits for all the calls together.")] = 60.0,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Send each call this many times.")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Queue calls to URLs and print their message ids; with --wait, their outcomes.

    Parameters go in the query string (GET) or a form body (POST).  Every
    argument is checked before anything is sent: bad input sends nothing.
    """
    output = Output(as_json)
    load_settings(output)
    try:
        urls, params = parse_targets(targets, method.value)
    except ValueError as exc:
        output.fail(exc, EXIT_USAGE)

    try:
        from .actor import default_dispatcher  # dramatiq and the broker: loaded only by commands that send

        dispatcher = default_dispatcher()
        handles = [dispatcher.send(str(url), url.method, params) for url in urls for _ in range(count)]
    except ValueError as exc:  # the actor's own checks (parameter encoding, message size)
        output.fail(exc, EXIT_USAGE)
    except DispatchError as exc:  # RabbitMQ unreachable or refusing
        output.fail(exc)

    calls = [{"message_id": h.message_id, "method": h.args[1], "url": h.args[0], "status": "queued"} for h in handles]
    interrupted = False
    if wait:
        import redis

        deadline = time.monotonic() + timeout
        try:
            with _progress(output, len(handles)) as advance:
                for entry, handle in zip(calls, handles, strict=True):
                    entry.update(_outcome(handle, max(0.0, deadline - time.monotonic())))
                    advance()
        except KeyboardInterrupt:  # show what is known; the rest stay "queued", their ids printed
            interrupted = True
        except redis.RedisError as exc:
            output.fail(f"cannot read outcomes from the results store (DISPATCH_RESULTS_URL): {exc}")

    failed = any(entry["status"] == "failure" for entry in calls)
    if as_json:
        output.json({"calls": calls})
    elif not wait:
        for entry in calls:
            print(entry["message_id"])
    elif len(calls) == 1:
        _print_single(output, calls[0])
    else:
        output.out.print(_calls_table(calls))
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if failed:
        raise typer.Exit(EXIT_FAILED)


@contextmanager
def _progress(output: Output, total: int) -> Iterator[Callable[[], None]]:
    """A Rich progress bar on stderr while several calls are awaited; ``advance()`` after each one.

    Nothing is drawn for a single call or with --json.
    """
    if total < 2 or output.as_json:
        yield lambda: None
        return
    columns = (TextColumn("waiting for calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=output.err, transient=True) as bar:
        task = bar.add_task("calls", total=total)
        yield lambda: bar.advance(task)


def _print_single(output: Output, entry: dict[str, Any]) -> None:
    """The result alone on stdout, so ``$(dispatch call --wait ...)`` captures just that."""
    output.note(f"call {entry['message_id']}")
    if entry["status"] == "success":
        print(json.dumps(entry["result"], ensure_ascii=False))
    elif entry["status"] == "failure":
        error = entry["error"]
        output.err.print(f"[bold red]{error['type']}[/]: {escape(error['message'])}")


def _calls_table(calls: list[dict[str, Any]]) -> Table:
    """One row per call: its id, then its request and outcome stacked, so 80 columns are enough."""
    table = Table(Column("message id", no_wrap=True), "call and outcome")
    for entry in calls:
        if entry["status"] == "success":
            outcome = escape(json.dumps(entry["result"], ensure_ascii=False))
        elif entry["status"] == "failure":
            outcome = f"[red]{entry['error']['type']}[/]: {escape(entry['error']['message'])}"
        else:
            outcome = "[dim]queued, not waited for[/]"
        table.add_row(entry["message_id"], f"[dim]{escape(entry['method'] + ' ' + entry['url'])}[/]\n{outcome}")
    return table


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
    try:
        management = Management(settings.management_url)
    except ManagementError as exc:
        output.fail(exc, EXIT_USAGE)
    vhost = vhost_of(settings.broker_url)

    def snapshot() -> DispatchStatus:
        try:
            return management.dispatch_status(vhost, settings.queue)
        except ManagementError as exc:
            output.fail(exc)

    if not watch:
        current = snapshot()
        if as_json:
            output.json(current.summary())
        else:
            output.out.print(_status_table(current))
        return
    shown = 0
    with suppress(KeyboardInterrupt), nullcontext() if as_json else Live(console=output.out) as live:
        while iterations is None or shown < iterations:
            if shown:
                time.sleep(interval)  # the refresh period asked for, not a synchronisation
            current = snapshot()
            if live is None:
                output.json(current.summary())
            else:
                live.update(_status_table(current), refresh=True)
            shown += 1


def _status_table(current: DispatchStatus) -> Table:
    table = Table(title=f"queue {current.calls.name!r} in vhost {current.vhost!r}")
    table.add_column("holds", no_wrap=True)
    for heading in ("ready", "unacked", "consumers", "publish/s", "deliver/s"):
        table.add_column(heading, justify="right")
    for queue, holds in ((current.calls, "calls"), (current.delayed, "delayed (.DQ)"), (current.dead, "dead (.XQ)")):
        if not queue.exists:
            table.add_row(holds, "[dim]no queue[/]", *[""] * 4)
            continue
        rates = (f"{queue.publish_rate:.1f}", f"{queue.deliver_rate:.1f}")
        table.add_row(holds, str(queue.ready), str(queue.unacked), str(queue.consumers), *rates)
    return table


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


def _dead_letters(output: Output) -> Any:
    """dispatch.deadletters, with the broker configured; exits cleanly when RabbitMQ cannot be reached."""
    settings = load_settings(output)
    if settings.broker_url.startswith("stub:"):
        output.fail("DISPATCH_BROKER_URL is stub://: there is no dead-letter queue", EXIT_USAGE)
    from . import deadletters

    return deadletters


@dead.command("list")
def dead_list(
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The dead calls, oldest first: message id, URL, method, error, time. The queue is left unchanged."""
    output = Output(as_json)
    deadletters = _dead_letters(output)
    try:
        letters = deadletters.list_dead(limit)
    except Exception as exc:  # pika's connection and channel errors have no common public base
        output.fail(exc)
    if as_json:
        output.json([letter.asdict() for letter in letters])
        return
    table = Table(title=f"{len(letters)} dead call(s)")
    for column in ("message id", "method", "URL", "error", "failed at"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(letter.message_id, letter.method, letter.url, letter.error, str(letter.failed_at or ""))
    output.out.print(table)


@dead.command("replay")
def dead_replay(
    message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids to replay.", show_default=False)] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead call.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead calls again under their own ids; each dead letter is removed only once its copy is confirmed."""
    output = Output(as_json)
    if bool(message_ids) == replay_all:
        output.fail("name the message ids to replay, or pass --all (not both)", EXIT_USAGE)
    deadletters = _dead_letters(output)
    try:
        replayed = deadletters.replay(None if replay_all else set(message_ids or ()))
    except Exception as exc:
        output.fail(exc)
    missing = sorted(set(message_ids or ()) - set(replayed))
    if as_json:
        output.json({"replayed": replayed, "not_found": missing})
    else:
        output.out.print(
            f"replayed {len(replayed)} call(s)" + (f"; not found: {', '.join(missing)}" if missing else "")
        )
    if missing:
        raise typer.Exit(EXIT_FAILED)


@dead.command("purge")
def dead_purge(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every dead call."""
    output = Output(as_json)
    deadletters = _dead_letters(output)
    if not yes and not as_json and not typer.confirm("Delete every dead call?"):
        raise typer.Exit(EXIT_FAILED)
    try:
        purged = deadletters.purge()
    except Exception as exc:
        output.fail(exc)
    if as_json:
        output.json({"purged": purged})
    else:
        output.out.print(f"purged {purged} dead call(s)")


def main() -> None:
    """The console script's entry point."""
    app()


if __name__ == "__main__":
    main()
