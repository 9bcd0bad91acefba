"""The files around the package: the demo, the docker/ stack, the CI entry point.

No Docker engine runs here, so the docker/ files are checked statically:
they parse, they name what they must, and every path they use exists.
"""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from dispatch.settings import Settings
from tests.support import ROOT, run_demo


def test_demo_runs_embedded_when_no_broker_is_reachable():
    out = run_demo(DISPATCH_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    assert "running EMBEDDED" in out
    assert "res.get() -> 100" in out and "raised RemoteExecuteError: division by zero" in out


COMPOSE = ROOT / "docker" / "compose.yaml"
HOST_ACCESS = ROOT / "docker" / "compose.host-access.yaml"
SECRETS = {
    "RABBITMQ_DEFAULT_USER": "dispatch",
    "RABBITMQ_DEFAULT_PASS": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "REDIS_PASSWORD": "a5b4c3d2e1f00f1e2d3c4b5a69788796",
    "DISPATCH_GATEWAY_TOKEN": "test-token-0123456789abcdef",
}
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[?-])(?P<arg>[^}]*))?\})")


def interpolate(value: object, environ: dict[str, str]) -> object:
    """``value`` (a loaded compose file or part of it) with ``${VAR}``, ``${VAR:?msg}``, ``${VAR:-x}``, ``$$``
    replaced as ``docker compose`` replaces them; KeyError(message) for a required variable missing."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        given = environ.get(name)
        missing = given is None or (op.startswith(":") and not given)
        if op.endswith("?") and missing:
            raise KeyError(f"{name}: {arg}")
        if op.endswith("-") and missing:
            return arg
        return given or ""

    return _VARIABLE.sub(replace, value)


def compose(environ: dict[str, str] = SECRETS) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), environ)


def test_compose_stack_names_every_service_it_needs():
    services = compose()["services"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert services["redis"]["image"].startswith("redis:")
    for name in ("rabbitmq", "redis", "worker", "gateway", "receiver"):
        assert services[name]["healthcheck"]["test"], name
    assert services["gateway"]["command"][:2] == ["dispatch", "gateway"]
    assert services["gateway"]["environment"]["DISPATCH_GATEWAY_TOKEN"] == SECRETS["DISPATCH_GATEWAY_TOKEN"]
    assert services["gateway"]["environment"]["DISPATCH_ALLOWED_HOSTS"] == "receiver"
    known = {variable for variable, _, _ in Settings.describe()}
    assert set(services["worker"]["environment"]) <= known
    assert set(services["gateway"]["environment"]) <= known
    assert Settings.from_env(services["worker"]["environment"]).queue == "dispatch"
    Settings.from_env(services["gateway"]["environment"])
    for name in ("worker", "gateway", "receiver"):
        build = services[name]["build"]
        assert (ROOT / "docker" / build["context"] / build["dockerfile"]).is_file()
    receiver = services["receiver"]["command"]
    assert (ROOT / receiver[1]).is_file()


def _published(services: dict) -> dict[str, list[str]]:
    return {name: [str(port) for port in service.get("ports", [])] for name, service in services.items()}


def test_only_the_gateway_is_published_and_only_on_loopback():
    services = compose()["services"]
    assert {name: ports for name, ports in _published(services).items() if ports} == {
        "gateway": ["127.0.0.1:8080:8080"]
    }
    override = yaml.safe_load(HOST_ACCESS.read_text())["services"]
    for name, ports in {**_published(services), **_published(override)}.items():
        for port in ports:  # "8080:8080", "8080" and "0.0.0.0:..." publish on every interface
            assert port.startswith("127.0.0.1:") and port.count(":") == 2, (name, port)
    assert "expose" not in str(services)


def test_broker_and_redis_are_on_an_internal_network_only():
    document = compose()
    assert document["networks"]["backend"]["internal"] is True
    services = document["services"]
    assert services["rabbitmq"]["networks"] == services["redis"]["networks"] == ["backend"]
    for name in ("worker", "gateway"):
        assert "backend" in services[name]["networks"]
    assert "backend" not in services["receiver"]["networks"]  # the endpoint cannot reach the broker
    # The optional override opens a second network for its loopback ports; backend stays internal.
    override = yaml.safe_load(HOST_ACCESS.read_text())
    assert "backend" not in override.get("networks", {})


def test_credentials_come_from_the_environment_and_missing_ones_stop_compose():
    assert "guest" not in str(yaml.safe_load(COMPOSE.read_text()))  # comments aside
    services = compose()["services"]
    rabbitmq = services["rabbitmq"]["environment"]
    assert (rabbitmq["RABBITMQ_DEFAULT_USER"], rabbitmq["RABBITMQ_DEFAULT_PASS"]) == (
        SECRETS["RABBITMQ_DEFAULT_USER"],
        SECRETS["RABBITMQ_DEFAULT_PASS"],
    )
    user, password, redis_password = (
        SECRETS[k] for k in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS", "REDIS_PASSWORD")
    )
    for name in ("worker", "gateway"):
        environment = services[name]["environment"]
        assert environment["DISPATCH_BROKER_URL"] == f"amqp://{user}:{password}@rabbitmq:5672/%2F", name
        assert environment["DISPATCH_RESULTS_URL"] == f"redis://:{redis_password}@redis:6379/0", name
    assert services["worker"]["environment"]["DISPATCH_MANAGEMENT_URL"] == f"http://{user}:{password}@rabbitmq:15672"
    for variable in SECRETS:  # ${VAR:?message}: a missing or empty secret fails loudly, naming itself
        for environ in ({k: v for k, v in SECRETS.items() if k != variable}, {**SECRETS, variable: ""}):
            with pytest.raises(KeyError, match=variable):
                compose(environ)


def test_redis_requires_its_password_in_protected_mode():
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert '--requirepass "$REDIS_PASSWORD"' in command and "--protected-mode yes" in command
    assert redis["environment"]["REDIS_PASSWORD"] == SECRETS["REDIS_PASSWORD"]
    assert "PONG" in " ".join(redis["healthcheck"]["test"])  # redis-cli exits 0 on NOAUTH too


def test_the_worker_refuses_private_destinations_but_the_example_receiver():
    worker = compose()["services"]["worker"]["environment"]
    settings = Settings.from_env(worker)
    assert settings.deny_private is True
    assert settings.allowed_hosts == ("receiver",)


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


#: The first release of each dependency past the advisories known against it (docs/security.md's threat table).
SECURITY_FLOORS = {
    "requests": "2.33",  # CVE-2024-47081, CVE-2026-25645
    "urllib3": "2.7",  # decompression bombs: CVE-2025-66471, CVE-2026-21441, CVE-2026-44432
    "certifi": "2024.7.4",  # CVE-2024-39689: GLOBALTRUST roots removed
    "jinja2": "3.1.6",  # CVE-2025-27516: sandbox escape through |attr
    "python-multipart": "0.0.31",  # CVE-2024-53981, CVE-2026-24486, -40347, -42561, -53538, -53539, -53540
    "starlette": "1.3.1",  # CVE-2024-47874, CVE-2025-62727 (FileResponse Range DoS), CVE-2026-48710, CVE-2026-54283
    "django": "5.2.19",  # the supported series' latest: 4.2 and 5.0/5.1 get no fixes any more
}


def test_dependency_floors_are_past_known_vulnerabilities_and_the_venv_meets_them():
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(text) for text in project["dependencies"]]
    declared += [Requirement(text) for extra in project["optional-dependencies"].values() for text in extra]
    for name, floor in SECURITY_FLOORS.items():
        found = [r for r in declared if r.name.lower() == name]
        assert found, f"{name} is not declared (a dependency of ours: its floor belongs in pyproject.toml)"
        for requirement in found:
            minimum = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
            assert minimum and max(minimum) >= Version(floor), f"{requirement} admits releases before {floor}"
    for requirement in declared:
        if requirement.marker is None or requirement.marker.evaluate():
            try:
                installed = version(requirement.name)
            except PackageNotFoundError:
                continue  # an extra this venv does not install
            assert requirement.specifier.contains(installed, prereleases=True), f"{requirement}: {installed} installed"
