"""Attacks on the real console (a ``dispatch gateway`` process): no way in without a token, no forged form,
no tampered session, and its security headers on every answer.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator
from unittest import mock
from urllib.parse import urljoin

import pytest
import requests

from dispatch import CallResult
from dispatch.console.session import SESSION_SECONDS, Sessions
from dispatch.outbox import Outbox

from .console_support import OTHER_TOKEN, TOKEN, ConsoleGateway, csrf_of
from .support import free_port

pytestmark = pytest.mark.integration

CALL = "00000000-0000-0000-0000-000000000000"

#: Every route of the console but the sign-in form, and what a forged request to it would carry.
ROUTES = [
    ("GET", "/", None),
    ("GET", "/dead", None),
    ("GET", "/dead?host=x&error=y", None),
    ("GET", "/hosts", None),
    ("GET", f"/calls/{CALL}", None),
    ("GET", f"/calls?id={CALL}", None),
    ("GET", "/no-such-page", None),
    ("POST", f"/calls/{CALL}/cancel", {"csrf": "x"}),
    ("POST", "/dead/confirm", {"action": "discard", "id": CALL}),
    ("POST", "/dead/replay", {"id": CALL}),
    ("POST", "/dead/discard", {"id": CALL}),
    ("POST", "/hosts/close-breaker", {"host": "example.com"}),
    ("POST", "/sign-out", {}),
]


@pytest.fixture(scope="module")
def gateway(vhost, redis_db, tmp_path_factory) -> Iterator[ConsoleGateway]:
    process = ConsoleGateway(tmp_path_factory.mktemp("console-security") / "gateway.log")
    yield process
    process.stop()


def is_only_the_sign_in_form(answer: requests.Response) -> bool:
    forms = re.findall(r'<form[^>]*action="([^"]+)"', answer.text)
    return (
        answer.status_code == 401
        and '<h1 id="sign-in-title">Sign in</h1>' in answer.text
        and forms == ["/console/sign-in"]
        and "<nav" not in answer.text
        and "<table" not in answer.text
    )


@pytest.mark.parametrize(("method", "path", "form"), ROUTES)
def test_without_a_token_every_route_answers_only_the_sign_in_form(gateway, method, path, form):
    answer = requests.request(method, gateway.console + path, data=form, timeout=10, allow_redirects=False)
    assert is_only_the_sign_in_form(answer), (answer.status_code, answer.text)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="dispatch"'


def test_the_console_without_its_slash_leads_to_it(gateway):
    answer = requests.get(gateway.base + "/console", timeout=10, allow_redirects=False)
    assert answer.status_code == 307 and answer.headers["Location"] == "/console/"  # was the API's JSON 401
    assert is_only_the_sign_in_form(requests.get(gateway.base + "/console", timeout=10))
    client = gateway.signed_in()
    assert "<h1>Overview</h1>" in client.get(gateway.base + "/console", timeout=10).text
    assert requests.get(gateway.base + "/consoles", timeout=10).status_code == 401  # nothing else is opened


def test_a_body_is_not_parsed_before_the_token_is_checked(gateway):
    broken = "multipart/form-data; boundary=x"  # a body the form parser would refuse with 400
    for path in ("/dead/discard", "/dead/confirm", "/hosts/close-breaker"):
        answer = requests.post(gateway.console + path, data=b"\xff\x00 not multipart", timeout=10,
                               headers={"Content-Type": broken})  # fmt: skip
        assert is_only_the_sign_in_form(answer), answer.text


def test_a_wrong_bearer_token_is_refused_and_a_right_one_admitted(gateway):
    wrong = requests.get(gateway.console + "/", headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid bearer token"}
    assert "invalid_token" in wrong.headers["WWW-Authenticate"]
    for token in (TOKEN, OTHER_TOKEN):  # any of the gateway's tokens
        right = requests.get(gateway.console + "/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert right.status_code == 200 and "<h1>Overview</h1>" in right.text


def test_a_script_acts_with_its_bearer_token_and_no_csrf_token(gateway):
    answer = requests.post(
        gateway.console + "/hosts/close-breaker", data={"host": "nowhere.example"},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, allow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303  # no cookie travels with a script, so no form can be forged for it


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(gateway):
    for proto, secure in (("http", False), ("https", True)):
        client = requests.Session()
        form = client.get(gateway.console + "/sign-in", headers={"X-Forwarded-Proto": proto}, timeout=10)
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce
        answer = client.post(
            gateway.console + "/sign-in", data={"token": TOKEN, "nonce": nonce[1], "next": "/console/"},
            headers={"X-Forwarded-Proto": proto, "Cookie": f"dispatch_console_sign_in={nonce[1]}"},
            timeout=10, allow_redirects=False,
        )  # fmt: skip
        assert answer.status_code == 303, answer.text
        cookie = answer.headers["Set-Cookie"]
        assert "dispatch_console=v1." in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/console/" in cookie
        assert ("Secure" in cookie) is secure


def test_the_sign_in_form_needs_its_own_nonce_and_sends_nowhere_else(gateway):
    no_cookie = requests.post(gateway.console + "/sign-in", data={"token": TOKEN, "nonce": "x"}, timeout=10)
    assert no_cookie.status_code == 403 and "Set-Cookie" not in no_cookie.headers

    client = requests.Session()
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get(gateway.console + "/sign-in", timeout=10).text)
    assert nonce
    away = client.post(
        gateway.console + "/sign-in", data={"token": TOKEN, "nonce": nonce[1], "next": "//evil.example/console/"},
        timeout=10, allow_redirects=False,
    )  # fmt: skip
    assert away.status_code == 303 and away.headers["Location"] == "/console/"  # no open redirect


def issued(token: str, at: float | None = None) -> str:
    """A session cookie signed as the gateway signs one for ``token`` (its key derives from the token alone)."""
    sessions = Sessions([token])
    with mock.patch("dispatch.console.session.time.time", return_value=time.time() if at is None else at):
        return sessions.issue(sessions.key_id_for(token) or "")


def test_a_tampered_forged_or_expired_session_is_refused(gateway):
    client = gateway.signed_in()
    version, key_id, session_id, expires, mac = client.cookies["dispatch_console"].split(".")
    other_id = session_id[:-1] + ("A" if session_id[-1] != "A" else "B")
    refused = [
        f"{version}.{key_id}.{session_id}.{int(expires) + 3600}.{mac}",  # a longer life
        f"{version}.{key_id}.{other_id}.{expires}.{mac}",  # another session
        f"{version}.{key_id}.{session_id}.{expires}.{mac[:-2]}xx",  # another MAC
        f"{version}.{'0' * 16}.{session_id}.{expires}.{mac}",  # another key
        f"v2.{key_id}.{session_id}.{expires}.{mac}",
        issued("another-token-not-accepted-0000"),  # well signed, with a token the gateway does not take
        issued(TOKEN, at=time.time() - SESSION_SECONDS - 5),  # well signed, expired
        "",
        "v1....",
        "garbage",
        f"{version}.{key_id}.{session_id}.{expires}.{mac[:-1]}é",  # not ASCII: was a TypeError, a 500
        f"{version}.{key_id}.{session_id}.{expires}.\u00ff{mac}",
    ]
    for cookie in refused:
        answer = requests.get(gateway.console + "/", cookies={"dispatch_console": cookie}, timeout=10)
        assert is_only_the_sign_in_form(answer), cookie
        raw = requests.get(gateway.console + "/sign-in", headers={"Cookie": f"dispatch_console={cookie}"}, timeout=10)
        assert raw.status_code == 200 and '<h1 id="sign-in-title">' in raw.text, cookie  # the form, not a 500
    assert requests.get(gateway.console + "/", cookies={"dispatch_console": issued(TOKEN)}, timeout=10).ok
    assert client.get(gateway.console + "/", timeout=10).status_code == 200  # the real one still works


def test_forms_without_this_sessions_csrf_token_are_refused(gateway):
    client = gateway.signed_in()
    other = gateway.signed_in(OTHER_TOKEN)
    theirs = csrf_of(other.get(gateway.console + "/hosts", timeout=10).text)
    for form in ({}, {"csrf": ""}, {"csrf": "guessed"}, {"csrf": theirs}):
        for path in ("/hosts/close-breaker", "/dead/discard", f"/calls/{CALL}/cancel", "/sign-out"):
            answer = client.post(gateway.console + path, data={"host": "x", "id": CALL, **form}, timeout=10,
                                 allow_redirects=False)  # fmt: skip
            assert answer.status_code == 403, (path, form, answer.text)
            assert "did not come from this console" in answer.text
    mine = csrf_of(client.get(gateway.console + "/hosts", timeout=10).text)
    done = client.post(gateway.console + "/hosts/close-breaker", data={"host": "x", "csrf": mine}, timeout=10,
                       allow_redirects=False)  # fmt: skip
    assert done.status_code == 303


def test_the_session_does_not_open_the_gateway_api(gateway):
    client = gateway.signed_in()
    assert client.get(f"{gateway.base}/calls/{CALL}", timeout=10).status_code == 401  # the API takes tokens only


@pytest.mark.parametrize("path", ["/sign-in", "/", "/static/console.css", "/no-such-page", "/dead/replay"])
def test_every_answer_carries_the_security_headers(gateway, path):
    for client in (requests, gateway.signed_in()):
        answer = client.get(gateway.console + path, timeout=10, allow_redirects=False)
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_pages_carry_no_inline_script_or_style(gateway):
    client = gateway.signed_in()
    for path in ("/", "/dead", "/hosts", f"/calls/{CALL}", "/sign-in"):
        page = client.get(gateway.console + path, timeout=10).text
        assert "<script" not in page and "style=" not in page and "<style" not in page, path


@pytest.fixture(scope="module")
def cut_off(tmp_path_factory) -> Iterator[ConsoleGateway]:
    """A gateway whose RabbitMQ, its management API and Redis are a closed port: what the console says when down."""
    folder = tmp_path_factory.mktemp("console-cut-off")
    destinations = folder / "destinations.toml"
    destinations.write_text('[destinations."example.com"]\nbreaker = { failures = 2, cooldown = 60 }\n')
    closed = free_port()
    process = ConsoleGateway(
        folder / "gateway.log",
        DISPATCH_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed}/",
        DISPATCH_MANAGEMENT_URL=f"http://guest:guest@127.0.0.1:{closed}/",
        DISPATCH_RESULTS_URL=f"redis://127.0.0.1:{closed}/0",
        DISPATCH_DESTINATIONS=str(destinations),
        DISPATCH_SEND_TIMEOUT="1",
    )
    yield process
    process.stop()


def test_with_rabbitmq_and_redis_down_pages_and_actions_answer_503_saying_why(cut_off):
    client = cut_off.signed_in()  # the overview answers: each of its parts says what failed
    csrf = csrf_of(client.get(cut_off.console + "/", timeout=10).text)
    other = "11111111-1111-1111-1111-111111111111"
    answers = {
        "the dead letters": client.get(cut_off.console + "/dead", timeout=30),
        "confirming": client.post(cut_off.console + "/dead/confirm", timeout=30,
                                  data={"csrf": csrf, "action": "replay", "id": [CALL, other]}),
        "replaying": client.post(cut_off.console + "/dead/replay", timeout=30,
                                 data={"csrf": csrf, "id": [CALL, other]}),
        "discarding": client.post(cut_off.console + "/dead/discard", data={"csrf": csrf, "id": CALL}, timeout=30),
        "closing": client.post(cut_off.console + "/hosts/close-breaker", timeout=30,
                               data={"csrf": csrf, "host": "example.com"}),
    }  # fmt: skip
    for what, answer in answers.items():
        assert answer.status_code == 503, (what, answer.status_code, answer.text)
        assert "<h1>Sorry</h1>" in answer.text and "Internal Server Error" not in answer.text, what
    assert "cannot read the dead letters: AMQPConnectionError" in answers["the dead letters"].text
    assert "Connection refused" in answers["the dead letters"].text  # pika's own words, not an empty message
    assert "cannot read the dead letters: AMQPConnectionError" in answers["confirming"].text
    assert "cannot replay the dead letters" in answers["replaying"].text
    assert "Which of the 2 selected dead letter(s) were replayed before it stopped cannot be told" in html.unescape(
        answers["replaying"].text
    )
    assert "cannot discard the dead letters" in answers["discarding"].text
    assert "cannot close example.com&#39;s breaker: ConnectionError" in answers["closing"].text
    assert client.get(cut_off.console + "/hosts", timeout=30).status_code == 200  # a page that reads: it says why


def test_a_call_with_no_record_yet_can_be_cancelled_before_a_worker_takes_it(gateway):
    call_id = str(uuid.uuid4())  # as one sent from Python or the outbox, still queued: nothing recorded
    client = gateway.signed_in()
    page = client.get(f"{gateway.console}/calls/{call_id}", timeout=10)
    assert page.status_code == 200 and "no record yet (queued?)" in page.text  # was a 404
    assert "Cancel this call" in page.text
    done = client.post(f"{gateway.console}/calls/{call_id}/cancel", data={"csrf": csrf_of(page.text)}, timeout=10)
    assert done.ok and "Cancelled: it will never be sent." in done.text, done.text
    assert CallResult.from_id(call_id).state() == "cancelled"  # as res.cancel() records it
    assert "Cancel this call" not in done.text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/console/",
        "//evil.example/console/",
        "/\t/evil.example/console/",  # a browser drops tabs and newlines from a URL: //evil.example
        "/\n/evil.example/console/",
        "\t//evil.example/console/",
        "/%2F/evil.example/console/",
        "%2F%2Fevil.example/console/",
        "\\\\evil.example/console/",
        "/console\\/..\\..\\evil.example",
        "/console/\t/\t/evil.example",
        "javascript:alert(1)//console/",
    ],
)
def test_after_signing_in_the_browser_goes_nowhere_but_the_console(gateway, target):
    client = requests.Session()
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get(gateway.console + "/sign-in", timeout=10).text)
    assert nonce
    answer = client.post(gateway.console + "/sign-in", data={"token": TOKEN, "nonce": nonce[1], "next": target},
                         timeout=10, allow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    location = re.sub(r"[\t\n\r]", "", answer.headers["Location"])  # what a browser would follow
    assert location.startswith("/console/") and not location.startswith("//"), location
    assert urljoin(gateway.console + "/", location).startswith(gateway.console + "/"), location


def test_the_overview_shows_the_outbox_backlog(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"  # an outbox of the test's own, never relayed
    outbox = Outbox(url)
    outbox.create_table()
    with outbox.engine.begin() as conn:
        for n in range(2):
            outbox.send(conn, "http://127.0.0.1:9/x", n=n)
    outbox.engine.dispose()
    with_outbox = ConsoleGateway(tmp_path / "gateway.log", DISPATCH_OUTBOX_URL=url)
    try:
        page = with_outbox.signed_in().get(with_outbox.console + "/", timeout=10).text
    finally:
        with_outbox.stop()
    section = page.partition('<h2 id="outbox-title">Outbox</h2>')[2].partition("</section>")[0]
    assert "<strong>2</strong> committed call(s) not yet published" in section
    assert "the oldest has waited" in section

    broken = ConsoleGateway(tmp_path / "broken.log", DISPATCH_OUTBOX_URL=f"sqlite:///{tmp_path / 'none.db'}")
    try:
        page = broken.signed_in().get(broken.console + "/", timeout=10).text
    finally:
        broken.stop()
    section = page.partition('<h2 id="outbox-title">Outbox</h2>')[2].partition("</section>")[0]
    assert "cannot read the outbox backlog" in section and "no such table" in section  # the rest of the page stays
