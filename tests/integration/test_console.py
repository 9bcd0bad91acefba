"""The console in a real browser: Debian's chromium (selenium, chromedriver) against a real ``dispatch gateway``,
a real worker, RabbitMQ and Redis.

An operator signs in, opens a failed call and reads its attempts, replays a dead letter and
watches it succeed, closes a breaker by hand and signs out; a form forged on another page is
refused, and without a session every page is the sign-in form.  Each page is photographed at
1280x800 into the test's directory, and into docs/console/ with ``DISPATCH_CONSOLE_SCREENSHOTS=1``.
``scripts/ensure-browser.sh`` installs chromium and chromium-driver.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait

from dispatch import URL, CallResult, RemoteExecuteError, TransportError

from .console_support import TOKEN, ConsoleGateway, csrf_of
from .support import ROOT, TEST_ENV, IsolatedWorker, delete_queues, queue_depth, unique_key, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_SHOTS = ROOT / "docs" / "console"

# Hosts named with the endpoint's port, which is this run's own: flow state in Redis is shared by every run.
DESTINATIONS = """
[destinations."127.0.0.1:{port}"]
max_concurrency = 4

[destinations."localhost:{port}"]
breaker = {{ failures = 2, cooldown = 600 }}
"""


@pytest.fixture(scope="module")
def destinations(python_endpoint, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("console") / "destinations.toml"
    path.write_text(DESTINATIONS.format(port=python_endpoint.port))
    return path


@pytest.fixture(scope="module")
def console_worker(vhost, redis_db, python_endpoint, destinations, tmp_path_factory) -> Iterator[IsolatedWorker]:
    log = tmp_path_factory.mktemp("console-worker") / "worker.log"
    worker = IsolatedWorker(log, {"DISPATCH_DESTINATIONS": str(destinations)})
    try:
        yield worker.ready(python_endpoint)
    finally:
        worker.stop()
        delete_queues(worker.queue)


@pytest.fixture(scope="module")
def gateway(console_worker, destinations, tmp_path_factory) -> Iterator[ConsoleGateway]:
    log = tmp_path_factory.mktemp("console-gateway") / "gateway.log"
    process = ConsoleGateway(log, DISPATCH_QUEUE=console_worker.queue, DISPATCH_DESTINATIONS=str(destinations))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def failed(console_worker, python_endpoint) -> Iterator[dict[str, Any]]:
    """Calls that failed for good (dead letters), and two transport failures that opened localhost's breaker.

    The hosts' flow state is deleted afterwards: it lives in the Redis database every run shares.
    """
    port = python_endpoint.port
    recovering = console_worker.send(python_endpoint.url("/flaky"), params={"key": unique_key(), "fail": 3})
    hopeless = console_worker.send(python_endpoint.url("/fail"), params={"reason": "no such order"})
    breaking = [console_worker.send(python_endpoint.url("/status/503").replace("127.0.0.1", "localhost"))]
    breaking.append(console_worker.send(python_endpoint.url("/status/503").replace("127.0.0.1", "localhost")))
    for handle, error in [(recovering, TransportError), (hopeless, RemoteExecuteError)]:
        with pytest.raises(error):
            handle.get(timeout=30)
    for handle in breaking:
        with pytest.raises(TransportError):
            handle.get(timeout=30)
    wait_for(lambda: queue_depth(f"{console_worker.queue}.XQ") == 4, 20, "four dead letters")
    yield {"recovering": recovering.message_id, "hopeless": hopeless.message_id, "broken": f"localhost:{port}"}
    client = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"])
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        for key in client.scan_iter(f"dispatch:flow:{host}:*"):
            client.delete(key)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed: run scripts/ensure-browser.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    metrics = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the page itself is 1280x800
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> Callable[[WebDriver, str], None]:
    folder = tmp_path_factory.mktemp("screenshots")
    to_docs = os.environ.get("DISPATCH_CONSOLE_SCREENSHOTS") == "1"

    def take(driver: WebDriver, name: str) -> None:
        assert driver.save_screenshot(str(folder / f"{name}.png"))
        if to_docs:
            DOCS_SHOTS.mkdir(exist_ok=True)
            assert driver.save_screenshot(str(DOCS_SHOTS / f"{name}.png"))

    return take


def text(driver: WebDriver, css: str = "main") -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def only_the_sign_in_form(driver: WebDriver) -> bool:
    """The page is the sign-in form and nothing else: no navigation, no table, no other form."""
    return (
        driver.find_element(By.TAG_NAME, "h1").text == "Sign in"
        and not driver.find_elements(By.TAG_NAME, "nav")
        and not driver.find_elements(By.TAG_NAME, "table")
        and [form.get_attribute("action") for form in driver.find_elements(By.TAG_NAME, "form")]
        == [driver.current_url.split("/console/")[0] + "/console/sign-in"]
    )


def go(driver: WebDriver, element: WebElement) -> None:
    """Click ``element`` and wait for the page it leads to."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 15).until(staleness_of(page))


