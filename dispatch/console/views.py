"""What the console's pages show, gathered from the queues, the results store and flow control; and its actions.

Each page is a few plain records built here, by blocking calls (pika, Redis, the
management API), which the routes run in a thread.  A source that cannot answer does not
take the page down: its part of the page says what failed instead.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from fastapi import HTTPException

from .. import deadletters
from ..cluster import vhost_of
from ..flow import HostState
from ..management import DispatchStatus, Management, management_url_for
from ..redaction import get_logger
from ..result import CallResult
from ..runtime import get_runtime

log = get_logger("dispatch.console")

T = TypeVar("T")

#: The most dead letters one page lists (and one action takes).
DEAD_LETTERS_SHOWN = 500

#: States in which a call can still be cancelled.
CANCELLABLE = ("scheduled", "pending")


class CallDesk(Protocol):
    """What the console asks of the gateway about one call: its :class:`~dispatch.gateway.Gateway`."""

    def status(self, call_id: str) -> Any: ...

    def cancel(self, call_id: str) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Part(Generic[T]):
    """One source's answer for a page: its value, or why there is none."""

    value: T | None = None
    error: str | None = None


def gather(read: Callable[[], T], what: str, doing: str = "read") -> Part[T]:
    """``read()``, or its failure in words (logged) -- one source down leaves the rest of the page."""
    try:
        return Part(read())
    except HTTPException as exc:
        return Part(error=str(exc.detail))
    except Exception as exc:
        said = str(exc).strip() or "; ".join(str(arg) or repr(arg) for arg in exc.args)  # pika's str is often ''
        reason = f"{type(exc).__name__}: {said}"
        log.warning("console: cannot %s %s: %s", doing, what, reason)
        return Part(error=f"cannot {doing} {what}: {reason}")


@dataclasses.dataclass(frozen=True)
class HostRow:
    """A host's limits and live state, and whether its breaker can be closed by hand."""

    state: HostState

    @property
    def closable(self) -> bool:
        return self.state.breaker in ("open", "half-open")


@dataclasses.dataclass(frozen=True)
class Overview:
    queues: Part[DispatchStatus]
    hosts: Part[list[HostRow] | None]  # value None: no destination is limited
    outbox: Part[Any] | None  # None: DISPATCH_OUTBOX_URL is not set


@dataclasses.dataclass(frozen=True)
class CallPage:
    """A call's state, its outcome once it has one, and every attempt; ``found`` False when it cannot be read.

    ``recorded`` False: nothing is known of this id yet -- a call sent from Python or the
    outbox without a delay, still queued, has no record until a worker takes it.
    """

    call_id: str
    found: bool
    state: str = ""
    result: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempts: Part[list[dict[str, Any]]] = Part([])
    problem: str | None = None
    recorded: bool = True

    @property
    def cancellable(self) -> bool:
        """Scheduled or pending -- or not recorded yet: ``res.cancel()`` records an unknown id cancelled."""
        return self.found and (not self.recorded or self.state in CANCELLABLE)


@dataclasses.dataclass(frozen=True)
class DeadPage:
    letters: list[deadletters.DeadLetter]  # those the filters keep
    hosts: list[str]  # every host and error class in the queue, for the filters' choices
    error_classes: list[str]
    total: int
    truncated: bool


def _management() -> Management:
    """The management API: DISPATCH_MANAGEMENT_URL when set, else on the broker's host (as ``dispatch status``)."""
    settings = get_runtime().settings
    return Management(settings.management_url or management_url_for(settings.broker_url))


def queues() -> DispatchStatus:
    settings = get_runtime().settings
    return _management().dispatch_status(vhost_of(settings.broker_url), settings.queue)


def hosts() -> list[HostRow] | None:
    """Every host with limits or live state; None when no destination is limited (or outcomes are in memory)."""
    flow = get_runtime().flow_control
    if flow is None:
        return None
    return [HostRow(state) for state in flow.host_states()]


@functools.cache
def _outbox(url: str) -> Any:
    from ..outbox import Outbox  # SQLAlchemy: only with DISPATCH_OUTBOX_URL

    return Outbox(url)


def overview() -> Overview:
    url = get_runtime().settings.outbox_url
    outbox = gather(lambda: _outbox(url).backlog(), "the outbox backlog") if url else None
    return Overview(queues=gather(queues, "the queues"), hosts=gather(hosts, "the hosts"), outbox=outbox)


