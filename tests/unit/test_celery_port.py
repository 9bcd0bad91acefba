"""Celery's HTTP callback code ports by changing the import (issue 21, point 8)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

import dispatch
from dispatch import URL, HttpDispatchTask, MutableURL
from dispatch.testing import stub_worker

ROOT = Path(__file__).resolve().parents[2]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    """examples/receivers/plain_python.py (``/multiply``, ``/echo``) on a free port."""
    spec = importlib.util.spec_from_file_location("plain_python", ROOT / "examples" / "receivers" / "plain_python.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = make_server("127.0.0.1", 0, module.app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_celerys_http_dispatch_task_example(receiver):
    with stub_worker():
        res = HttpDispatchTask.delay(url=f"{receiver}/multiply", method="GET", x=10, y=10)
        assert res.get(timeout=10) == 100
        assert HttpDispatchTask.delay(url=f"{receiver}/multiply", method="POST", x=2, y=5).get(timeout=10) == 10
        assert HttpDispatchTask.apply_async((f"{receiver}/multiply",), {"x": 3, "y": 3}).get(timeout=10) == 9


def test_a_subclass_sets_the_url_and_method_as_celery_says(receiver):
    class Multiply(HttpDispatchTask):
        url = f"{receiver}/multiply"
        method = "POST"

    class Echo(HttpDispatchTask):
        url = f"{receiver}/echo"

    with stub_worker():
        assert Multiply.delay(x=6, y=7).get(timeout=10) == 42
        given = Multiply.delay(url=f"{receiver}/echo", method="GET", a="1")  # the class's url and method are defaults
        assert given.args[:2] == (f"{receiver}/echo", "GET") and given.get(timeout=10) == {"a": "1"}
        assert Multiply.apply_async((f"{receiver}/echo",), {"b": "2"}).args[:2] == (f"{receiver}/echo", "POST")
        assert Echo.delay(a="1").get(timeout=10) == {"a": "1"}
        later = Multiply.apply_async(kwargs={"x": 1, "y": 1}, countdown=3600)
        assert later.state() == "scheduled" and later.cancel() is True
        at = Multiply.apply_async(kwargs={"x": 1, "y": 1}, eta=datetime.now(timezone.utc) + timedelta(hours=1))
        assert at.cancel() is True


def test_bad_input_raises_in_the_caller():
    with pytest.raises(ValueError, match="no url"):
        HttpDispatchTask.delay(x=1)
    with pytest.raises(ValueError, match="not supported"):
        HttpDispatchTask.delay(url="http://127.0.0.1:9/x", method="BREW")
    with pytest.raises(ValueError, match="args"):
        HttpDispatchTask.apply_async(("http://127.0.0.1:9/x", "GET", 1))


def test_mutable_url_is_a_url_whose_query_is_editable():
    url = MutableURL("http://127.0.0.1:8000/multiply?x=1")
    assert isinstance(url, URL)
    url.query["x"] = "5"
    url.query["y"] = "2"
    assert str(url) == "http://127.0.0.1:8000/multiply?x=5&y=2"


def test_dir_of_the_package_shows_its_public_names_only():
    names = dir(dispatch)
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib", "version"} & set(names)
    assert {"URL", "MutableURL", "HttpDispatchTask", "HttpDispatch", "CallResult", "__version__"} <= set(names)
    assert all(hasattr(dispatch, name) for name in dispatch.__all__)
