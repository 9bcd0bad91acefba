"""The CLI's rendering helpers, and its start-up: no services needed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from dispatch.cli.output import Output, broker_location, describe, labelled, plain_line
from dispatch.redis_errors import redis_location
from tests.support import ROOT


def test_an_exception_with_an_empty_message_is_described_by_its_class_and_arguments():
    class Silent(Exception):
        def __str__(self) -> str:
            return ""

    assert describe(Exception()) == "Exception"
    assert describe(Silent(ConnectionRefusedError(111, "refused"))) == "Silent ([Errno 111] refused)"
    assert labelled(Exception()) == "Exception"
    assert labelled(ValueError("bad")) == "ValueError: bad"


def test_locations_name_host_port_vhost_and_db_never_the_password():
    assert broker_location("amqp://u:s3cret@rabbit:5999/%2Fprod") == "RabbitMQ at rabbit:5999, vhost '/prod'"
    assert broker_location("amqps://u:p@rabbit") == "RabbitMQ at rabbit:5671, vhost '/'"
    assert redis_location("redis://:s3cret@cache:6380/4") == "Redis at cache:6380 db 4"
    assert redis_location("redis://cache") == "Redis at cache:6379 db 0"


def test_every_form_of_output_masks_a_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://user:hunter22@h/x"
    for as_json in (True, False):
        output = Output(as_json)
        output.json({"url": url})
        output.line("id", url)
        output.note(f"queued {url}")
        with pytest.raises(typer.Exit):
            output.fail(ValueError(f"URL {url!r} is malformed"))
    shown = capsys.readouterr()
    assert "hunter22" not in shown.out + shown.err
    assert shown.out.count("user:***@h") == 5 and shown.err.count("user:***@h") == 2  # --json errors: stdout


def test_a_plain_line_keeps_one_record_on_one_line():
    assert plain_line("id", None, "a\tb", "two\nlines", "") == "id\t-\ta b\ttwo lines\t-"


def test_help_does_not_load_the_broker_machinery():
    heavy = "('dramatiq', 'pika', 'redis', 'requests')"
    script = f"import sys; from dispatch.cli import app; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
