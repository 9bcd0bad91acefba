"""The destinations file: parsed with tomllib, ``${VAR}`` from the environment, every mistake named by line."""

from __future__ import annotations

import pytest

from dispatch.destinations import UNLISTED, BreakerConfig, Rate, load_destinations
from dispatch.errors import ConfigurationError
from dispatch.settings import Settings
from dispatch.signing import generate_secret

CONTRACT_EXAMPLE = """\
[destinations."api.example.com"]          # a host name, or "host:port"
headers = { Authorization = "Bearer ${BILLING_TOKEN}" }   # ${VAR} from the environment
signing_secret = "${BILLING_SECRET}"       # overrides DISPATCH_SIGNING_SECRET for this host
max_concurrency = 4                        # calls in flight to this host, across all workers
rate = "50/s"                              # N/s or N/min, across all workers
[defaults]                                 # for every host not listed
max_concurrency = 64
breaker = { failures = 5, cooldown = 30 }  # open after 5 consecutive transport failures
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "destinations.toml"
    path.write_text(text)
    return str(path)


def test_the_contract_example_reads_with_variables_from_the_environment(tmp_path):
    secret = generate_secret()
    destinations = load_destinations(
        write(tmp_path, CONTRACT_EXAMPLE), {"BILLING_TOKEN": "tok", "BILLING_SECRET": secret}
    )
    api = destinations.for_host("API.example.com", 443)
    assert dict(api.headers) == {"Authorization": "Bearer tok"}
    assert api.signing_secrets == (secret,)
    assert (api.max_concurrency, api.rate, api.breaker) == (4, Rate(50, 1.0), BreakerConfig(5, 30.0))
    other = destinations.for_host("other.example", 80)
    assert (other.max_concurrency, other.rate, other.breaker, dict(other.headers)) == (
        64,
        None,
        BreakerConfig(5, 30.0),
        {},
    )
    assert "tok" not in repr(destinations) and secret not in repr(destinations)  # logged settings show no secret


def test_host_and_port_is_more_specific_than_host(tmp_path):
    destinations = load_destinations(
        write(tmp_path, '[destinations."h.example:8443"]\nrate = "1/min"\n[destinations."h.example"]\nrate = "9/s"\n')
    )
    assert destinations.for_host("h.example", 8443).rate == Rate(1, 60.0)
    assert destinations.for_host("h.example", 443).rate == Rate(9, 1.0)
    assert destinations.for_host("x.example", 443) is UNLISTED  # no [defaults]: nothing added or limited


def test_no_file_is_no_destinations():
    assert not load_destinations("")
    assert Settings.from_env({}).destinations.for_host("any", 80) is UNLISTED


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[destinations."a.example"]\nrate = "fast"\n', 2, 'rate: must be "N/s" or "N/min"'),
        ('[destinations."a.example"]\n\nmax_concurrency = 0\n', 3, "max_concurrency: must be an integer from 1"),
        ("[defaults]\nbreaker = { failures = 5 }\n", 2, "breaker: must be { failures = N, cooldown = SECONDS }"),
        ('[destinations."a.example"]\nretries = 3\n', 2, "unknown key 'retries'"),
        ('[destinations."a.example"]\nheaders = { Host = "b" }\n', 2, "'Host' is set by the worker"),
        (
            '[destinations."a.example"]\nheaders = { X-A = "${NOT_SET_ANYWHERE}" }\n',
            2,
            "${NOT_SET_ANYWHERE} is not set",
        ),
        ('[destinations."a.example"]\nsigning_secret = "not base64!"\n', 2, "signing_secret:"),
        ('[destinations."a b"]\nrate = "1/s"\n', 1, "'a b' is not a host name or host:port"),
        ('[destinations."a.example:99999"]\nrate = "1/s"\n', 1, "invalid port"),
        ("[limits]\nx = 1\n", 1, "unknown table 'limits'"),
    ],
)
def test_a_mistake_is_named_by_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        load_destinations(path, {})
    assert f"{path} line {line}: " in str(caught.value)
    assert message in str(caught.value)


def test_a_toml_syntax_error_names_its_line_and_stops_the_settings(tmp_path, monkeypatch):
    path = write(tmp_path, '[destinations."a.example"]\nrate = \n')
    with pytest.raises(ConfigurationError, match=r"DISPATCH_DESTINATIONS=.*not valid TOML.*line 2"):
        Settings.from_env({"DISPATCH_DESTINATIONS": path})
    with pytest.raises(ConfigurationError, match="cannot read the destinations file"):
        Settings.from_env({"DISPATCH_DESTINATIONS": str(tmp_path / "missing.toml")})
