"""``dispatch dead list | replay | purge``: the dead-letter queue (``<queue>.XQ``), a command group of its own.

The commands run :mod:`dispatch.deadletters` (pika and dramatiq, imported when
they run).  A dead-letter queue that does not exist yet holds nothing; any
other failure exits naming what was tried.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..cluster import vhost_of
from ..consumers import is_missing_queue
from ..redis_errors import store_error_message
from ..settings import Settings
from .common import JsonOption, flag, load_settings
from .output import (
    EXIT_FAILED,
    EXIT_USAGE,
    Output,
    explain_broker_error,
    print_dead,
)

app = typer.Typer(help="List, replay or purge dead letters (calls that failed for good, in <queue>.XQ).")


def _dead_letter_settings(output: Output) -> Settings:
    """The environment's settings, or exit 2 when the broker is stub://, which has no dead-letter queue."""
    settings = load_settings(output)
    if settings.stub_broker:
        output.fail("DISPATCH_BROKER_URL is stub://: there is no dead-letter queue", EXIT_USAGE)
    return settings


def _run(output: Output, settings: Settings, action: str, empty: Any, *args: Any) -> Any:
    """``action`` of dispatch.deadletters with ``args``; ``empty``, with a note, when the queue does not exist yet."""
    from .. import deadletters  # pika and dramatiq: loaded by these commands only

    try:
        return getattr(deadletters, action)(*args)
    except Exception as exc:  # pika's connection and channel errors have no common public base
        if is_missing_queue(exc):
            output.note(
                f"no dead-letter queue {settings.queue + '.XQ'!r} in vhost {vhost_of(settings.broker_url)!r} "
                "yet: nothing has failed on it (is DISPATCH_QUEUE right?)"
            )
            return empty
        if (message := store_error_message(exc, settings.results_url)) is not None:
            output.fail(exc, message=message)
        output.fail(exc, message=explain_broker_error(exc, settings.broker_url))


@app.command("list")
def dead_list(
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The dead calls, oldest first: message id, time, method, URL, error. The queue is left unchanged.

    Piped, one call per line, tab-separated in that order, so
    `dispatch dead list | grep ... | cut -f1` gives ids for `dispatch dead replay`.
    """
    output = Output(as_json)
    letters = _run(output, _dead_letter_settings(output), "list_dead", [], limit)
    if as_json:
        output.json([letter.asdict() for letter in letters])
    else:
        print_dead(output, letters)


@app.command("replay")
def dead_replay(
    message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids to replay.", show_default=False)] = None,
    replay_all: Annotated[bool, flag("--all", help="Replay every dead call.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead calls again under their own ids; each dead letter is removed only once its copy is confirmed.

    Piped, one line per id: `ID<tab>replayed` or `ID<tab>not_found`.
    """
    output = Output(as_json)
    if bool(message_ids) == replay_all:
        output.fail("name the message ids to replay, or pass --all (not both)", EXIT_USAGE)
    settings = _dead_letter_settings(output)
    replayed = _run(output, settings, "replay", [], None if replay_all else set(message_ids or ()))
    replayed = list(dict.fromkeys(replayed))  # a replay that died again at once can be fetched twice
    missing = sorted(set(message_ids or ()) - set(replayed))
    if as_json:
        output.json({"replayed": replayed, "not_found": missing})
    elif output.tty:
        output.out.print(
            f"replayed {len(replayed)} call(s)" + (f"; not found: {', '.join(missing)}" if missing else "")
        )
    else:
        output.note(f"replayed {len(replayed)} call(s)" + (f", {len(missing)} not found" if missing else ""))
        for message_id in replayed:
            output.line(message_id, "replayed")
        for message_id in missing:
            output.line(message_id, "not_found")
    if missing:
        raise typer.Exit(EXIT_FAILED)


@app.command("purge")
def dead_purge(
    yes: Annotated[bool, flag("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every dead call."""
    output = Output(as_json)
    settings = _dead_letter_settings(output)
    if not yes and not as_json and not typer.confirm("Delete every dead call?"):
        raise typer.Exit(EXIT_FAILED)
    purged = _run(output, settings, "purge", 0)
    if as_json:
        output.json({"purged": purged})
    else:
        output.out.print(f"purged {purged} dead call(s)")
