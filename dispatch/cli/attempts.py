"""``dispatch attempts``: every HTTP attempt of one call, read by id from any process.

The attempts are the call record's (:meth:`dispatch.result.CallResult.attempts`):
one per attempt over the call's whole life, oldest first, the last 100.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from .common import JsonOption, load_settings, reading_outcomes
from .outcomes import CallIdArgument, _call_id
from .output import Output


def attempts(call_id: CallIdArgument, as_json: JsonOption = False) -> None:
    """Show every HTTP attempt of a call: when, how long, the status it got, the error it ended with.

    One row per attempt over the call's whole life (quick retries and
    scheduled deliveries alike), oldest first, the last 100.  The status is
    `-` when no answer came (refused, reset, timed out); the error is empty
    for the attempt that succeeded.  Piped: one line per attempt,
    `attempt<tab>at<tab>duration_ms<tab>status_code<tab>error<tab>detail`.
    --json: {"id", "attempts": [{"attempt", "at", "duration_ms",
    "status_code", "error", "detail"}, ...]}.  A call not attempted yet (or
    an unknown id) has none: exit 0 with a note.  Exit 1 when Redis cannot
    be reached; 2 for an ID that is not a call id.
    """
    output = Output(as_json)
    settings = load_settings(output)
    call_id = _call_id(output, call_id)
    from ..result import CallResult  # dramatiq and Redis: loaded by the commands that read outcomes

    with reading_outcomes(output, settings):
        entries = CallResult.from_id(call_id).attempts()
    if as_json:
        output.json({"id": call_id, "attempts": entries})
        return
    if not entries:
        output.note(f"no attempt on record for call {call_id} (not attempted yet, unknown, or expired)")
    elif output.tty:
        output.out.print(attempts_table(entries))
    else:
        for entry in entries:
            output.line(*(entry.get(key) for key in ("attempt", "at", "duration_ms", "status_code", "error", "detail")))


def attempts_table(entries: list[dict[str, Any]]) -> Table:
    """One row per attempt: number, time, duration, status, error, detail."""
    table = Table("attempt", "at", "duration", "status", "error", "detail")
    for entry in entries:
        status = entry.get("status_code")
        error = entry.get("error")
        table.add_row(
            str(entry.get("attempt", "")),
            escape(str(entry.get("at", ""))),
            f"{entry.get('duration_ms', 0):.0f} ms",
            "-" if status is None else str(status),
            "[green]ok[/]" if error is None else f"[red]{escape(error)}[/]",
            escape(entry.get("detail") or ""),
        )
    return table
