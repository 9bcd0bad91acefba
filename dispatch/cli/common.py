"""What several commands share: the ``--json`` option, the settings, and reading Redis and RabbitMQ's queue.

Only the standard library, Typer and the package's light modules are imported
here; pika is imported by :func:`~dispatch.consumers.broker_connection` when it runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Annotated, Any

import typer

from ..consumers import broker_connection
from ..errors import ConfigurationError
from ..redis_errors import store_error_message
from ..settings import Settings
from .output import EXIT_INTERRUPTED, EXIT_USAGE, Output


def flag(*names: str, **options: Any) -> Any:
    """A boolean option given alone (``--json``), listed in ``--help`` without a value (Typer would add ``<bool>``)."""
    return typer.Option(*names, metavar="", **options)


JsonOption = Annotated[bool, flag("--json", help="Machine-readable JSON on stdout; no colours.")]


def load_settings(output: Output, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``environ`` (the process's by default), or exit 2 naming the bad variable."""
    try:
        return Settings.from_env(environ)  # not the runtime's: it loads dramatiq, which status and --help never need
    except ConfigurationError as exc:
        output.fail(exc, EXIT_USAGE)


@contextmanager
def reading_outcomes(output: Output, settings: Settings) -> Iterator[None]:
    """Redis unreachable: exit 1 naming where it was looked for; Ctrl-C: exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        output.note("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        message = store_error_message(exc, settings.results_url)
        if message is None:
            raise
        output.fail(exc, message=message)


def broker_cluster_name(settings: Settings) -> str | None:
    """The cluster name DISPATCH_BROKER_URL's RabbitMQ announces when a client connects; pika's error if unreachable."""
    from ..upstream import server_properties  # dramatiq and pika: loaded when this runs

    connection = broker_connection(settings)
    try:
        name = server_properties(connection).get("cluster_name")
    finally:
        with suppress(Exception):
            connection.close()
    return (name.decode() if isinstance(name, bytes) else str(name)) if name else None
