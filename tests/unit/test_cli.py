"""The ``dispatch`` command where it needs no services: usage, configuration errors, dry runs.

Each test runs the CLI as a user does, in a real subprocess; none of them
reaches RabbitMQ or Redis.  The CLI against the real services is in
tests/integration/test_cli.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.support import ROOT, dispatch, free_port


def test_bad_configuration_exits_2_naming_the_variable():
    done = dispatch("call", "http://127.0.0.1:9/ok", env={"DISPATCH_TIMEOUT": "soon"})
    assert done.returncode == 2
    assert "DISPATCH_TIMEOUT" in done.stderr


def test_status_says_clearly_when_the_management_api_is_unreachable():
    port = free_port()
    done = dispatch("status", env={"DISPATCH_MANAGEMENT_URL": f"http://admin:s3cret@127.0.0.1:{port}"})
    assert done.returncode == 1
    assert f"management API at http://127.0.0.1:{port}" in done.stderr
    assert "s3cret" not in done.stderr
    as_json = dispatch("status", "--json", env={"DISPATCH_MANAGEMENT_URL": f"http://127.0.0.1:{port}"})
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["type"] == "ManagementError"


def test_worker_help_names_its_options():
    done = dispatch("worker", "--help")
    assert done.returncode == 0
    for option in ("--processes", "--threads", "--metrics-port", "--json"):
        assert option in done.stdout


def test_worker_runs_dramatiq_with_defaults_and_passes_other_arguments_on():
    done = dispatch("worker", "--dry-run", "--json", "--threads", "2", "--queues", "a", "b")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    dramatiq = [sys.executable, "-m", "dramatiq", "dispatch.tasks"]
    assert plan["argv"] == [*dramatiq, "--queues", "a", "b", "--processes", str(os.cpu_count()), "--threads", "2"]
    assert plan["env"] == {}


def test_worker_metrics_port_sets_the_variable_and_runs_the_usual_broker():
    done = dispatch("worker", "--dry-run", "--json", "--processes", "1", "--metrics-port", "9300")
    plan = json.loads(done.stdout)
    assert plan["argv"][3] == "dispatch.tasks"
    assert plan["env"] == {"DISPATCH_METRICS_PORT": "9300"}


def test_gateway_without_its_extra_says_how_to_install_it():
    # Blocking the import stands in for an installation without the gateway extra.
    script = (
        "import sys; sys.modules['dispatch.gateway'] = None; sys.argv = ['dispatch', 'gateway', '--json']; "
        "from dispatch.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1
    assert "pip install 'dispatch[gateway]'" in json.loads(done.stdout)["error"]["message"]


def test_version():
    from dispatch import __version__

    done = dispatch("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"dispatch {__version__}"


def test_flags_are_shown_as_plain_flags_in_help():
    # A flag takes no value: help that printed `--version <bool>` invited `--version true`.
    for args in (["--help"], ["status", "--help"], ["call", "--help"], ["dead", "purge", "--help"]):
        done = dispatch(*args, env={"COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        flags = [line for line in done.stdout.splitlines() if re.search(r"--(version|json|watch|wait|yes)\b", line)]
        assert flags, done.stdout
        assert not [line for line in flags if "<bool>" in line], done.stdout


def test_the_management_api_is_looked_for_on_the_brokers_host_with_its_credentials():
    from dispatch.management import management_url_for

    assert management_url_for("amqp://app:s%40cret@rabbit-1:5673/prod") == "http://app:s%40cret@rabbit-1:15672"
    assert management_url_for("amqps://rabbit-1/prod;amqps://rabbit-2/prod") == "https://rabbit-1:15671"
    assert management_url_for("amqp://[::1]:5672/%2F") == "http://[::1]:15672"
