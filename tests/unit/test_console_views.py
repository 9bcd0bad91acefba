"""The console's parts that need no service: what an action reports when it stops half-way, and the session check."""

from __future__ import annotations

import pytest

from dispatch.console import views
from dispatch.console.session import Sessions
from dispatch.deadletters import DeadLetter

TOKEN = "console-token-0123456789abcdef"


def letter(message_id: str) -> DeadLetter:
    return DeadLetter(message_id, "http://example.com/hook", "POST", "TransportError: 503", None)


def stopped(_ids: object) -> list[str]:
    raise ConnectionError("RabbitMQ went away")


@pytest.mark.parametrize("action", ["replay", "discard"])
def test_an_action_that_stops_names_the_letters_that_left_the_queue(monkeypatch, action):
    monkeypatch.setattr(views.deadletters, action, stopped)
    monkeypatch.setattr(views, "dead_letters", lambda ids=None: [letter("b")])  # "b" is still a dead letter
    acted = views.act_on_dead(action, ["a", "b", "c"])
    assert acted.done == ["a", "c"]
    assert acted.error == f"cannot {action} the dead letters: ConnectionError: RabbitMQ went away"


def test_an_action_that_stops_when_the_queue_cannot_be_read_either_says_so(monkeypatch):
    monkeypatch.setattr(views.deadletters, "replay", stopped)
    monkeypatch.setattr(views, "dead_letters", stopped)
    acted = views.act_on_dead("replay", ["a"])
    assert acted.done is None and acted.error and "RabbitMQ went away" in acted.error


def test_an_action_that_completes_names_what_it_did(monkeypatch):
    monkeypatch.setattr(views.deadletters, "discard", lambda ids: sorted(ids))
    assert views.act_on_dead("discard", ["b", "a"]) == views.Acted(["a", "b"])


def test_an_error_pika_leaves_empty_is_said_with_its_arguments():
    class AMQPConnectionError(Exception):
        pass

    def unreachable() -> None:
        raise AMQPConnectionError(ConnectionRefusedError(111, "Connection refused"))

    assert views.gather(unreachable, "the queues").error == (
        "cannot read the queues: AMQPConnectionError: [Errno 111] Connection refused"
    )


@pytest.mark.parametrize("mac", ["é", "\u00ff" * 43, "\u2603"])
def test_a_session_cookie_that_is_not_ascii_is_refused_not_an_error(mac):
    sessions = Sessions([TOKEN])
    version, key_id, session_id, expires, _ = sessions.issue(sessions.key_id_for(TOKEN) or "").split(".")
    assert sessions.verify(f"{version}.{key_id}.{session_id}.{expires}.{mac}") is None
    assert sessions.verify(f"{version}.{key_id}.{session_id}é.{expires}.x") is None
