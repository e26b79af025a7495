"""The simulator stands alone: nothing of agentjobs outside it, no import cycle inside it.

Read from the source (every import, inside functions and TYPE_CHECKING blocks too), so
the test holds whatever happens to be imported already in this process.
"""

from __future__ import annotations

import ast
from pathlib import Path

import agentjobs.simulator

PACKAGE = Path(agentjobs.simulator.__file__).parent
PREFIX = "agentjobs.simulator"


def imports_of(path: Path) -> set[str]:
    """Every agentjobs module ``path`` imports, as a dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agentjobs"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PREFIX:  # from agentjobs.simulator import x: module x
                found.update(f"{PREFIX}.{a.name}" for a in node.names)
            elif node.module.startswith("agentjobs"):
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {
        f"{PREFIX}.{p.stem}" if p.stem != "__init__" else PREFIX: imports_of(p)
        for p in sorted(PACKAGE.glob("*.py"))
    }


def test_imports_nothing_of_agentjobs_outside_the_simulator() -> None:
    outside = {
        (module, imported)
        for module, deps in graph().items()
        for imported in deps
        if imported != PREFIX and not imported.startswith(PREFIX + ".")
    }
    assert outside == set()


def test_no_import_cycle() -> None:
    edges = {m: {d for d in deps if d != PREFIX and d != m} for m, deps in graph().items()}
    edges.pop(PREFIX)  # the package's __init__ re-exports; modules never import it back
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(edges.get(module, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
