"""The documentation cannot go stale: its code runs, its links resolve, its tables match the code.

Convention for fenced blocks in README.md, docs/*.md, CONTRIBUTING.md and benchmarks/README.md:

* ```python blocks are compiled, and run for real, in order, page by page, under
  ``dispatch.testing.stub_worker()`` (in-process StubBroker worker, real HTTP).
  ``http://example.com`` is replaced by a local :class:`dispatch.receiver.Receiver`
  serving ``/multiply`` and ``/divide``, and ``http://127.0.0.1:8000`` by the receiver the README
  starts there, examples/receivers/plain_python.py; ``DISPATCH_SIGNING_SECRET`` is set to a fresh secret.
  A block that serves with ``make_server(host, port, app).serve_forever()`` is served on a
  free port in a thread, and later blocks on the page reach it through ``http://host:port``.
* An HTML comment on the line before a block changes that:
  ``<!-- doc-test: skip (reason) -->`` compiles it only (it needs RabbitMQ, a worker, ...);
  ``<!-- doc-test: pytest (reason) -->`` writes it to a file and runs pytest on it.
* ```sh and ```bash blocks pass ``bash -n``; ```json and ```yaml blocks parse;
  ```console blocks (a prompt and output) and other languages are not checked.

The configuration table in docs/configuration.md is generated from
``Settings.describe()``: ``python tests/unit/test_docs.py --write-config`` rewrites it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md"]
TABLE_START, TABLE_END = "<!-- config-table:start -->", "<!-- config-table:end -->"

FENCE = re.compile(
    r"^(?:(?P<marker>[ \t]*<!-- doc-test: (?P<mode>\w+)[^>]*-->)\n)?"
    r"(?P<indent>[ \t]*)```(?P<lang>[\w-]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def blocks(page: Path) -> list[tuple[str, str, str, int]]:
    """(language, mode, code, line) for every fenced block on ``page``; mode is run, skip or pytest."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        code = textwrap.dedent(match["code"])
        line = text.count("\n", 0, match.start("lang")) + 1
        found.append((match["lang"], match["mode"] or "run", code, line))
    return found


