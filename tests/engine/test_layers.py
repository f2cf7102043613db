"""The engine takes a task object and imports nothing above it (tasks, models, data, export, cli, serve)."""

import ast
from pathlib import Path

import cnnkit.engine

ABOVE = ("cnnkit.tasks", "cnnkit.models", "cnnkit.data", "cnnkit.export", "cnnkit.cli", "cnnkit.serve", "cnnkit.api")


def test_engine_imports_nothing_above_it():
    for path in Path(cnnkit.engine.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.startswith(ABOVE)], f"{path.name} imports {names}"
