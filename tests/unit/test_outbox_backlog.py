"""The outbox's backlog where operators look: ``dispatch status`` and the metrics gauges (issue 23)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dispatch import URL
from dispatch.cli.operations import _show_status
from dispatch.cli.output import Output
from dispatch.outbox import Outbox
from dispatch.outbox.metrics import OutboxCollector


@pytest.fixture
def outbox(tmp_path, monkeypatch) -> Iterator[Outbox]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DISPATCH_OUTBOX_URL", url)
    box = Outbox(url)
    box.create_table()
    yield box
    box.engine.dispose()


def commit_calls(outbox: Outbox, count: int) -> None:
    with outbox.engine.begin() as conn:
        for n in range(count):
            outbox.send(conn, URL("http://127.0.0.1:9/x"), n=n)


def scrape(collector: OutboxCollector) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    lines = generate_latest(registry).decode().splitlines()
    return {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("dispatch_outbox")}


def test_the_gauges_show_the_backlog_and_the_oldest_age(outbox):
    collector = OutboxCollector(outbox)
    assert scrape(collector) == {"dispatch_outbox_backlog": 0.0, "dispatch_outbox_oldest_age_seconds": 0.0}
    commit_calls(outbox, 3)
    gauges = scrape(collector)
    assert gauges["dispatch_outbox_backlog"] == 3.0
    assert 0.0 <= gauges["dispatch_outbox_oldest_age_seconds"] < 60


def test_a_database_that_cannot_be_read_leaves_the_gauges_out(tmp_path, caplog):
    collector = OutboxCollector(f"sqlite:///{tmp_path / 'no-table.db'}")  # no outbox table there
    assert scrape(collector) == {}
    assert "cannot read the outbox backlog" in caplog.text


class FakeManagement:
    """The management API's answer for one snapshot, without RabbitMQ."""

    def dispatch_status(self, vhost: str, queue: str) -> Any:
        summary = {"queue": queue, "vhost": vhost, "ready": 1, "unacked": 0, "delayed": 0, "dead": 0}
        return SimpleNamespace(summary=lambda: {**summary, "consumers": 1, "publish_rate": 0, "deliver_rate": 0})


def test_status_json_carries_the_outbox_backlog(outbox, capsys):
    commit_calls(outbox, 2)
    _show_status(Output(True), FakeManagement(), "/", "dispatch", outbox=True)  # type: ignore[arg-type]
    shown = json.loads(capsys.readouterr().out)
    assert shown["outbox"]["calls"] == 2 and shown["outbox"]["oldest_age"] >= 0
    assert shown["ready"] == 1


def test_status_line_carries_the_outbox_fields(outbox, capsys):
    _show_status(Output(False), FakeManagement(), "/", "dispatch", outbox=True)  # type: ignore[arg-type]
    fields = dict(field.split("=", 1) for field in capsys.readouterr().out.rstrip("\n").split("\t"))
    assert (fields["ready"], fields["outbox"], fields["outbox_oldest_age"]) == ("1", "0", "-")


def test_status_without_an_outbox_shows_none(capsys):
    _show_status(Output(True), FakeManagement(), "/", "dispatch")  # type: ignore[arg-type]
    assert "outbox" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:9/test", "sqlite:///{tmp}/no-table.db"], ids=["unreachable", "no-table"]
)
def test_status_with_an_outbox_it_cannot_read_shows_why_and_the_queues(url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISPATCH_OUTBOX_URL", url.format(tmp=tmp_path))
    _show_status(Output(True), FakeManagement(), "/", "dispatch", outbox=True)  # type: ignore[arg-type]
    shown = json.loads(capsys.readouterr().out)
    assert shown["ready"] == 1 and shown["outbox"]["error"].startswith("outbox 'dispatch_outbox' at ")
    assert ":9/test" in shown["outbox"]["error"] or "no such table" in shown["outbox"]["error"]

    _show_status(Output(False), FakeManagement(), "/", "dispatch", outbox=True)  # type: ignore[arg-type]
    fields = dict(field.split("=", 1) for field in capsys.readouterr().out.rstrip("\n").split("\t"))
    assert fields["ready"] == "1" and fields["outbox_error"].startswith("outbox 'dispatch_outbox' at ")