def config_table() -> str:
    """The configuration table, from Settings.describe()."""
    from dispatch.settings import Settings

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, meaning in Settings.describe():
        shown = f"`{default}`" if default else "(empty)"
        rows.append(f"| `{variable}` | {shown} | {meaning.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def write_config_table() -> None:
    text = CONFIGURATION.read_text()
    head, rest = text.split(TABLE_START)
    _, tail = rest.split(TABLE_END)
    CONFIGURATION.write_text(f"{head}{TABLE_START}\n{config_table()}\n{TABLE_END}{tail}")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slug(m[1]) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


# -- the README and the pages -------------------------------------------------------------------


def test_readme_is_short_and_starts_with_demo_then_test():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    first = next(code for lang, _, code, _ in blocks(README) if lang in ("sh", "bash"))
    assert first.split()[:4] == ["make", "demo", "make", "test"]


def test_readme_and_index_link_every_docs_page():
    for index in (README, DOCS / "index.md"):
        text = index.read_text()
        for page in DOCS.glob("*.md"):
            if page != index:
                assert f"{page.name})" in text, f"{index.name} does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    for match in LINK.finditer(page.read_text()):
        target = match[1] or match[2]
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor} in {resolved.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_gateway_token_written_out_is_one_the_gateway_accepts(page):
    from dispatch.gateway.auth import check_tokens

    for token in re.findall(r"DISPATCH_GATEWAY_TOKEN=[\"']?([^\s\"'$]+)", page.read_text()):
        check_tokens(token.split(","))  # ConfigurationError for one too short to be a secret


def test_every_test_security_md_cites_exists():
    text = (DOCS / "security.md").read_text()
    cited = re.findall(r"`((?:unit|integration)/[\w/]+\.py)::(\w+)`", text)
    assert len(cited) > 20
    for path, name in cited:
        source = (ROOT / "tests" / path).read_text()
        assert re.search(rf"^(?:async )?def {name}\(", source, re.M), f"security.md cites {path}::{name}: no such test"


def test_configuration_table_lists_every_setting_with_its_default():
    from dispatch.settings import Settings

    text = CONFIGURATION.read_text()
    table = text.split(TABLE_START)[1].split(TABLE_END)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = [(row.split("|")[1].strip().strip("`"), row.split("|")[2].strip()) for row in rows]
    expected = [(variable, f"`{default}`" if default else "(empty)") for variable, default, _ in Settings.describe()]
    assert documented == expected, "regenerate: .venv/bin/python tests/unit/test_docs.py --write-config"


# -- the code blocks ----------------------------------------------------------------------------

ALL_BLOCKS = [(page, *block) for page in PAGES for block in blocks(page)]


def block_id(item) -> str:
    page, lang, _, _, line = item
    return f"{page.relative_to(ROOT)}:{line}:{lang}"


@pytest.mark.parametrize("item", [b for b in ALL_BLOCKS if b[1] == "python"], ids=block_id)
def test_python_blocks_compile(item):
    page, _, _, code, line = item
    compile(code, f"{page.name}:{line}", "exec")


@pytest.mark.parametrize("item", [b for b in ALL_BLOCKS if b[1] in ("sh", "bash")], ids=block_id)
def test_shell_blocks_parse(item):
    done = subprocess.run(["bash", "-n"], input=item[3], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("item", [b for b in ALL_BLOCKS if b[1] in ("json", "yaml")], ids=block_id)
def test_data_blocks_parse(item):
    if item[1] == "json":
        json.loads(item[3])
    else:
        yaml = pytest.importorskip("yaml")
        yaml.safe_load(item[3])


def test_every_block_has_a_known_mode():
    modes = {(block_id(item), item[2]) for item in ALL_BLOCKS}
    assert {mode for _, mode in modes} <= {"run", "skip", "pytest"}, modes


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _serve(app, servers: list) -> str:
    server = _real_make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return f"http://127.0.0.1:{server.server_port}"


_real_make_server = wsgiref.simple_server.make_server


def _readme_receiver():
    """The WSGI app of examples/receivers/plain_python.py, which the README starts on 127.0.0.1:8000."""
    spec = importlib.util.spec_from_file_location("plain_python", ROOT / "examples" / "receivers" / "plain_python.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


@pytest.fixture(scope="module")
def doc_world() -> Iterator[dict]:
    """A stub worker, a local receiver standing in for example.com, and the secret the pages read."""
    from dispatch import URL
    from dispatch.receiver import Receiver
    from dispatch.signing import generate_secret
    from dispatch.testing import stub_worker

    def multiply(x, y):
        return int(x) * int(y)

    def divide(x, y):
        return int(x) / int(y)

    servers: list = []
    functions = {"/multiply": multiply, "/divide": divide}
    secret = generate_secret()
    base = _serve(Receiver(functions), servers)
    readme = _serve(_readme_receiver(), servers)
    with stub_worker():
        assert URL(f"{base}/multiply").send(x=6, y=7).get(timeout=10) == 42  # everything is built
        yield {"base": base, "readme": readme, "servers": servers, "secret": secret}
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("page", [p for p in PAGES if any(b[0] == "python" for b in blocks(p))], ids=lambda p: p.name)
def test_python_blocks_run(page, doc_world, monkeypatch, tmp_path):
    hosts = {"http://example.com": doc_world["base"], "http://127.0.0.1:8000": doc_world["readme"]}

    def make_server(host, port, app, **kwargs):
        """The page's server, on a free port; serve_forever() returns at once."""
        server = _real_make_server(host, 0, app, handler_class=_Quiet)
        hosts[f"http://{host}:{port}"] = f"http://{host}:{server.server_port}"
        run = server.serve_forever
        server.serve_forever = lambda *a, **k: threading.Thread(target=run, daemon=True).start()
        doc_world["servers"].append(server)
        return server

    monkeypatch.setattr(wsgiref.simple_server, "make_server", make_server)
    monkeypatch.setenv("DISPATCH_SIGNING_SECRET", doc_world["secret"])
    for lang, mode, code, line in blocks(page):
        if lang != "python" or mode == "skip":
            continue
        for placeholder, real in hosts.items():
            code = code.replace(placeholder, real)
        where = f"{page.name}:{line}"
        if mode == "pytest":
            (tmp_path / "test_doc_example.py").write_text(code)
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp_path,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
            assert done.returncode == 0, f"{where}\n{done.stdout}\n{done.stderr}"
        else:
            try:
                exec(compile(code, where, "exec"), {"__name__": f"doc_{page.stem}"})
            except Exception as exc:
                raise AssertionError(f"the block at {where} failed: {exc!r}") from exc


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-config"]:
        write_config_table()
    else:
        print(config_table())
