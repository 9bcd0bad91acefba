"""Secrets stay home: planted everywhere a user can put one, looked for everywhere a worker's words end up.

The secrets: a password in the call's URL (and a token as a URL's user name), a destination's headers (one from
``${SHOP_TOKEN}``, one written in the file), the worker's signing secret and a
host's own, a gateway token, the Redis password (in the worker's
``DISPATCH_RESULTS_URL``: this Redis has none, so any is accepted) and a
broker password (in a second node of ``DISPATCH_BROKER_URL`` nothing listens
on, which a worker may try first).  The calls fail in every way: refused, timed
out, 404, 500, 503, redirected away (and refused there), redirected away with
a body, a body that is not the protocol, a failure answer.  None of the secrets
may be in the worker's log, the stored outcomes (every Redis value of the
calls), ``get()``'s exceptions, the attempts, ``dispatch result`` /
``dispatch attempts``, ``/metrics``, or the gateway's answers about the calls
and its log (a gateway holding the gateway token, asked about them, and given
a call with a password to a private address, which it refuses).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
import requests

from dispatch import DispatchError
from dispatch.signing import generate_secret
from tests.support import AnsweringHandler, serving_handler

from .support import REDIS_DB, TEST_ENV, dispatch, free_port, wait_for
from .test_gateway import Gateway

pytestmark = pytest.mark.integration

_RUN = uuid.uuid4().hex[:10]
SECRETS = {
    "url password": f"urlpw-{_RUN}",
    "a token as a URL's user name": f"ghp_{_RUN}{_RUN}",
    "destination header from ${SHOP_TOKEN}": f"shoptok-{_RUN}",
    "destination header in the file": f"apikey-{_RUN}",
    "signing secret": generate_secret(),
    "a host's own signing secret": generate_secret(),
    "gateway token": f"gwtoken-{_RUN}-{_RUN}",
    "Redis password": f"redispw-{_RUN}",
    "broker password": f"brokerpw-{_RUN}",
}
TOKEN_AS_USER = "a token as a URL's user name"


class Hostile(AnsweringHandler):
    """Fails by its path: ``/404``, ``/500``, ``/503``, ``/slow``, ``/not-json``, ``/failure``, ``/away[-307]``;
    ``/ok`` succeeds."""

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(5)  # past the worker's 1 s deadline
        elif path in ("/away", "/away-307"):
            status = 302 if path == "/away" else 307
            self.answer(status, b"", Location=f"http://localhost:{self.server.closed_port}/landing")
        elif path == "/not-json":
            self.answer(200, b"<html>surely not the protocol</html>")
        elif path == "/failure":
            self.answer(200, json.dumps({"status": "failure", "reason": "the endpoint says no"}).encode())
        elif path == "/ok":
            self.answer(200, json.dumps({"status": "success", "retval": "fine"}).encode())
        else:
            self.answer(int(path.strip("/")), b"{}")

    do_POST = do_GET


@pytest.fixture
def hostile() -> Iterator[ThreadingHTTPServer]:
    with serving_handler(Hostile, closed_port=free_port()) as server:
        yield server


def test_no_secret_is_in_any_log_outcome_attempt_cli_output_metric_or_gateway_answer(make_worker, hostile, tmp_path):
    port = hostile.server_address[1]
    destinations = tmp_path / "destinations.toml"
    destinations.write_text(
        f'[destinations."127.0.0.1:{port}"]\n'
        f'headers = {{ X-Shop-Token = "${{SHOP_TOKEN}}", Api-Key = "{SECRETS["destination header in the file"]}" }}\n'
        'signing_secret = "${HOST_SECRET}"\n'
    )
    broker = TEST_ENV["DISPATCH_BROKER_URL"]
    vhost = broker.rsplit("/", 1)[1]
    metrics_port = free_port()
    worker = make_worker(
        DISPATCH_DESTINATIONS=str(destinations),
        SHOP_TOKEN=SECRETS["destination header from ${SHOP_TOKEN}"],
        HOST_SECRET=SECRETS["a host's own signing secret"],
        DISPATCH_SIGNING_SECRET=SECRETS["signing secret"],
        DISPATCH_GATEWAY_TOKEN=SECRETS["gateway token"],
        DISPATCH_RESULTS_URL=f"redis://:{SECRETS['Redis password']}@127.0.0.1:6379/{REDIS_DB}",
        DISPATCH_BROKER_URL=f"{broker};amqp://guest:{SECRETS['broker password']}@127.0.0.1:{free_port()}/{vhost}",
        DISPATCH_METRICS_PORT=str(metrics_port),
        DISPATCH_TIMEOUT="1",
        DISPATCH_MAX_ATTEMPTS="2",
    )
    base = f"http://user:{SECRETS['url password']}@127.0.0.1:{port}"
    calls = {
        "refused": (f"http://user:{SECRETS['url password']}@127.0.0.1:{hostile.closed_port}/hook", "GET"),
        "timed out": (f"{base}/slow", "GET"),
        "404": (f"{base}/404", "GET"),
        "500": (f"{base}/500", "GET"),
        "503": (f"{base}/503", "GET"),
        "redirected away, refused there": (f"{base}/away", "GET"),
        "redirected away with a body": (f"{base}/away-307", "POST"),
        "not the protocol": (f"{base}/not-json", "POST"),
        "a failure answer": (f"{base}/failure?x=1", "GET"),
        "a token as the user name": (f"http://{SECRETS[TOKEN_AS_USER]}@127.0.0.1:{port}/500", "GET"),
    }
    handles = {what: worker.send(url, method, {"x": 1}) for what, (url, method) in calls.items()}
    shown: dict[str, str] = {}
    for what, handle in handles.items():
        with pytest.raises(DispatchError) as raised:
            handle.get(timeout=60)
        shown[f"get() of {what}"] = f"{type(raised.value).__name__}: {raised.value}"
        shown[f"attempts of {what}"] = json.dumps(handle.attempts())
        for command in ("result", "attempts"):
            done = dispatch(command, handle.message_id)
            shown[f"dispatch {command} of {what}"] = done.stdout + done.stderr
    assert "user:***@" in shown["get() of refused"]  # the URL is still named, its password masked
    on_its_queue = {"DISPATCH_QUEUE": worker.queue}
    two_calls = ["call", "--wait", f"{base}/ok", f"{base}/ok?y=2"]  # more than one: each shown with its URL
    for command in (["call", "--json", "--wait", f"{base}/ok", "x=1"], two_calls):
        done = dispatch(*command, env=on_its_queue)
        shown[f"dispatch {' '.join(command[:2])}"] = done.stdout + done.stderr
        assert done.returncode == 0 and "user:***@" in done.stdout, done.stdout + done.stderr
    for command in (["call", "--json", "ftp://user:{0}@h/x"], ["call", "http://user:{0}@h:99999/x"]):
        done = dispatch(*(arg.format(SECRETS["url password"]) for arg in command), env=on_its_queue)
        shown[f"dispatch {' '.join(command)} (refused)"] = done.stdout + done.stderr
        assert done.returncode == 2, done.stdout + done.stderr
    for command in (["dead", "list", "--json"], ["dead", "list"]):
        done = dispatch(*command, env=on_its_queue)
        shown[f"dispatch {' '.join(command)}"] = done.stdout + done.stderr
        assert done.returncode == 0 and "user:***@" in done.stdout, done.stdout + done.stderr

    token = SECRETS["gateway token"]
    gateway = Gateway(
        tmp_path / "gateway.log", DISPATCH_GATEWAY_TOKEN=token, DISPATCH_QUEUE=worker.queue,
        DISPATCH_ALLOWED_HOSTS="127.0.0.1",
    )  # fmt: skip
    try:
        queued = gateway.post({"url": f"{base}/ok", "params": {"x": 1}}, token)
        assert queued.status_code == 202, queued.text
        shown["gateway queueing a call"] = queued.text
        ok = f"/calls/{queued.json()['id']}"
        outcome = wait_for(lambda: (found := gateway.get(ok, token).json())["state"] == "success" and found, 60, "ok")
        shown["gateway's outcome of a call it queued"] = json.dumps(outcome)
        for what, handle in handles.items():
            for path in (f"/calls/{handle.message_id}", f"/calls/{handle.message_id}/attempts"):
                shown[f"gateway {path} of {what}"] = gateway.get(path, token).text
        private = {"url": f"http://user:{SECRETS['url password']}@10.0.0.1/hook", "params": {"x": 1}}
        shown["gateway refusing a private address"] = gateway.post(private, token).text
        shown["the console's dead letters"] = dead = gateway.get("/console/dead", token).text
        assert "user:***@" in dead, dead
        some = re.findall(r'name="id" value="([^"]+)"', dead)[:3]
        confirm = requests.post(gateway.base + "/console/dead/confirm", data={"action": "discard", "id": some},
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
        shown["the console's confirmation"] = confirm.text
        assert "user:***@" in confirm.text, confirm.text
        shown["gateway without a token"] = gateway.post(private, None).text
        invalid = {
            "not http": {"url": f"ftp://user:{SECRETS['url password']}@h/x"},
            "bad params": {"url": f"{base}/ok", "params": {"x": {"nested": [1]}}},  # the whole body is its input
        }
        for what, body in invalid.items():
            refused = gateway.post(body, token)
            shown[f"gateway's 422 for {what}"] = refused.text
            assert refused.status_code == 422 and "user:***@" in refused.text, refused.text
    finally:
        gateway.stop()
    shown["the gateway's log"] = gateway.log_path.read_text()
    assert "Logging error" not in shown["the gateway's log"]  # redacting keeps every line writable
    assert "GET http://user:***@127.0.0.1" in shown["the gateway's log"]  # the queued call, its password masked

    import redis

    client = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"])
    for handle in handles.values():
        for key in client.scan_iter(f"*{handle.message_id}*"):
            shown[f"Redis {key!r}"] = repr(_value(client, key))
    assert any(name.startswith("Redis") for name in shown), "no outcome found in Redis"

    metrics = wait_for(lambda: _scrape(metrics_port), 30, "the worker's /metrics")
    shown["/metrics"] = metrics
    shown["the worker's log"] = wait_for(lambda: _logged_every_call(worker, handles), 30, "the call log")

    leaks = [(where, secret) for where, text in shown.items() for secret, value in SECRETS.items() if value in text]
    assert leaks == [], "\n".join(f"{secret} in {where}: {shown[where][:2000]}" for where, secret in leaks)


def _value(client, key: bytes) -> object:
    kind = client.type(key).decode()
    read = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1)}
    return read.get(kind, lambda k: kind)(key)


def _scrape(port: int) -> str | None:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.ConnectionError:
        return None
    return text if "dispatch_calls_total" in text else None


def _logged_every_call(worker, handles: dict) -> str | None:
    log = worker.log()
    return log if all(handle.message_id in log for handle in handles.values()) else None
