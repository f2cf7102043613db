"""No import cycles among cnnkit's modules at run time: a cycle broken by an import inside a function works
only in the order things happen to load, and hides which module depends on which. Imports inside functions
count; those under ``if TYPE_CHECKING:`` (for the type checker) do not."""

import ast
from pathlib import Path

import cnnkit
from tests.test_layers import type_only

ROOT = Path(cnnkit.__file__).parent


def module_name(path: Path) -> str:
    parts = ("cnnkit", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """The cnnkit modules ``path`` imports, anywhere in it: ``from pkg import mod`` names ``pkg.mod``."""
    tree = ast.parse(path.read_text())
    skip = type_only(tree)
    out: set[str] = set()
    for node in (n for n in ast.walk(tree) if id(n) not in skip):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES and not node.level:
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            if len(subs) < len(node.names):  # some names are the module's own, not submodules
                out.add(node.module)
            out |= subs
    return out - {module_name(path)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_cnnkit_modules():
    # the package's __init__ re-exports the API lazily; a module importing ``cnnkit`` itself reads a constant
    graph = {name: imported(path) - {"cnnkit"} for name, path in MODULES.items() if name != "cnnkit"}
    assert cycles(graph) == []
