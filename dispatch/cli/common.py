"""What several commands share: the ``--json`` option, the settings, and reading Redis and RabbitMQ's queue.

Only the standard library, Typer and the package's light modules are imported
here; pika is imported by :func:`broker_connection` when it runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Annotated, Any

import typer

from ..errors import ConfigurationError
from ..settings import Settings
from .output import EXIT_INTERRUPTED, EXIT_USAGE, Output, explain_redis_error, is_missing_queue, is_redis_error


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
        if not is_redis_error(exc):
            raise
        output.fail(exc, message=explain_redis_error(exc, settings.results_url))


def no_outcome_reason(settings: Settings) -> str:
    """Why a call still has no outcome, when it is plain: no worker consumes the queue."""
    consumers = consumer_count(settings)
    if consumers == 0:
        return (
            f"no worker is consuming queue {settings.queue!r} -- start one with "
            "`dispatch worker` (or `dramatiq dispatch.tasks`); the call stays queued until then"
        )
    if consumers:
        return f"{consumers} worker(s) consume queue {settings.queue!r}: the call is still queued or running"
    return "the call may still be queued or running"


def broker_connection(settings: Settings) -> Any:
    """A connection to DISPATCH_BROKER_URL for one question: one try per node, 5 s each; pika's error if none."""
    import pika

    from ..cluster import connection_parameters

    parameters = connection_parameters(settings.broker_url)
    for node in parameters:
        node.connection_attempts, node.socket_timeout, node.blocked_connection_timeout = 1, 5, 5
    return pika.BlockingConnection(parameters)


def consumer_count(settings: Settings) -> int | None:
    """How many consumers the calls queue has, asked of RabbitMQ over AMQP (no plugin needed); None if unknown."""
    if settings.stub_broker:
        return None
    try:
        connection = broker_connection(settings)
    except Exception:
        return None
    try:
        return connection.channel().queue_declare(settings.queue, passive=True).method.consumer_count
    except Exception as exc:
        return 0 if is_missing_queue(exc) else None
    finally:
        with suppress(Exception):
            connection.close()


def broker_cluster_name(settings: Settings) -> str | None:
    """The cluster name DISPATCH_BROKER_URL's RabbitMQ announces when a client connects; pika's error if unreachable."""
    connection = broker_connection(settings)
    try:
        # pika keeps the server's Connection.Start properties on the connection it wraps, and nowhere public.
        name = (getattr(connection._impl, "server_properties", None) or {}).get("cluster_name")
    finally:
        with suppress(Exception):
            connection.close()
    return (name.decode() if isinstance(name, bytes) else str(name)) if name else None
