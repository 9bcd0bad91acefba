"""The shape of the package: an import DAG, no long module, imports that load and connect to nothing.

The private upstream names dispatch relies on are checked in ``test_upstream.py``.
"""

from __future__ import annotations

import graphlib
import re
import subprocess
import sys

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import modgraph


def test_the_package_imports_form_a_dag():
    graph = modgraph.module_graph()
    assert "runtime" in graph and "upstream" in graph
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle


def test_the_graph_names_modules_in_folders_and_sees_a_cycle_through_them(tmp_path):
    package = tmp_path / "dispatch"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .base import thing\n")  # the front door: not a node
    (package / "base.py").write_text("from .sub import thing\nimport dispatch.sub.leaf\n")
    (package / "sub" / "__init__.py").write_text("from .inner import thing\nfrom . import leaf\n")
    (package / "sub" / "inner.py").write_text("def lazy():\n    from .. import base\n")
    (package / "sub" / "leaf.py").write_text("from dispatch.sub.inner import lazy\n")
    graph = modgraph.module_graph(package)
    assert graph == {
        "base": {"sub", "sub.leaf"},
        "sub": {"sub.inner", "sub.leaf"},
        "sub.inner": {"base"},
        "sub.leaf": {"sub.inner"},
    }
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_no_module_is_over_500_lines():
    assert modgraph.MAX_LINES == 500
    assert modgraph.too_long() == {}


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


@pytest.mark.parametrize("statement", ["import dispatch", "import dispatch.receiver", "from dispatch import errors"])
def test_importing_the_package_or_the_receiver_loads_no_broker_machinery(statement):
    loaded = _modules_loaded_by(statement)
    assert not loaded & {"dramatiq", "pika", "redis", "urllib3", "requests", "tenacity"}, statement


def test_public_names_are_loaded_on_first_access():
    loaded = _modules_loaded_by("from dispatch import URL, CallResult, HttpDispatch")
    assert "dramatiq" in loaded


def test_building_the_worker_connects_to_nothing():
    # Unreachable broker and store: building everything must still work; only sending would fail.
    env = {"DISPATCH_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/x", "DISPATCH_RESULTS_URL": "redis://127.0.0.1:1/0"}
    code = "import dispatch.tasks as t; print(t.http_dispatch.actor_name, t.http_dispatch.queue_name)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**_env(), **env}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["http_dispatch", "dispatch"]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}


def test_contributing_names_every_module_where_things_live():
    section = (ROOT / "CONTRIBUTING.md").read_text().split("## Where things live", 1)[1].split("\n## ", 1)[0]
    named, folder = set(), ""
    for line in section.splitlines():
        entry = re.match(r"( *)- `([^`]+)`", line)
        if entry is None:
            continue
        indent, path = entry.groups()
        if not indent:
            folder = path if path.endswith("/") else ""
        named.add(f"{folder}{path}" if indent else path)
    package = ROOT / "dispatch"
    modules = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "__pycache__" not in path.parts and (path.name != "__init__.py" or path.parent == package)
    }
    assert sorted(modules - named) == []
    assert sorted(name for name in named - modules if name.endswith(".py")) == []
