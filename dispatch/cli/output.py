"""How the ``dispatch`` command writes: tables on a terminal, plain lines in a pipe, JSON with ``--json``.

Three audiences, three forms:

* **A terminal** (stdout is a TTY, or ``TTY_COMPATIBLE=1``): Rich tables,
  colour unless ``NO_COLOR`` is set.
* **A pipe or a file**: one record per line, fields separated by a tab, so
  ``grep``, ``cut -f`` and ``awk -F'\\t'`` work.  Ids come first and are never
  wrapped or cut; free text (an error message) comes last; an empty field is
  ``-``; tabs and newlines inside a field become spaces.  No box characters,
  no colour, whatever ``FORCE_COLOR`` says (it colours, it does not decide
  the layout; ``TTY_COMPATIBLE=1`` does).
* **``--json``**: one JSON document on stdout, errors included.

Whatever the form, every line passes through :func:`~dispatch.redaction.redact`:
a URL's password, a configured secret never reach the screen.

Errors name what was tried -- RabbitMQ's host:port and vhost, Redis's
host:port/db, the management API's URL, never a password -- and what to
check.  An exception with an empty message is shown by its class and
arguments, never as a bare ``error:``.

This module imports only Rich and the standard library, so ``dispatch
--help`` stays quick; the broker's libraries are recognised by class name.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from ..cluster import node_of, split_urls, vhost_of
from ..redaction import redact

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C

#: What an empty field looks like in a plain line.
EMPTY = "-"


def stdout_is_terminal() -> bool:
    """Whether stdout gets the terminal layout: ``TTY_COMPATIBLE`` (Rich's switch, 1 or 0) decides, else isatty."""
    switch = os.environ.get("TTY_COMPATIBLE", "")
    if switch in ("0", "1"):
        return switch == "1"
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


def plain_line(*fields: Any) -> str:
    """One record as a tab-separated line: nothing inside a field can split the line or the record."""
    cells = []
    for field in fields:
        text = EMPTY if field is None or field == "" else str(field)
        cells.append(" ".join(text.replace("\t", " ").splitlines()) or EMPTY)
    return "\t".join(cells)


class Output:
    """Where a command's results and errors go; see the module docstring for the three forms."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        #: The terminal layout (tables, live refresh) rather than plain lines.
        self.tty = not as_json and stdout_is_terminal()
        self.out = Console(highlight=False, force_terminal=self.tty)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def json(self, data: Any) -> None:
        print(redact(json.dumps(data, ensure_ascii=False, default=str)), flush=True)

    def line(self, *fields: Any) -> None:
        """A plain record on stdout, flushed at once (a reader downstream sees it now)."""
        print(redact(plain_line(*fields)), flush=True)

    def note(self, text: str) -> None:
        """A message for the human (Rich markup allowed), on stderr; dropped with --json."""
        if not self.as_json:
            self.err.print(redact(text))

    def fail(
        self, error: BaseException | str, code: int = EXIT_FAILED, message: str | None = None, **extra: Any
    ) -> NoReturn:
        """Report ``error`` (in ``message``'s words if given) and exit with ``code``.

        With --json, ``extra`` keys join the document next to ``"error"``.
        """
        kind = type(error).__name__ if isinstance(error, BaseException) else "Error"
        message = redact(message or (error if isinstance(error, str) else describe(error)))
        if self.as_json:
            self.json({**extra, "error": {"type": kind, "message": message}})
        else:
            self.err.print(f"[bold red]error:[/] {escape(message)}")
        raise typer.Exit(code)


# --- what was tried, and the fix ---------------------------------------------------------------


def describe(error: BaseException) -> str:
    """``str(error)``, or -- when that is empty -- its class and arguments (or its cause's)."""
    text = str(error).strip()
    if text:
        return text
    parts = [str(arg).strip() or repr(arg) for arg in error.args]
    cause = error.__cause__ or error.__context__
    if not parts and cause is not None and cause is not error:
        parts = [f"{type(cause).__name__}: {describe(cause)}"]
    return f"{type(error).__name__} ({'; '.join(parts)})" if parts else type(error).__name__


def broker_location(url: str) -> str:
    """``RabbitMQ at host:port[, host:port...], vhost 'v'`` for an AMQP URL or list; never the credentials."""
    nodes = []
    for node_url in split_urls(url) or [url]:
        try:
            nodes.append(node_of(node_url))
        except ValueError:
            nodes.append(urlsplit(node_url).hostname or "localhost")
    return f"RabbitMQ at {', '.join(nodes)}, vhost {vhost_of(url)!r}"


def labelled(error: BaseException) -> str:
    """``Class: message``, the class named once even when the message is only its class and arguments."""
    text = describe(error)
    return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"


def _names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def explain_broker_error(error: BaseException, broker_url: str) -> str:
    """A RabbitMQ failure as: what failed, where, why, and what to check."""
    where = broker_location(broker_url)
    names = _names(error)
    if names & {"BrokerAccessRefused", "PublishBlocked"}:  # their message says what happened and the fix
        return str(error)
    why = labelled(error)
    if "ProbableAuthenticationError" in names or "AuthenticationError" in names:
        return f"{where} refused the login ({why}); check the user and password in DISPATCH_BROKER_URL"
    if "ProbableAccessDeniedError" in names:
        return (
            f"{where} denied access to the vhost ({why}); does the vhost exist, and may the user use it? "
            "check DISPATCH_BROKER_URL"
        )
    if "ChannelClosedByBroker" in names:
        return f"{where} closed the channel ({why})"
    if names & {"BrokerUnavailable", "AMQPConnectionError", "ConnectionError", "OSError", "BrokerConnectionError"}:
        return f"cannot reach {where} ({why}); is RabbitMQ running? check DISPATCH_BROKER_URL"
    return f"{why} (talking to {where})"


# --- dispatch call ------------------------------------------------------------------------------


def outcome_text(entry: Mapping[str, Any]) -> str:
    if entry["status"] == "success":
        return json.dumps(entry["result"], ensure_ascii=False)
    if entry["status"] == "failure":
        return f"{entry['error']['type']}: {entry['error']['message']}"
    return ""


def print_calls(output: Output, calls: list[dict[str, Any]]) -> None:
    """Every call with what is known of it: a table on a terminal; else ``id status method url outcome`` lines."""
    if output.tty:
        output.out.print(calls_table(calls))
        return
    for entry in calls:
        output.line(entry["message_id"], entry["status"], entry["method"], entry["url"], outcome_text(entry))


def calls_table(calls: list[dict[str, Any]]) -> Table:
    """One row per call: its id, then its request and outcome stacked, so 80 columns are enough."""
    table = Table(Column("message id", no_wrap=True, min_width=36), "call and outcome")
    for entry in calls:
        if entry["status"] == "success":
            outcome = escape(outcome_text(entry))
        elif entry["status"] == "failure":
            outcome = f"[red]{entry['error']['type']}[/]: {escape(entry['error']['message'])}"
        else:
            outcome = f"[dim]{escape(entry['status'])}, outcome not known[/]"
        table.add_row(entry["message_id"], f"[dim]{escape(entry['method'] + ' ' + entry['url'])}[/]\n{outcome}")
    return table


# --- dispatch result ----------------------------------------------------------------------------

_STATE_STYLE = {"success": "green", "failure": "red", "cancelled": "yellow"}


def result_outcome(entry: Mapping[str, Any]) -> str:
    """The outcome of a ``dispatch result`` record: the result as JSON, ``Type: message``, or empty."""
    if "result" in entry:
        return json.dumps(entry["result"], ensure_ascii=False)
    if "error" in entry and entry["error"]["type"] != "ResultTimeout":  # a timeout is no outcome: it goes to stderr
        return f"{entry['error']['type']}: {entry['error']['message']}"
    return ""


def print_result(output: Output, entry: Mapping[str, Any]) -> None:
    """One call's state and outcome: a table on a terminal; else one ``id state outcome`` line."""
    outcome = result_outcome(entry)
    if not output.tty:
        output.line(entry["id"], entry["state"], outcome)
        return
    table = Table(Column("message id", no_wrap=True, min_width=36), "state", Column("outcome", overflow="fold"))
    style = _STATE_STYLE.get(entry["state"], "dim")
    table.add_row(entry["id"], f"[{style}]{escape(entry['state'])}[/]", escape(outcome))
    output.out.print(table)


# --- dispatch status ----------------------------------------------------------------------------

#: The fields of a plain status line, in order: the same names as the --json summary.
STATUS_FIELDS = ("queue", "vhost", "ready", "unacked", "delayed", "dead", "consumers", "publish_rate", "deliver_rate")


def status_line(summary: Mapping[str, Any]) -> str:
    """One snapshot as one line of ``name=value`` fields, time first: greppable, and ``cut -f`` friendly."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return plain_line(f"time={now}", *(f"{name}={summary[name]}" for name in STATUS_FIELDS))


def status_table(current: Any) -> Table:
    """The three queues of a :class:`~dispatch.management.DispatchStatus` as a table."""
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


# --- dispatch dead ------------------------------------------------------------------------------


def print_dead(output: Output, letters: Iterable[Any]) -> None:
    """Dead letters: a table on a terminal; else ``id failed_at method url error`` lines (the count on stderr)."""
    letters = list(letters)
    if not output.tty:
        output.note(f"{len(letters)} dead call(s)")
        for letter in letters:
            failed_at = letter.failed_at.isoformat() if letter.failed_at else None
            output.line(letter.message_id, failed_at, letter.method, letter.url, letter.error)
        return
    table = Table(title=f"{len(letters)} dead call(s)")
    table.add_column("message id", no_wrap=True, min_width=36)
    for column in ("failed at", "method", "URL", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            letter.message_id, str(letter.failed_at or ""), letter.method, escape(letter.url), escape(letter.error)
        )
    output.out.print(table)


# --- dispatch hosts -----------------------------------------------------------------------------

_BREAKER_STYLE = {"closed": "green", "open": "red", "half-open": "yellow", "off": "dim"}


def hosts_table(states: Iterable[Any]) -> Table:
    """One row per destination: its limits, what is in flight now, its breaker."""
    table = Table("host", "max concurrency", "rate", "in flight", "breaker", "failures")
    for s in states:
        limit = "-" if s.max_concurrency is None else str(s.max_concurrency)
        breaker = f"[{_BREAKER_STYLE[s.breaker]}]{s.breaker}[/]"
        table.add_row(escape(s.host), limit, s.rate or "-", str(s.in_flight), breaker, str(s.failures))
    return table
