"""Print the import graph of the ``dispatch`` package, folder by folder; fail on a cycle or a long module.

    python scripts/modgraph.py            # per folder, one line per file: its length, the package modules it imports
    python scripts/modgraph.py --dot      # the same as a Graphviz digraph, a cluster per folder

A module is named by its dotted path inside the package (``url``, ``transport._wire``); a folder's
``__init__.py`` is the folder's own name (``transport``).  The package's root ``__init__.py`` is left
out: it is the lazy front door that re-exports the public names, and every module is behind it.

Every import counts, also those inside functions (lazy ones), so a cycle cannot hide behind a
deferred import.  No module may be over ``MAX_LINES`` lines.  Uses only the standard library
(``ast`` and ``graphlib``): it reads the source, it imports nothing.
"""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dispatch"
MAX_LINES = 500


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Each module of the package by its dotted name (``cli.calls``; ``cli`` for ``cli/__init__.py``) -> its file."""
    files: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:  # not the root __init__.py
            files[".".join(parts)] = path
    return files


def _imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules ``name`` (in ``path``) imports, lazily or not, absolutely or relatively."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def add(target: str, names: list[str]) -> None:
        """``from target import names``: a name that is a submodule is that module, else ``target`` itself."""
        submodules = {f"{target}.{n}" if target else n for n in names} & modules
        found.update(submodules)
        if target in modules and len(submodules) < len(names):
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            add(".".join([*base, *(node.module or "").split(".")]).strip("."), [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dispatch."):
            add(node.module.removeprefix("dispatch."), [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update({alias.name.removeprefix("dispatch.") for alias in node.names} & modules)
    found.discard(name)
    return found


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package (``url``, ``transport._wire``, ...) -> the package modules it imports."""
    files = module_files(package)
    return {name: _imported(name, path, set(files)) for name, path in files.items()}


def module_lines(package: Path = PACKAGE) -> dict[str, int]:
    """Each module of the package -> its length in lines."""
    return {name: len(path.read_text().splitlines()) for name, path in module_files(package).items()}


def too_long(package: Path = PACKAGE) -> dict[str, int]:
    """The modules over ``MAX_LINES`` lines, with their lengths."""
    return {name: lines for name, lines in module_lines(package).items() if lines > MAX_LINES}


def _folder(name: str, files: dict[str, Path]) -> str:
    """The folder a module is shown under: ``transport/`` for ``transport`` and ``transport._wire``."""
    folder = files[name].parent.relative_to(PACKAGE.parent)
    return f"{folder}/"


def main(argv: list[str]) -> int:
    files = module_files()
    graph = module_graph()
    lines = module_lines()
    if "--dot" in argv:
        print("digraph dispatch {")
        for folder in sorted({_folder(name, files) for name in graph}):
            print(f'  subgraph "cluster_{folder}" {{ label="{folder}";')
            for name in graph:
                if _folder(name, files) == folder:
                    print(f'    "{name}";')
            print("  }")
        for name, imported in graph.items():
            for target in sorted(imported):
                print(f'  "{name}" -> "{target}";')
        print("}")
    else:
        width = max(len(path.name) for path in files.values()) + 2
        shown = ""
        for name in sorted(graph, key=lambda n: (_folder(n, files), files[n].name != "__init__.py", n)):
            if _folder(name, files) != shown:
                shown = _folder(name, files)
                print(shown)
            print(f"  {files[name].name:{width}} {lines[name]:4}  -> {', '.join(sorted(graph[name])) or '-'}")
    status = 0
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        print(f"import cycle: {' -> '.join(exc.args[1])}", file=sys.stderr)
        status = 1
    for name, length in too_long().items():
        print(
            f"{files[name].relative_to(PACKAGE.parent)}: {length} lines, over the {MAX_LINES}-line limit",
            file=sys.stderr,
        )
        status = 1
    if status == 0:
        folders = {_folder(name, files) for name in graph}
        largest = max(lines, key=lines.__getitem__)
        print(
            f"# {len(graph)} modules in {len(folders)} folders, no cycle; largest: "
            f"{files[largest].relative_to(PACKAGE.parent)} ({lines[largest]} lines, limit {MAX_LINES}); "
            f"bottom-up: {' '.join(order)}",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