def sign_in(driver: WebDriver, token: str) -> None:
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    go(driver, driver.find_element(By.CSS_SELECTOR, "form[action$='/sign-in'] button"))


PAGES = ["/", "/dead", "/hosts", "/calls/00000000-0000-0000-0000-000000000000", "/calls?id=x", "/nowhere"]


def test_without_a_session_every_page_is_the_sign_in_form(browser, gateway, failed, shot):
    for page in PAGES:
        browser.get(gateway.console + page)
        assert only_the_sign_in_form(browser), (page, browser.page_source)
        assert failed["recovering"] not in browser.page_source and gateway.port != 0
    shot(browser, "sign-in")


def test_sign_in_refuses_a_wrong_token_and_opens_the_overview(browser, gateway, failed, shot, console_worker):
    browser.get(gateway.console + "/hosts")
    sign_in(browser, "not-a-token-0123456789")
    assert "That token is not accepted." in text(browser)
    assert only_the_sign_in_form(browser)

    sign_in(browser, TOKEN)
    assert browser.current_url == gateway.console + "/hosts"  # back where the operator was going
    cookie = browser.get_cookie("dispatch_console")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console/"

    go(browser, browser.find_element(By.LINK_TEXT, "Overview"))
    # The page reloads itself; RabbitMQ's management API counts a few seconds behind.
    wait_for(lambda: "4 dead letters" in text(browser), 30, "the overview to count the dead letters", interval=0.5)
    overview = text(browser)
    assert f"Dead letters {console_worker.queue}.XQ" in overview
    broken = browser.find_element(By.XPATH, f"//tr[th/code='{failed['broken']}']").text
    assert broken.endswith("open 2")  # the breaker opened by two transport failures
    assert "Refreshing every 3 seconds" in overview
    shot(browser, "overview")


def test_a_failed_call_and_its_attempts(browser, gateway, failed, shot):
    browser.get(gateway.console + "/")
    search = browser.find_element(By.ID, "call-id")
    search.send_keys(failed["recovering"])
    go(browser, browser.find_element(By.XPATH, "//button[text()='Find call']"))
    assert browser.current_url == f"{gateway.console}/calls/{failed['recovering']}"
    page = text(browser)
    assert "failure" in page and "TransportError" in page
    timeline = browser.find_elements(By.CSS_SELECTOR, "ol.timeline > li")
    assert len(timeline) == 3
    assert all("503" in attempt.text and "TransportError" in attempt.text for attempt in timeline)
    assert [attempt.find_element(By.TAG_NAME, "h3").text.split()[1] for attempt in timeline] == ["1", "2", "3"]
    assert not browser.find_elements(By.XPATH, "//button[text()='Cancel this call']")  # too late to cancel
    shot(browser, "call-failed")


