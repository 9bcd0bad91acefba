"""Attacks on the real gateway process, and on receivers sharing the real Redis.

* A stranger (no token, or a wrong one) gets a one-line 401, whatever the request:
  a body that is not JSON or not UTF-8, a wrong content type, an unknown actor, a
  malformed id, a method or path the gateway does not serve -- never the parser's
  422, a 404 or a 405.
* A 50 MiB body, declared with Content-Length or streamed chunked, is refused
  without the gateway buffering it: a stranger's with 401 before a byte of it is
  read, a token holder's with 413 as soon as it is known to be too large
  (``DISPATCH_GATEWAY_MAX_BODY``).  The gateway's resident memory is read from
  /proc before and after.  The requests are written on a raw socket, so the test
  sees exactly when the answer comes.
* Per-call options beyond their ceilings (``timeout: 1e308``, ...) are a 422
  naming the bound, not a 500 or a call that dies in the worker; the OpenAPI
  document states the same bounds.
* Two receivers sharing a :class:`~dispatch.receiver.RedisReplayStore` refuse
  each other's replays (Redis db 9, a key prefix of this run's own).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests

from dispatch.receiver import Receiver, RedisReplayStore
from dispatch.signing import generate_secret, sign_request
from dispatch.validation import (
    MAX_ATTEMPTS,
    MAX_SCHEDULE_DELAY,
    MAX_SCHEDULE_ENTRIES,
    MAX_SCHEDULE_SPAN,
    MAX_TIMEOUT,
)
from tests.support import serving_asgi, serving_wsgi

from .support import QUEUE, TEST_ENV, delete_queues, queue_depth
from .test_gateway import TOKEN, Gateway

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
DEFAULT_LIMIT = 1 * MiB
ATTACK = 50 * MiB
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    """A gateway with the default body limit, on a queue no worker consumes."""
    queue = f"{QUEUE}-security-{uuid.uuid4().hex[:8]}"
    process = Gateway(tmp_path_factory.mktemp("gateway") / "gateway.log", DISPATCH_QUEUE=queue)
    yield process
    process.stop()
    delete_queues(queue)


@pytest.fixture(scope="module")
def small_gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    """A gateway whose body limit is set to 2000 bytes; 127.0.0.1 allowed, its queue unconsumed."""
    queue = f"{QUEUE}-small-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("small-gateway") / "gateway.log"
    process = Gateway(log, DISPATCH_QUEUE=queue, DISPATCH_GATEWAY_MAX_BODY="2000", DISPATCH_ALLOWED_HOSTS="127.0.0.1")
    yield process
    process.stop()
    delete_queues(queue)


# -- the body limit ------------------------------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB."""
    fields = {}
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115 -- /proc, read at once
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def _read_status(sock: socket.socket) -> int | None:
    """The status code of the response on ``sock``, or None if the connection died without one."""
    data = b""
    sock.settimeout(10)
    try:
        while b"\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
    except OSError:
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split()[1])


