"""dispatch.redaction: URL passwords and registered secrets never reach text that is shown."""

from __future__ import annotations

import logging

import pytest

from dispatch.redaction import (
    MASK,
    RedactingFilter,
    get_logger,
    install_log_redaction,
    redact,
    register_secret,
    register_url_password,
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET http://user:hunter2@host/x failed", f"GET http://user:{MASK}@host/x failed"),
        ("amqp://guest:pa%40ss@127.0.0.1:bad/x is invalid", f"amqp://guest:{MASK}@127.0.0.1:bad/x is invalid"),
        ("redis://:pw@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("redis+sentinel://:pw@a:1,b:2/mymaster", f"redis+sentinel://:{MASK}@a:1,b:2/mymaster"),
        ("GET http://user:p@ss@host:80/x", f"GET http://user:{MASK}@host:80/x"),  # an '@' left unescaped
        ("http://user@host/x (no password)", f"http://{MASK}@host/x (no password)"),  # a name alone may be a token
        ("GET https://ghp_tok3n@api.github.com/x failed", f"GET https://{MASK}@api.github.com/x failed"),
        ("'https://ghp_tok3n@api.github.com'", f"'https://{MASK}@api.github.com'"),
        ("http://h/x?next=a@b.example/", "http://h/x?next=a@b.example/"),  # an '@' in the query is no userinfo
        ("nothing to hide: 10:30 @ noon", "nothing to hide: 10:30 @ noon"),
    ],
)
def test_url_passwords_are_masked(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_registered_secrets_are_masked_wherever_they_appear() -> None:
    register_secret("tok-0123456789", "ab", None)  # too short and missing values are ignored
    assert redact("header X-Shop-Token: tok-0123456789; ab") == f"header X-Shop-Token: {MASK}; ab"


def test_a_configured_url_password_is_masked_even_outside_a_url() -> None:
    register_url_password("amqp://guest:rabbit-pass-77@node1/v;amqp://guest:rabbit-pass-88@node2/v")
    assert redact("auth failed with rabbit-pass-77 / rabbit-pass-88") == f"auth failed with {MASK} / {MASK}"


def test_the_filter_rewrites_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = get_logger("dispatch.test-redaction")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    with caplog.at_level(logging.INFO, logger="dispatch.test-redaction"):
        logger.info("call %s failed", "http://u:topsecret@h/")
        try:
            raise ValueError("http://u:topsecret@h/ refused")
        except ValueError:
            logger.exception("boom")
    assert "topsecret" not in caplog.text
    assert f"http://u:{MASK}@h/" in caplog.text


def test_text_arguments_stay_arguments_for_a_formatter_that_reads_them_one_by_one() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s" %d', ("1.2.3.4", "GET", "/x", 200), None
    )
    assert RedactingFilter().filter(record)
    assert record.args == ("1.2.3.4", "GET", "/x", 200)  # uvicorn's AccessFormatter unpacks them
    secret = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "%s %d", ("http://u:topsecret@h/", 1), None)
    RedactingFilter().filter(secret)
    assert secret.getMessage() == f"http://u:{MASK}@h/ 1" and secret.args == (f"http://u:{MASK}@h/", 1)


def test_without_names_the_handlers_of_the_root_and_of_the_listed_loggers_are_filtered() -> None:
    handler = logging.StreamHandler()
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(handler)  # as uvicorn.Config sets up its logging
    before = {id(h): list(h.filters) for h in logging.getLogger().handlers}
    try:
        install_log_redaction()
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    finally:
        uvicorn.removeHandler(handler)
        for other in logging.getLogger().handlers:  # pytest's own: left as they were
            other.filters = before.get(id(other), other.filters)


def test_errors_and_reprs_name_a_url_without_its_password() -> None:
    import dataclasses
    import uuid

    import dramatiq

    from dispatch import URL
    from dispatch.actor import default_dispatcher
    from dispatch.errors import DestinationRefused
    from dispatch.policy import DestinationPolicy
    from dispatch.result import CallResult
    from dispatch.settings import Settings
    from dispatch.urlsafety import check_url

    secret = f"never-registered-{uuid.uuid4().hex}"  # masked because it is a URL's password, not a known value
    url = f"http://user:{secret}@h.example/x"
    shown = []
    for bad in (f"ftp://user:{secret}@h/x", f"http://user:{secret}@h:99999/x", f"http://user:{secret}@h/\x00"):
        with pytest.raises(ValueError) as raised:
            check_url(bad)
        shown.append(str(raised.value))
        with pytest.raises(DestinationRefused) as refused:
            DestinationPolicy(deny_private=False).resolve(bad)
        shown.append(str(refused.value))
    with pytest.raises(ValueError) as too_large:
        default_dispatcher().message(url, "POST", {"x": "a" * 2_000_000}, None)
    shown.append(str(too_large.value))
    shown.append(repr(URL(url)))
    message = dramatiq.Message(
        queue_name="q", actor_name="http_dispatch", args=(url, "GET", {}, {}), kwargs={}, options={}
    )
    shown.append(repr(CallResult(**message.asdict())))
    settings = dataclasses.replace(Settings.from_env({}), broker_url=f"amqp://guest:{secret}@rabbit/v")
    shown.append(repr(settings))
    assert all(secret not in text and f":{MASK}@" in text for text in shown), shown


@pytest.mark.parametrize("kind", ["ClassicRabbitmqBroker", "QuorumRabbitmqBroker"])
def test_the_brokers_own_logger_is_redacted(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    from dispatch.brokers import rabbitmq

    broker = getattr(rabbitmq, kind)(url="amqp://guest:guest@127.0.0.1:1/x")  # connects to nothing until used
    assert broker.logger.name == f"dramatiq.broker.{kind}"  # dramatiq names it after the class
    with caplog.at_level(logging.INFO, logger=broker.logger.name):
        broker.logger.warning("lost %s", "amqp://guest:broker-secret-9@node2/x")
    assert "broker-secret-9" not in caplog.text and f"guest:{MASK}@node2" in caplog.text


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    register_secret("inner-7f3a", "inner-7f3a-and-more-9b2c")
    assert redact("token inner-7f3a-and-more-9b2c") == f"token {MASK}"
