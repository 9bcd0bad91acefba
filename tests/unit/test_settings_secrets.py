"""Settings errors name the variable and what is wrong, never a secret's value; loading registers the secrets.

Issue 20: ``DISPATCH_BROKER_URL='amqp://guest:<password>@127.0.0.1:notaport/x'`` used to print the password
in its "is invalid" error, and any bad setting repeated its raw value, signing secrets included.
"""

from __future__ import annotations

import pytest

from dispatch import ConfigurationError
from dispatch.redaction import MASK, redact
from dispatch.settings import Settings

PASSWORD = "s3cret-rabbit-pw-41"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCH_BROKER_URL", f"amqp://guest:{PASSWORD}@127.0.0.1:notaport/x"),
        ("DISPATCH_BROKER_URL", f"http://guest:{PASSWORD}@rabbit/x"),
        ("DISPATCH_BROKER_URL", f"amqp://guest:{PASSWORD}@a/x;amqp://guest:{PASSWORD}@b/y"),
        ("DISPATCH_RESULTS_URL", f"memcached://:{PASSWORD}@cache"),
        ("DISPATCH_MANAGEMENT_URL", f"ftp://guest:{PASSWORD}@rabbit:15672"),
        ("DISPATCH_OUTBOX_URL", f"{PASSWORD}-not-a-url"),
        ("DISPATCH_SIGNING_SECRET", f"whsec_{PASSWORD}!!"),
        ("DISPATCH_SIGNING_SECRET", f"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw {PASSWORD}"),
    ],
)
def test_an_invalid_setting_names_the_variable_and_never_shows_a_secret(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({variable: value})
    message = str(error.value)
    assert message.startswith(variable), message
    assert "is invalid" in message
    assert PASSWORD not in message


def test_a_url_is_shown_redacted_so_the_mistake_can_be_seen() -> None:
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({"DISPATCH_BROKER_URL": f"amqp://guest:{PASSWORD}@127.0.0.1:notaport/x"})
    assert f"amqp://guest:{MASK}@127.0.0.1:notaport/x" in str(error.value)


def test_a_secret_setting_is_never_echoed_even_when_its_value_is_short() -> None:
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({"DISPATCH_SIGNING_SECRET": "abc"})
    assert "'abc'" not in str(error.value)
    assert str(error.value).startswith("DISPATCH_SIGNING_SECRET is invalid: ")


def test_a_plain_setting_still_echoes_its_value() -> None:
    with pytest.raises(ConfigurationError, match=r"DISPATCH_MAX_ATTEMPTS='lots' is invalid: must be a positive"):
        Settings.from_env({"DISPATCH_MAX_ATTEMPTS": "lots"})


def test_loading_registers_every_secret_and_configured_url_password() -> None:
    secrets = {
        "broker": "broker-pw-5150",
        "broker2": "broker-pw-6160",
        "results": "redis-pw-7170",
        "management": "mgmt-pw-8180",
        "outbox": "outbox-pw-9190",
        "token": "gateway-token-2020",
        "token2": "gateway-token-3030",
    }
    signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    Settings.from_env(
        {
            "DISPATCH_BROKER_URL": f"amqp://app:{secrets['broker']}@a/v;amqp://app:{secrets['broker2']}@b/v",
            "DISPATCH_RESULTS_URL": f"redis://:{secrets['results']}@cache:6379/0",
            "DISPATCH_MANAGEMENT_URL": f"http://app:{secrets['management']}@a:15672",
            "DISPATCH_OUTBOX_URL": f"postgresql://app:{secrets['outbox']}@db/app",
            "DISPATCH_GATEWAY_TOKEN": f"{secrets['token']}, {secrets['token2']}",
            "DISPATCH_SIGNING_SECRET": signing,
        }
    )
    text = " | ".join([*secrets.values(), signing])  # bare values, outside any URL
    shown = redact(text)
    for value in [*secrets.values(), signing]:
        assert value not in shown
