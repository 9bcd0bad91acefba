"""``dispatch relay`` and ``dispatch outbox init | backlog``: the outbox of the database in ``DISPATCH_OUTBOX_URL``.

The commands run :mod:`dispatch.outbox` (SQLAlchemy, psycopg, dramatiq:
imported when they run; the ``outbox`` extra).  Errors name the database
without its password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from .common import JsonOption, flag, load_settings
from .output import EXIT_USAGE, Output

if TYPE_CHECKING:
    from ..outbox import Outbox

app = typer.Typer(help="The outbox table: calls committed with a database transaction, published by `dispatch relay`.")

TableOption = Annotated[str, typer.Option("--table", help="The outbox table (schema.name for another schema).")]


@contextmanager
def _outbox(output: Output, table: str) -> Iterator[Outbox]:
    """The outbox of ``DISPATCH_OUTBOX_URL``; any failure inside exits 1 naming the database, never its password."""
    settings = load_settings(output)
    if not settings.outbox_url:
        output.fail("set DISPATCH_OUTBOX_URL to the database of the outbox (docs/outbox.md)", EXIT_USAGE)
    try:
        import sqlalchemy as sa

        from ..outbox import Outbox
    except ImportError as exc:
        output.fail(f"the outbox needs its extra: pip install 'dispatch[outbox]' ({exc})", EXIT_USAGE)
    try:
        outbox = Outbox(settings.outbox_url, table=table)
    except (sa.exc.ArgumentError, ImportError) as exc:
        output.fail(f"DISPATCH_OUTBOX_URL is not a database URL SQLAlchemy can use: {exc}", EXIT_USAGE)
    try:
        yield outbox
    except typer.Exit:
        raise
    except Exception as exc:
        output.fail(exc, message=unreadable(outbox, exc))
    finally:
        outbox.engine.dispose()


def unreadable(outbox: Outbox, error: Exception) -> str:
    """What failed, naming the table and the database (never its password), in one line."""
    from ..outbox.relay import describe_failure

    where = outbox.engine.url.render_as_string(hide_password=True)
    return f"outbox {outbox.table.fullname!r} at {where}: {describe_failure(error)}"


def relay(
    once: Annotated[bool, flag("--once", help="One pass: publish what is committed now, then exit.")] = False,
    table: TableOption = "dispatch_outbox",
    batch_size: Annotated[int, typer.Option(min=1, help="Rows claimed, published and deleted per transaction.")] = 500,
    poll_interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between passes when no NOTIFY wakes the relay.")
    ] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Publish the calls committed to the outbox table (DISPATCH_OUTBOX_URL), deleting each once RabbitMQ confirmed it.

    Runs until SIGTERM or Ctrl-C (it finishes its batch first); several relays
    may run at once. On PostgreSQL a commit wakes it at once (LISTEN/NOTIFY);
    elsewhere it polls. --once: one pass, then print how many calls it
    published (`{"relayed": N}` with --json).
    """
    output = Output(as_json)
    if not once:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with _outbox(output, table) as outbox:
        from ..outbox import run_relay

        relayed = run_relay(outbox, once=once, batch_size=batch_size, poll_interval=poll_interval)
    if not once:
        return
    if as_json:
        output.json({"relayed": relayed})
    else:
        output.out.print(f"relayed {relayed} call(s)")


@app.command("init")
def init(table: TableOption = "dispatch_outbox", as_json: JsonOption = False) -> None:
    """Create the outbox table in DISPATCH_OUTBOX_URL's database if it is not there yet (safe to run again)."""
    output = Output(as_json)
    with _outbox(output, table) as outbox:
        outbox.create_table()
    if as_json:
        output.json({"table": outbox.table.fullname, "created": True})
    else:
        output.out.print(f"outbox table {outbox.table.fullname} ready")


@app.command("backlog")
def backlog(table: TableOption = "dispatch_outbox", as_json: JsonOption = False) -> None:
    """Calls committed and not yet published, and how long the oldest has waited.

    Piped: `calls<tab>oldest_age_seconds` (`-` when there are none).
    """
    output = Output(as_json)
    with _outbox(output, table) as outbox:
        waiting = outbox.backlog()
    if as_json:
        output.json({"calls": waiting.calls, "oldest_age": waiting.oldest_age})
    elif output.tty:
        age = "" if waiting.oldest_age is None else f", the oldest for {waiting.oldest_age:.1f}s"
        output.out.print(f"{waiting.calls} call(s) waiting in {outbox.table.fullname}{age}")
    else:
        output.line(waiting.calls, None if waiting.oldest_age is None else f"{waiting.oldest_age:.3f}")
