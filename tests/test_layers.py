"""Dependencies point down: no module of cnnkit imports one of a layer above its own (lazy imports
inside functions count too). ARCHITECTURE.md draws the same layers."""

import ast
from pathlib import Path

import pytest

import cnnkit

ROOT = Path(cnnkit.__file__).parent
# lowest first; a module may import its own layer and those below
LAYERS = [
    {"errors", "log", "files", "config", "options", "meta", "predictor", "progress", "recipes", "__init__"},
    {"device", "distributed"},
    {"data", "models", "metrics", "results"},
    {"engine"},
    {"export"},
    {"tasks", "grow"},
    {"api", "loading", "validate", "recognition", "explain", "report", "annotate"},
    {"serve", "cli", "__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def type_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks: names for an editor and mypy, never imported."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return skip


def imports(path: Path) -> list[str]:
    out = []
    tree = ast.parse(path.read_text())
    skip = type_only(tree)
    for node in (n for n in ast.walk(tree) if id(n) not in skip):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("cnnkit")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnkit"):
            if node.module == "cnnkit":  # from cnnkit import distributed
                out += [f"cnnkit.{a.name}" for a in node.names if a.name != "__version__"]
            else:
                out.append(node.module)
    return out


def own_layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_layer_above_its_own(path):
    mine = own_layer(path)
    assert mine in LEVEL, f"{mine} is in no layer: add it to LAYERS and ARCHITECTURE.md"
    upward = [m for m in imports(path) if LEVEL.get(top_name(m), 0) > LEVEL[mine]]
    assert not upward, f"{path.relative_to(ROOT)} ({mine}) imports {upward} from above"


def test_tasks_share_code_through_common_not_each_other():
    """A task package imports its own modules, cnnkit.tasks.common and the registry; never another task's."""
    tasks = ROOT / "tasks"
    for folder in (p for p in tasks.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        for path in folder.rglob("*.py"):
            for module in imports(path):
                if module.startswith("cnnkit.tasks.") and module.split(".")[2] not in ("common", "registry"):
                    assert module.split(".")[2] == folder.name, f"{path.relative_to(ROOT)} imports {module}"


def test_no_module_imports_a_private_name_of_another():
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnkit"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.relative_to(ROOT)} imports {private} from {node.module}"


def test_the_engine_imports_no_model_or_task_code():
    """The engine trains what it is handed: a task object and the model it builds (which says what its encoder
    is). Regression: the trainer imported cnnkit.models.trunk to find the encoder for --freeze-epochs."""
    for path in (ROOT / "engine").rglob("*.py"):
        banned = [m for m in imports(path) if top_name(m) in ("models", "tasks", "export", "api", "cli", "serve")]
        assert not banned, f"{path.relative_to(ROOT)} imports {banned}"
