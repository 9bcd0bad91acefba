"""``dispatch result`` and ``dispatch cancel``: one call's outcome or state, read by id from any process.

Ids are checked before anything is read (exit 2 for one that is not a UUID);
outcomes are read from Redis through :class:`~dispatch.result.CallResult`,
imported by these commands only.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..consumers import no_outcome_reason
from ..errors import DispatchError, ResultsUnavailable, ResultTimeout
from ..settings import Settings
from .common import JsonOption, load_settings, reading_outcomes
from .output import EXIT_FAILED, EXIT_USAGE, Output, print_result

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
            reason = no_outcome_reason(settings) + " (or no call has this id, or its outcome has expired)"
        message = f"no outcome for call {handle.message_id} after {seconds:g}s; {reason}"
        return {**entry, "error": {"type": ResultTimeout.__name__, "message": message}}
    except ResultsUnavailable:  # not the call's outcome: reading_outcomes says what failed
        raise
    except DispatchError:
        pass  # a stored failure: read as stored below, with the worker's own class name
    return _read_now(handle)


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
    from ..result import CallResult  # dramatiq and Redis: loaded by the commands that read outcomes

    handle = CallResult.from_id(call_id)
    with reading_outcomes(output, settings):
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
    from ..result import CallResult  # dramatiq and Redis: loaded by the commands that read outcomes

    handle = CallResult.from_id(call_id)
    with reading_outcomes(output, settings):
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
