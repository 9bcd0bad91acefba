"""Print the import graph of the ``dispatch`` package and fail if it has a cycle.

    python scripts/modgraph.py            # one line per module: what it imports from the package
    python scripts/modgraph.py --dot      # the same as a Graphviz digraph

Every import counts, also those inside functions (lazy ones), so a cycle
cannot hide behind a deferred import.  Uses only the standard library
(``ast`` and ``graphlib``): it reads the source, it imports nothing.
"""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dispatch"


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package (``cli``, ``url``, ...) -> the package modules it imports."""
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in sorted(modules):
        tree = ast.parse((package / f"{name}.py").read_text())
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module.split(".")[0])
                else:  # from . import x
                    imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dispatch."):
                imported.add(node.module.split(".")[1])
        graph[name] = imported & modules
    return graph


def main(argv: list[str]) -> int:
    graph = module_graph()
    if "--dot" in argv:
        print("digraph dispatch {")
        for name, imported in graph.items():
            for target in sorted(imported):
                print(f'  "{name}" -> "{target}";')
        print("}")
    else:
        for name, imported in graph.items():
            print(f"{name:12} -> {', '.join(sorted(imported)) or '-'}")
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        print(f"import cycle: {' -> '.join(exc.args[1])}", file=sys.stderr)
        return 1
    print(f"# {len(graph)} modules, no cycle; bottom-up: {' '.join(order)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
