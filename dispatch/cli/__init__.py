"""The ``dispatch`` command: send calls, watch the queues, run a worker or the gateway.

    dispatch call http://example.com/multiply x=10 y=10 --wait
    dispatch call http://example.com/multiply x=1 y=2 --delay 300
    dispatch result 7c0e9a1e-... --wait 30
    dispatch cancel 7c0e9a1e-...
    dispatch status --watch
    dispatch hosts
    dispatch worker --processes 2 --threads 16
    dispatch gateway --port 8080

Results go to stdout, messages and errors to stderr.  On a terminal results
are Rich tables; piped, plain lines -- one record per line, tab-separated,
ids first and never wrapped -- for grep, cut and awk (see
:mod:`dispatch.cli.output`).  Every command takes ``--json``: one JSON
document on stdout (errors too, as ``{"error": {"type": ..., "message":
...}}``), no colours, no progress bars.  Errors name what was tried
(RabbitMQ host:port and vhost, Redis host:port/db, never a password) and
what to check.

Exit codes: 0 success; 1 a call failed, or a service could not be reached;
2 bad input or configuration (nothing was sent).

The commands are a Typer app, registered here in the order ``--help`` lists
them; they live by group: :mod:`~dispatch.cli.calls` (``call``),
:mod:`~dispatch.cli.outcomes` (``result``, ``cancel``), :mod:`~dispatch.cli.attempts` (``attempts``),
:mod:`~dispatch.cli.operations` (``hosts``, ``status``, ``worker``,
``gateway``), and a group of commands is a sub-app of its own
(:mod:`~dispatch.cli.dead`).  The package's heavier parts (the broker, the
gateway) are imported inside the commands that need them, so ``dispatch
--help`` is quick and works with no services around.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import dead, outbox
from .attempts import attempts
from .calls import call
from .common import flag
from .operations import gateway, hosts, status, worker
from .outbox import relay
from .outcomes import cancel, result

__all__ = ["app", "main"]

app = typer.Typer(
    name="dispatch",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"dispatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, flag("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Call any language over HTTP, reliably and asynchronously (Dramatiq + RabbitMQ + Redis)."""


app.command()(call)
app.command()(result)
app.command()(cancel)
app.command()(attempts)
app.command()(hosts)
app.command()(status)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(worker)
app.command()(gateway)
app.command()(relay)
app.add_typer(dead.app, name="dead", no_args_is_help=True)
app.add_typer(outbox.app, name="outbox", no_args_is_help=True)


def main() -> None:
    """The console script's entry point."""
    app()