def _unknown_is_none(answer: Callable[[], T]) -> T | None:
    """``answer()``, None where it is the gateway's 404 (no record of the id)."""
    try:
        return answer()
    except HTTPException as exc:
        if exc.status_code == 404:
            return None
        raise


def call_page(desk: CallDesk, call_id: str) -> CallPage:
    """What the gateway's ``GET /calls/{id}`` says of the call, and its attempts."""
    status = gather(lambda: _unknown_is_none(lambda: desk.status(call_id)), "the call")
    if status.error is not None:
        return CallPage(call_id, found=False, problem=status.error)
    if status.value is None:
        return CallPage(call_id, found=True, recorded=False)
    answer = status.value.model_dump()
    error = answer.get("error") or {}
    return CallPage(
        call_id,
        found=True,
        state=answer["state"],
        result=json.dumps(answer["result"], indent=2, ensure_ascii=False) if answer["state"] == "success" else None,
        error_type=error.get("type"),
        error_message=error.get("message"),
        attempts=gather(CallResult.from_id(call_id).attempts, "the attempts"),
    )


def cancel(desk: CallDesk, call_id: str) -> str | None:
    """Cancel the call; None when done, else why not (it already started, ...).

    An id nothing is recorded for yet is cancelled as ``res.cancel()`` does: recorded
    cancelled, so a worker that takes it later does not send it.
    """

    def cancelled() -> None:
        if _unknown_is_none(lambda: desk.cancel(call_id)) is None and not CallResult.from_id(call_id).cancel():
            raise HTTPException(409, f"call {call_id} already started: it cannot be cancelled")

    return gather(cancelled, "the call", "cancel").error


def dead_page(host: str = "", error_class: str = "") -> DeadPage:
    """The dead letters (up to :data:`DEAD_LETTERS_SHOWN`), those matching the filters, and the filters' choices."""
    letters = dead_letters()
    shown = [
        letter
        for letter in letters
        if (not host or letter.host == host) and (not error_class or letter.error_class == error_class)
    ]
    return DeadPage(
        letters=shown,
        hosts=sorted({letter.host for letter in letters}),
        error_classes=sorted({letter.error_class for letter in letters}),
        total=len(letters),
        truncated=len(letters) >= DEAD_LETTERS_SHOWN,
    )


def dead_letters(ids: Sequence[str] | None = None) -> list[deadletters.DeadLetter]:
    """The dead letters (those with ``ids``, if given); none when the dead-letter queue does not exist yet."""
    try:
        letters = deadletters.list_dead(limit=DEAD_LETTERS_SHOWN)
    except Exception as exc:
        if type(exc).__name__ == "ChannelClosedByBroker" and getattr(exc, "reply_code", None) == 404:
            return []  # nothing has ever failed on this queue
        raise
    return letters if ids is None else [letter for letter in letters if letter.message_id in ids]


@dataclasses.dataclass(frozen=True)
class Acted:
    """What replaying or discarding dead letters did: the ids acted on, or why it stopped.

    After a failure, ``done`` holds the asked ids no longer in the dead-letter queue
    (this action's, or another operator's), or None when the queue cannot be read either.
    """

    done: list[str] | None
    error: str | None = None


def act_on_dead(action: str, ids: Sequence[str]) -> Acted:
    """Replay or discard these dead letters; the ids acted on (another operator may have taken the others)."""
    act = deadletters.replay if action == "replay" else deadletters.discard
    acted = gather(lambda: act(set(ids)), "the dead letters", action)
    if acted.value is None:
        left = gather(lambda: {letter.message_id for letter in dead_letters(ids)}, "the dead letters")
        return Acted(None if left.value is None else [i for i in ids if i not in left.value], acted.error)
    log.info("console: %s %d dead letter(s): %s", action, len(acted.value), " ".join(acted.value))
    return Acted(acted.value)


def close_breaker(host: str) -> bool:
    """Close ``host``'s breaker by hand; False if it had nothing to forget (or there is no flow control)."""
    flow = get_runtime().flow_control
    closed = flow is not None and flow.breaker.close(host)
    log.info("console: breaker for %s closed by hand: %s", host, closed)
    return closed
