"""The ``dispatch_stub`` pytest fixture, used the way a user would: in their own test suite.

tests/unit/user_suite/ is a small sample project (application code that sends
calls, a fake HTTP service, and its tests).  It runs here in a subprocess
whose RabbitMQ and Redis URLs point at dead ports, so it passes only if the
fixture really keeps every call in-process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from tests.support import ROOT

SUITE = ROOT / "tests" / "unit" / "user_suite"
USER_TESTS = 6  # the number of tests in tests/unit/user_suite/check_*.py

DEAD_SERVICES = {
    "DISPATCH_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
    "DISPATCH_RESULTS_URL": "redis://127.0.0.1:1/0",
}


def plugin_installed() -> bool:
    """True once pyproject.toml declares the ``pytest11`` entry point and the package is reinstalled."""
    return any(ep.name == "dispatch" for ep in entry_points(group="pytest11"))


def run_user_suite(*args: str, pythonpath: str = "") -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DISPATCH_", "PYTEST_"))}
    env.update(DEAD_SERVICES, PYTHONPATH=pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_user_suite_passes_with_no_rabbitmq_and_no_redis():
    # -p names the plugin until the entry point exists; with it, -p would register it twice.
    done = run_user_suite(*([] if plugin_installed() else ["-p", "dispatch.testing"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"\b{USER_TESTS} passed\b", done.stdout), done.stdout


def test_the_entry_point_alone_loads_the_plugin(tmp_path):
    # What `pytest11: dispatch = "dispatch.testing"` in pyproject.toml installs, as a stand-alone dist-info.
    dist_info = tmp_path / "dispatch_pytest_entry_point-0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: dispatch-pytest-entry-point\nVersion: 0\n")
    (dist_info / "entry_points.txt").write_text("[pytest11]\ndispatch = dispatch.testing\n")
    done = run_user_suite(pythonpath=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"\b{USER_TESTS} passed\b", done.stdout), done.stdout


def test_without_the_plugin_the_fixture_is_missing():
    done = run_user_suite(*(["-p", "no:dispatch"] if plugin_installed() else []))
    assert done.returncode != 0
    assert "fixture 'dispatch_stub' not found" in done.stdout


def test_the_repositorys_own_run_does_not_collect_the_user_suite():
    # Under the repository's configuration (as in a plain `pytest`), the check_*.py files are not tests.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            "pyproject.toml",
            str(SUITE),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr
