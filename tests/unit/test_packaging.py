"""The files around the package: the demo, the docker/ stack, the CI entry point.

No Docker engine runs here, so the docker/ files are checked statically:
they parse, they name what they must, and every path they use exists.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from dispatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def run_demo(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_runs_embedded_when_no_broker_is_reachable():
    out = run_demo(DISPATCH_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    assert "running EMBEDDED" in out
    assert "res.get() -> 100" in out and "raised RemoteExecuteError: division by zero" in out


def test_compose_stack_names_every_service_it_needs():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert {"5672:5672", "15672:15672"} <= set(services["rabbitmq"]["ports"])
    assert services["redis"]["image"].startswith("redis:")
    for name in ("rabbitmq", "redis", "worker", "gateway", "receiver"):
        assert services[name]["healthcheck"]["test"], name
    assert services["gateway"]["command"][:2] == ["dispatch", "gateway"]
    assert "DISPATCH_GATEWAY_TOKEN" in services["gateway"]["environment"]
    assert services["gateway"]["environment"]["DISPATCH_ALLOWED_HOSTS"] == "receiver"
    known = {variable for variable, _, _ in Settings.describe()}
    known |= {"DISPATCH_GATEWAY_TOKEN"}
    assert set(services["worker"]["environment"]) <= known
    assert set(services["gateway"]["environment"]) <= known
    assert Settings.from_env(services["worker"]["environment"]).queue == "dispatch"
    for name in ("worker", "gateway", "receiver"):
        build = services[name]["build"]
        assert (ROOT / "docker" / build["context"] / build["dockerfile"]).is_file()
    receiver = services["receiver"]["command"]
    assert (ROOT / receiver[1]).is_file()


def test_dockerfile_copies_existing_paths_and_runs_the_worker():
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    for line in lines:
        if line.startswith("COPY "):
            *sources, _ = shlex.split(line)[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert '"dramatiq", "dispatch.tasks"' in cmd


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, re.S)[0].split()
    assert commands[:4] == ["make", "demo", "make", "test"]


def test_make_up_and_down_drive_the_compose_file():
    makefile = (ROOT / "Makefile").read_text()
    assert "docker compose -f docker/compose.yaml up -d --build" in makefile
    assert "docker compose -f docker/compose.yaml down" in makefile
