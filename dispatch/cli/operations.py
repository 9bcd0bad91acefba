"""Running dispatch: ``dispatch hosts`` and ``status`` (what the destinations and queues hold), ``worker``, ``gateway``.

``status`` also shows the outbox's backlog when ``DISPATCH_OUTBOX_URL`` is set: calls committed
and not yet relayed are calls too, only not in RabbitMQ yet.

Each command imports what it needs (the runtime, the management API client,
the gateway) when it runs, so ``dispatch --help`` loads none of it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from contextlib import nullcontext, suppress
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..cluster import vhost_of
from ..destinations import load_destinations
from ..errors import ConfigurationError
from ..redis_errors import redis_location
from ..settings import Settings
from .common import JsonOption, broker_cluster_name, flag, load_settings, reading_outcomes
from .output import (
    EXIT_USAGE,
    Output,
    broker_location,
    explain_broker_error,
    hosts_table,
    plain_line,
    status_line,
    status_table,
)

if TYPE_CHECKING:
    from rich.live import Live

    from ..management import Management
    from ..outbox import Backlog

CORES = os.cpu_count() or 1


def hosts(as_json: JsonOption = False) -> None:
    """Show each limited host's limits, calls in flight and breaker state, across all workers.

    The hosts are those of the destinations file (DISPATCH_DESTINATIONS), read
    for its limits only -- the ${VAR}s of its credentials need not be set
    here -- and every other host with live flow state in Redis (the only ones
    shown when there is no file).  Breaker: closed, open (its calls wait),
    half-open (one probe call is deciding), or off.  Piped: one line per host,
    `host<tab>max_concurrency<tab>rate<tab>in_flight<tab>breaker<tab>failures`.
    --json: a list of objects with those keys.
    """
    output = Output(as_json)
    variable = Settings.env("destinations")
    path = os.environ.get(variable, "").strip()
    settings = load_settings(output, {**os.environ, variable: ""})  # the file is read here, for its limits only
    try:
        destinations = load_destinations(path, credentials=False)
    except ValueError as exc:
        output.fail(ConfigurationError(f"{variable}={path!r} is invalid: {exc}"), EXIT_USAGE)
    from ..flow.report import host_states  # dramatiq and Redis: loaded by the commands that read them
    from ..results import NAMESPACE, CallResultsBackend, results_backend

    store = results_backend(settings)
    if not isinstance(store, CallResultsBackend):
        output.fail("DISPATCH_RESULTS_URL is stub://: flow state is shared in Redis, and there is none", EXIT_USAGE)
    with reading_outcomes(output, settings):
        states = host_states(destinations, store.write_client, NAMESPACE)
    if not path:
        output.note(f"no destinations file ({variable} is not set): hosts with live flow state in Redis only")
    if not states:
        output.note("no limited host: none listed in a destinations file, none with flow state in Redis")
    if as_json:
        output.json([dataclasses.asdict(state) for state in states])
    elif output.tty:
        output.out.print(hosts_table(states))
    else:
        for s in states:
            output.line(s.host, s.max_concurrency, s.rate, s.in_flight, s.breaker, s.failures)


def status(
    watch: Annotated[bool, flag("--watch", "-W", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")] = 2.0,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="With --watch, stop after this many refreshes (for scripts).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the dispatch queues: ready, unacked, delayed and dead calls, consumers, rates.

    Read from RabbitMQ's management API at DISPATCH_MANAGEMENT_URL, or, when
    it is not set, on the host of DISPATCH_BROKER_URL (http://HOST:15672, with
    the broker URL's user and password), for DISPATCH_QUEUE in the vhost of
    DISPATCH_BROKER_URL.  It fails, rather than describe another RabbitMQ,
    when that broker cannot be reached or the API belongs to another one.
    RabbitMQ refreshes these numbers every few seconds.  With --watch --json,
    one JSON line per refresh.  When DISPATCH_OUTBOX_URL is set, the outbox's
    backlog too: calls committed and not yet relayed, and the age of the
    oldest (`outbox`, `outbox_oldest_age` fields; `"outbox": {"calls",
    "oldest_age"}` in JSON).
    """
    output = Output(as_json)
    settings = load_settings(output)
    if settings.stub_broker:
        output.fail("DISPATCH_BROKER_URL is stub://: there is no RabbitMQ to ask", EXIT_USAGE)
    management = _management(settings)
    _check_same_broker(output, settings, management)
    _warn_if_store_evicts(output, settings)
    vhost = vhost_of(settings.broker_url)
    outbox = bool(settings.outbox_url)
    if not watch:
        _show_status(output, management, vhost, settings.queue, outbox=outbox)
        return
    live = None
    if output.tty:
        from rich.live import Live

        live = Live(console=output.out)
    shown = 0
    with suppress(KeyboardInterrupt), live or nullcontext():
        while iterations is None or shown < iterations:
            if shown:
                time.sleep(interval)  # the refresh period asked for, not a synchronisation
            _show_status(output, management, vhost, settings.queue, live, outbox=outbox)
            shown += 1


def _warn_if_store_evicts(output: Output, settings: Settings) -> None:
    """Name a results store whose maxmemory-policy may evict outcomes (workers log it at boot); quiet if unknown."""
    if settings.stub_results:
        return
    from ..redis_connect import connect, eviction_warning  # redis-py: loaded by this command only

    password = settings.sentinel_password or None
    client = connect(settings.results_url, sentinel_password=password, socket_timeout=2, socket_connect_timeout=2)
    warning = eviction_warning(client)
    if warning:
        output.note(f"[bold yellow]warning:[/] {escape(redis_location(settings.results_url))}: {escape(warning)}")


def _management(settings: Settings) -> Management:
    """The management API client: DISPATCH_MANAGEMENT_URL when set, else the broker's host (never a default)."""
    from ..management import Management, management_url_for  # requests: loaded by this command only

    variable = Settings.env("management_url")
    url = settings.management_url or management_url_for(settings.broker_url)
    return Management(
        url, source=variable if settings.management_url else f"DISPATCH_BROKER_URL ({variable} is not set)"
    )


def _check_same_broker(output: Output, settings: Settings, management: Management) -> None:
    """Exit 1 unless DISPATCH_BROKER_URL's RabbitMQ answers and is the one the management API describes."""
    from ..management import ManagementError

    try:
        described = management.cluster_name()
    except ManagementError as exc:
        output.fail(exc)
    try:
        reached = broker_cluster_name(settings)
    except Exception as exc:
        message = explain_broker_error(exc, settings.broker_url)
        output.fail(exc, message=f"{message}; status shows that broker's queues only (management API {management.url})")
    if described and reached and described != reached:
        output.fail(
            ManagementError(
                f"the management API at {management.url} (from {management.source}) describes RabbitMQ cluster "
                f"{described!r}, but DISPATCH_BROKER_URL reaches cluster {reached!r} "
                f"({broker_location(settings.broker_url)}); set DISPATCH_MANAGEMENT_URL to the management API "
                "of the broker your calls go to"
            )
        )


def _show_status(
    output: Output, management: Management, vhost: str, queue: str, live: Live | None = None, *, outbox: bool = False
) -> None:
    """One snapshot: a table on a terminal (in ``live`` when watching), one line in a pipe, one JSON document.

    With ``outbox``, the backlog of DISPATCH_OUTBOX_URL's outbox too, or why it cannot be read.
    """
    from ..management import ManagementError

    try:
        current = management.dispatch_status(vhost, queue)
    except ManagementError as exc:
        output.fail(exc)
    waiting = _outbox_backlog(output) if outbox else None
    if output.as_json:
        extra: dict[str, Any] = {}
        if isinstance(waiting, str):
            extra = {"outbox": {"error": waiting}}
        elif waiting is not None:
            extra = {"outbox": {"calls": waiting.calls, "oldest_age": waiting.oldest_age}}
        output.json({**current.summary(), **extra})
        return
    if not output.tty:
        line = status_line(current.summary())
        if isinstance(waiting, str):
            line = "\t".join([line, plain_line(f"outbox_error={waiting}")])
        elif waiting is not None:
            line = "\t".join([line, plain_line(f"outbox={waiting.calls}", f"outbox_oldest_age={_age(waiting)}")])
        print(line, flush=True)
        return
    from rich.console import Group
    from rich.text import Text

    shown: Any = status_table(current)
    if isinstance(waiting, str):
        shown = Group(shown, Text(f"outbox: cannot read the backlog: {waiting}", style="bold red"))
    elif waiting is not None:
        age = "" if waiting.oldest_age is None else f", the oldest for {waiting.oldest_age:.1f}s"
        shown = Group(shown, f"outbox: {waiting.calls} call(s) committed, not yet relayed{age}")
    if live is not None:
        live.update(shown, refresh=True)
    else:
        output.out.print(shown)


def _outbox_backlog(output: Output) -> Backlog | str:
    """The backlog of DISPATCH_OUTBOX_URL's outbox, or why it cannot be read: the queues are shown either way."""
    from .outbox import _outbox, unreadable  # the outbox commands' own opening: the extra checked, failures named

    with _outbox(output, "dispatch_outbox") as outbox:
        try:
            return outbox.backlog()
        except Exception as exc:  # the database down, no table: a line of the status, not its end
            return unreadable(outbox, exc)


def _age(waiting: Backlog) -> str:
    return "-" if waiting.oldest_age is None else f"{waiting.oldest_age:.3f}"


def worker(
    ctx: typer.Context,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes (default: one per core).")] = CORES,
    threads: Annotated[int, typer.Option(min=1, help="Threads per process, each performing one call at a time.")] = 8,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Export Prometheus metrics on this port (sets DISPATCH_METRICS_PORT)."),
    ] = None,
    dry_run: Annotated[bool, flag("--dry-run", help="Print the command instead of running it.")] = False,
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
        from ..metrics import require_prometheus_client

        try:
            require_prometheus_client()
        except ConfigurationError as exc:
            output.fail(exc, EXIT_USAGE)
        env[Settings.env("metrics_port")] = str(metrics_port)
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


def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    as_json: JsonOption = False,
) -> None:
    """Run the HTTP gateway, which takes calls over HTTP (needs the `gateway` extra)."""
    output = Output(as_json)
    load_settings(output)
    try:
        from ..gateway import serve
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
