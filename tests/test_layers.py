"""The package's layers: every import between subpackages points down (or sideways between the
strategies), and the import graph has no cycle. Walks the source, lazy imports inside functions
included, so a shortcut taken anywhere shows."""
import ast
from collections import defaultdict
from pathlib import Path

import supernas

ROOT = Path(supernas.__file__).resolve().parent

# Lowest first; a subpackage may import from its own layer or any below.
LAYERS = [
    {"errors", "registry", "utils", "__version__"},
    {"spaces"},
    {"data", "nn", "predictors"},
    {"config", "sampling"},
    {"runtime"},
    {"evaluation"},
    {"deliver"},
    {"search", "train", "fpnas"},  # the strategies
    {"report"},
    {"cli", "quickstart", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def import_graph() -> dict[str, set[str]]:
    """subpackage -> the subpackages its modules import (relative and absolute imports)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT)
        parts = list(rel.with_suffix("").parts)
        pkg = parts[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = parts[:len(parts) - node.level]
                mod = base + (node.module.split(".") if node.module else [])
                targets = [mod[0]] if mod else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("supernas."):
                targets = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("supernas.")]
            graph[pkg].update(t for t in targets if t != pkg)
    return graph


def test_every_subpackage_has_a_layer():
    assert set(import_graph()) <= set(LAYER), set(import_graph()) - set(LAYER)


def test_imports_point_down_the_layers():
    upward = [(a, b) for a, deps in import_graph().items() for b in deps if LAYER[b] > LAYER[a]]
    assert not upward, f"imports that point up: {upward}"


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path + [node, dep])}"
            if state.get(dep) is None:
                visit(dep, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