def test_replay_a_dead_letter_and_watch_it_succeed(browser, gateway, failed, shot):
    browser.get(gateway.console + "/dead")
    Select(browser.find_element(By.ID, "error")).select_by_visible_text("TransportError")
    go(browser, browser.find_element(By.XPATH, "//button[text()='Filter']"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 3 and "no such order" not in text(browser)  # the RemoteExecuteError is filtered out
    Select(browser.find_element(By.ID, "error")).select_by_visible_text("every error")
    go(browser, browser.find_element(By.XPATH, "//button[text()='Filter']"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tbody tr")) == 4
    shot(browser, "dead-letters")

    go(browser, browser.find_element(By.CSS_SELECTOR, f"button[value='replay:{failed['recovering']}']"))
    assert text(browser, "h1") == "Replay 1 dead letter?"
    assert failed["recovering"] in text(browser)
    shot(browser, "dead-letters-confirm")
    go(browser, browser.find_element(By.XPATH, "//button[text()='Yes, replay 1']"))

    assert browser.current_url.startswith(f"{gateway.console}/calls/{failed['recovering']}")
    assert "Replayed: the call is queued again" in text(browser)
    WebDriverWait(browser, 40, poll_frequency=0.5).until(lambda d: text(d, ".facts .badge") == "success")
    assert "4" in text(browser, ".facts pre")  # the flaky endpoint's fourth hit answered
    timeline = browser.find_elements(By.CSS_SELECTOR, "ol.timeline > li")
    assert len(timeline) == 4 and "it succeeded" in timeline[-1].text  # the replay's attempt, after the three
    shot(browser, "call-replayed")


def test_close_a_breaker_by_hand(browser, gateway, failed, shot):
    browser.get(gateway.console + "/hosts")
    row = browser.find_element(By.XPATH, f"//tr[th/code='{failed['broken']}']")
    assert "open" in row.text
    shot(browser, "hosts")
    go(browser, row.find_element(By.XPATH, ".//button[text()='Close breaker']"))
    assert f"The breaker of {failed['broken']} is closed" in text(browser)
    assert "closed" in browser.find_element(By.XPATH, f"//tr[th/code='{failed['broken']}']").text


FORGED = """<!doctype html><title>win a prize</title>
<form method="post" action="{action}"><input name="id" value="{id}"><input name="csrf" value="guessed">
<button id="go">Claim</button></form>"""


@contextlib.contextmanager
def serving_page(page: bytes) -> Iterator[str]:
    """Serve ``page`` at every path of 127.0.0.1:<port> (threads: a browser holds idle connections open)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_forged_form_is_refused(browser, gateway, failed, console_worker):
    action = f"{gateway.console}/dead/discard"
    with serving_page(FORGED.format(action=action, id=failed["hopeless"]).encode()) as same_site:
        # Same site (127.0.0.1, another port): the browser sends the session cookie; the CSRF token refuses it.
        browser.get(same_site)
        go(browser, browser.find_element(By.ID, "go"))
        assert "This form did not come from this console" in text(browser)
        # Another site (localhost): SameSite=Strict keeps the cookie home; the console answers the sign-in form.
        browser.get(same_site.replace("127.0.0.1", "localhost"))
        go(browser, browser.find_element(By.ID, "go"))
        assert only_the_sign_in_form(browser)
    assert queue_depth(f"{console_worker.queue}.XQ") == 3  # the hopeless call is still a dead letter


def test_sign_out_ends_the_session(browser, gateway, failed):
    browser.get(gateway.console + "/")
    go(browser, browser.find_element(By.XPATH, "//button[text()='Sign out']"))
    assert only_the_sign_in_form(browser)
    for page in PAGES:
        browser.get(gateway.console + page)
        assert only_the_sign_in_form(browser), page


# -- acting on several dead letters, cancelling a call for later, hostile text -------------------------


def signed_in(driver: WebDriver, gateway: ConsoleGateway, page: str = "/") -> None:
    """Open ``page``, signing in first if the session has ended."""
    driver.get(gateway.console + page)
    if driver.find_element(By.TAG_NAME, "h1").text == "Sign in":
        sign_in(driver, TOKEN)
    assert driver.current_url.startswith(gateway.console + page.partition("?")[0]), driver.current_url


def dead_letters_of_our_own(console_worker: IsolatedWorker, python_endpoint: Any) -> tuple[int, dict[str, list[str]]]:
    """Two calls that will succeed when replayed (flaky: three 503s, then 200) and three that never will; and how
    many dead letters there were before."""
    xq = f"{console_worker.queue}.XQ"
    before = queue_depth(xq)
    flaky = [console_worker.send(python_endpoint.url("/flaky"), params={"key": unique_key(), "fail": 3}) for _ in "ab"]
    hopeless = [console_worker.send(python_endpoint.url("/fail"), params={"reason": f"gone {n}"}) for n in range(3)]
    for handle in flaky + hopeless:
        with pytest.raises((TransportError, RemoteExecuteError)):
            handle.get(timeout=30)
    wait_for(lambda: queue_depth(xq) == before + 5, 20, "five more dead letters")
    return before, {"flaky": [h.message_id for h in flaky], "hopeless": [h.message_id for h in hopeless]}


def pick(driver: WebDriver, *message_ids: str) -> None:
    for message_id in message_ids:
        driver.find_element(By.CSS_SELECTOR, f"input[type='checkbox'][value='{message_id}']").click()


def test_replay_several_and_discard_one_and_several_dead_letters(browser, gateway, console_worker, python_endpoint):
    before, ours = dead_letters_of_our_own(console_worker, python_endpoint)
    signed_in(browser, gateway, "/dead")

    pick(browser, *ours["flaky"])
    go(browser, browser.find_element(By.XPATH, "//button[text()='Replay selected']"))
    assert text(browser, "h1") == "Replay 2 dead letters?"
    assert all(message_id in text(browser) for message_id in ours["flaky"])
    go(browser, browser.find_element(By.XPATH, "//button[text()='Yes, replay 2']"))
    assert "Replayed 2 call(s)." in text(browser)
    assert [CallResult.from_id(message_id).get(timeout=40) for message_id in ours["flaky"]] == [4, 4]  # 4th hit

    one, *several = ours["hopeless"]
    go(browser, browser.find_element(By.CSS_SELECTOR, f"button[value='discard:{one}']"))
    assert text(browser, "h1") == "Discard 1 dead letter?"
    go(browser, browser.find_element(By.XPATH, "//button[text()='Yes, discard 1']"))
    assert "Discarded 1 call(s)." in text(browser) and one not in browser.page_source

    pick(browser, *several)
    go(browser, browser.find_element(By.XPATH, "//button[text()='Discard selected']"))
    assert text(browser, "h1") == "Discard 2 dead letters?"
    go(browser, browser.find_element(By.XPATH, "//button[text()='Yes, discard 2']"))
    assert "Discarded 2 call(s)." in text(browser)
    page = browser.page_source
    assert not any(message_id in page for message_id in ours["hopeless"] + ours["flaky"])
    assert queue_depth(f"{console_worker.queue}.XQ") == before  # the replayed two succeeded, the others are gone


def test_cancel_a_call_for_later(browser, gateway, python_endpoint):
    key = unique_key()
    later = URL(python_endpoint.url("/multiply")).send_in(3600, x=2, y=3, key=key)
    signed_in(browser, gateway, f"/calls/{later.message_id}")
    assert text(browser, ".facts .badge") == "scheduled"
    go(browser, browser.find_element(By.XPATH, "//button[text()='Cancel this call']"))
    assert "Cancelled: it will never be sent." in text(browser)
    assert text(browser, ".facts .badge") == "cancelled"
    assert not browser.find_elements(By.XPATH, "//button[text()='Cancel this call']")
    assert later.state() == "cancelled" and python_endpoint.hits(key) == 0


HOSTILE = "<script>alert('console')</script><img src=x onerror=alert(1)>"


def test_text_from_calls_is_shown_escaped_never_run(gateway, console_worker, python_endpoint):
    hostile = console_worker.send(python_endpoint.url("/fail"), params={"reason": HOSTILE, "q": HOSTILE})
    with pytest.raises(RemoteExecuteError):
        hostile.get(timeout=30)
    client = gateway.signed_in()
    wait_for(lambda: hostile.message_id in client.get(gateway.console + "/dead", timeout=10).text, 20, "the letter")
    pages = {
        "dead letters": client.get(gateway.console + "/dead", timeout=10).text,
        "the call": client.get(f"{gateway.console}/calls/{hostile.message_id}", timeout=10).text,
        "confirmation": client.post(gateway.console + "/dead/confirm", timeout=10, data={
            "csrf": csrf_of(client.get(gateway.console + "/", timeout=10).text), "action": "discard",
            "id": hostile.message_id}).text,
    }  # fmt: skip
    for name, page in pages.items():
        assert "<script" not in page and "<img" not in page, name
        assert "&lt;script&gt;alert(&#39;console&#39;)&lt;/script&gt;" in page, name  # the error, escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["the call"]  # the attempt's detail