def attack(port: int, *, chunked: bool, size: int = ATTACK, token: str | None = None) -> tuple[int | None, int, float]:
    """POST ``size`` bytes of JSON whitespace to /calls on a raw socket, as fast as the server takes them.

    Stops sending as soon as an answer is readable (or the server closes).  Returns the status
    code, the body bytes sent and the seconds until the answer.
    """
    head = [b"POST /calls HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
    head.append(b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}".encode())
    if token:
        head.append(f"Authorization: Bearer {token}".encode())
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        # A server that trusts Content-Length answers before any of the body is sent.
        answered = _readable(sock, 0.5)
        while not answered and sent < size:
            chunk = b" " * min(CHUNK, size - sent)
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            try:
                sock.sendall(frame)
            except OSError:  # the server answered and closed: read what it said
                break
            sent += len(chunk)
            answered = _readable(sock, 0)
        if not answered and chunked:
            with contextlib.suppress(OSError):  # the server may have answered and closed meanwhile
                sock.sendall(b"0\r\n\r\n")
        status = _read_status(sock)
    return status, sent, time.monotonic() - started


# -- strangers ------------------------------------------------------------------------------------

WRONG_TOKEN = "wrong-token-0123456789abcdef"
STRANGERS = {"no token": {}, "wrong token": {"Authorization": f"Bearer {WRONG_TOKEN}"}}
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
JSON = "application/json"
REQUESTS = {  # each answered 400, 404, 405 or 422 with details to a token holder
    "not JSON": ("POST", "/calls", b"{not json", JSON),
    "not UTF-8": ("POST", "/calls", b'{"url": "\xff\xfe"}', JSON),
    "no body": ("POST", "/calls", b"", JSON),
    "a form": ("POST", "/calls", b"url=http://127.0.0.1/", "application/x-www-form-urlencoded"),
    "no content type": ("POST", "/calls", b"[1, 2]", None),
    "huge within the limit": ("POST", "/calls", b"[" + b"1," * 400_000 + b"1]", JSON),
    "unknown actor": ("POST", "/tasks/no-such-actor", b'{"args": [1, 2]}', JSON),
    "unknown actor, not JSON": ("POST", "/tasks/no-such-actor", b"\x00\x01", JSON),
    "malformed id": ("GET", "/calls/not-a-uuid", b"", None),
    "malformed id to cancel": ("DELETE", "/calls/not-a-uuid", b"", None),
    "method not served": ("PUT", f"/calls/{uuid.uuid4()}", b"{}", JSON),
    "path not served": ("GET", "/admin", b"", None),
}


@pytest.mark.parametrize("headers", STRANGERS.values(), ids=STRANGERS.keys())
@pytest.mark.parametrize(("method", "path", "body", "content_type"), REQUESTS.values(), ids=REQUESTS.keys())
def test_a_stranger_gets_a_one_line_401_whatever_the_request(gateway, headers, method, path, body, content_type):
    headers = {**headers, **({"Content-Type": content_type} if content_type else {})}
    response = requests.request(method, gateway.base + path, data=body, headers=headers, timeout=30)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert list(response.json()) == ["detail"], response.text
    assert response.json()["detail"] in ("bearer token required", "invalid bearer token")
    # The same requests with the token: what a stranger would have learnt.
    answered = requests.request(method, gateway.base + path, data=body, headers={**headers, **AUTHORIZED}, timeout=30)
    assert answered.status_code in (400, 404, 405, 422), answered.text


def test_the_documents_are_open_to_anyone(gateway):
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert requests.get(gateway.base + path, timeout=10).status_code == 200, path


@pytest.mark.parametrize("token", [None, TOKEN], ids=["stranger", "token holder"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50_mib_body_is_refused_without_being_buffered(gateway, chunked, token):
    pid = gateway.process.pid
    assert attack(gateway.port, chunked=chunked, size=10)[0] in (401, 422)  # warm up: first-request imports
    before = memory_kib(pid)
    peak_reset = reset_peak(pid)

    status, sent, seconds = attack(gateway.port, chunked=chunked, token=token)

    after = memory_kib(pid)
    assert status == (413 if token else 401), (status, sent)
    assert seconds < 5
    if chunked and token:  # answered once the limit is crossed, not after the 50 MiB
        assert DEFAULT_LIMIT <= sent < 10 * MiB, sent
    else:  # answered from the headers alone
        assert sent == 0
    grown_mib = (after["VmRSS"] - before["VmRSS"]) / 1024
    assert grown_mib < 10, f"RSS grew by {grown_mib:.1f} MiB"
    if peak_reset:
        peak_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
        assert peak_mib < 10, f"peak RSS grew by {peak_mib:.1f} MiB"
    # Still serving.
    assert gateway.get(f"/calls/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_with_a_valid_token_too_the_limit_holds(gateway, chunked):
    status, _, _ = attack(gateway.port, chunked=chunked, size=DEFAULT_LIMIT + 1, token=TOKEN)
    assert status == 413


def test_the_limit_is_configurable_and_a_body_within_it_is_served(small_gateway, python_endpoint):
    url = python_endpoint.url("/multiply")
    before = queue_depth(small_gateway.queue)
    assert small_gateway.post({"url": url, "params": {"x": 1, "y": 2}}).status_code == 202
    refused = small_gateway.post({"url": url, "params": {"x": "9" * 2000}})
    assert refused.status_code == 413, refused.text
    assert "2000 bytes" in refused.json()["detail"]
    assert queue_depth(small_gateway.queue) == before + 1
    for chunked in (False, True):
        assert attack(small_gateway.port, chunked=chunked, size=2001, token=TOKEN)[0] == 413


def test_the_openapi_document_states_the_413(gateway):
    document = requests.get(gateway.base + "/openapi.json", timeout=10).json()
    assert "413" in document["paths"]["/calls"]["post"]["responses"]


# -- per-call option ceilings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "bound"),
    [
        ({"timeout": 1e308}, MAX_TIMEOUT),
        ({"timeout": 10**400}, MAX_TIMEOUT),  # a JSON number no float holds
        ({"max_attempts": 10**9}, MAX_ATTEMPTS),
        ({"max_attempts": 10**400}, MAX_ATTEMPTS),
        ({"retry_schedule": [1e308]}, MAX_SCHEDULE_DELAY),
        ({"retry_schedule": [1.0] * 100_000}, MAX_SCHEDULE_ENTRIES),
        ({"retry_schedule": [MAX_SCHEDULE_DELAY] * 10}, MAX_SCHEDULE_SPAN),
    ],
    ids=["timeout-1e308", "timeout-huge-int", "attempts-1e9", "attempts-huge", "delay-1e308", "long", "span"],
)
def test_options_beyond_their_ceiling_are_422_naming_it_and_nothing_is_queued(gateway, options, bound):
    before = queue_depth(gateway.queue)
    response = gateway.post({"url": "https://example.com/multiply", "options": options})
    assert response.status_code == 422, response.text
    messages = " ".join(error["msg"] for error in response.json()["detail"])
    assert next(iter(options)) in messages and f"{bound:g}" in messages, messages
    assert queue_depth(gateway.queue) == before


def test_options_at_their_ceiling_are_accepted(small_gateway, python_endpoint):
    schedule = [MAX_SCHEDULE_SPAN / MAX_SCHEDULE_ENTRIES] * MAX_SCHEDULE_ENTRIES
    options = {"timeout": MAX_TIMEOUT, "max_attempts": MAX_ATTEMPTS, "retry_schedule": schedule}
    response = small_gateway.post({"url": python_endpoint.url("/multiply"), "options": options})
    assert response.status_code == 202, response.text  # queued, never performed: no worker on that queue


def test_the_openapi_document_states_the_option_ceilings(gateway):
    document = requests.get(gateway.base + "/openapi.json", timeout=10).json()
    options = document["components"]["schemas"]["CallOptions"]["properties"]
    assert options["timeout"]["maximum"] == MAX_TIMEOUT
    assert options["max_attempts"]["maximum"] == MAX_ATTEMPTS
    assert options["retry_schedule"]["maxItems"] == MAX_SCHEDULE_ENTRIES
    assert options["retry_schedule"]["items"]["maximum"] == MAX_SCHEDULE_DELAY
    assert f"{MAX_SCHEDULE_SPAN:g}" in options["retry_schedule"]["description"]


# -- receivers sharing a Redis replay store -------------------------------------------------------


@pytest.fixture
def redis_store_prefix() -> Iterator[str]:
    prefix = f"{QUEUE}:replay:{uuid.uuid4().hex[:8]}:"  # the redis_db fixture deletes *{QUEUE}* keys too
    yield prefix
    client = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"])
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_receivers_sharing_a_redis_store_refuse_each_others_replays(redis_db, redis_store_prefix):
    secret, calls = generate_secret(), []

    def record(x):
        calls.append(x)
        return x

    def store() -> RedisReplayStore:  # each receiver its own client, as separate processes would have
        return RedisReplayStore(redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"]), prefix=redis_store_prefix)

    one = Receiver(record, secret=secret, replay_store=store())
    two = Receiver({"/record": record, "/other": record}, secret=secret, replay_store=store())
    with serving_wsgi(one) as first, serving_asgi(two.as_asgi()) as second:
        prepared = requests.Request("POST", f"{first}/record", data={"x": "1"}).prepare()
        msg_id = f"msg_{uuid.uuid4().hex}"
        prepared.headers.update(sign_request(secret, msg_id, prepared.method, prepared.url, prepared.body))
        with requests.Session() as session:
            assert session.send(prepared, timeout=10).status_code == 200
            for target in (f"{second}/record", f"{second}/other", f"{first}/record"):
                replay = prepared.copy()
                replay.url = target
                refused = session.send(replay, timeout=10)
                assert refused.status_code == 409, (target, refused.text)
    assert calls == ["1"]
    ttl_ms = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"]).pttl(redis_store_prefix + msg_id)
    assert 0 < ttl_ms <= (300 + 300 + 1) * 1000  # kept while the timestamp can still verify, no longer


def test_a_redis_store_that_is_down_makes_the_receiver_answer_503(redis_store_prefix):
    secret = generate_secret()
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    app = Receiver(lambda x: x, secret=secret, replay_store=RedisReplayStore(unreachable, prefix=redis_store_prefix))
    with serving_wsgi(app) as base:
        prepared = requests.Request("GET", f"{base}/", params={"x": "1"}).prepare()
        prepared.headers.update(sign_request(secret, "msg_down", prepared.method, prepared.url, prepared.body))
        with requests.Session() as session:
            response = session.send(prepared, timeout=10)
    assert response.status_code == 503 and response.headers["Retry-After"], response.text
