"""The package's architecture, checked: no import cycles, and no import from a lower layer to a higher one.

The layers, lowest first (docs/ARCHITECTURE.md draws them); a module may import from its own layer and the ones
below it. Every import counts, also those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "monai_app"
LAYERS = [
    ["monai_app", "monai_app.errors"],
    ["monai_app.files"],
    ["monai_app.config"],
    ["monai_app.datasets"],
    ["monai_app.transforms", "monai_app.losses", "monai_app.metrics", "monai_app.visualize", "monai_app.synthetic"],
    ["monai_app.engine"],
    ["monai_app.dataset_check", "monai_app.reports", "monai_app.export", "monai_app.workflow",
     "monai_app.model_card", "monai_app.package", "monai_app.postprocess"],
    ["monai_app.cli"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer of ``module``: that of the longest prefix named in :data:`LAYERS`."""
    best, layer = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    assert layer is not None, f"{module} is in no layer of tests/test_layering.py: add it"
    return layer


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    package = package[: len(package) - node.level + (1 if MODULES[module].name == "__init__.py" else 0)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The ``monai_app`` modules ``module`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, node)
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_is_placed_in_a_layer():
    assert all(layer_of(m) >= 0 for m in MODULES)
    assert len(MODULES) > 30, "the walk found too few modules: is the package where this test looks?"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_higher_layer(module):
    upward = sorted(f"{dep} (layer {layer_of(dep)})" for dep in GRAPH[module] if layer_of(dep) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports from a higher layer: {', '.join(upward)}"


def test_no_import_cycles():
    """Depth-first search for a back edge; the message names one cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checks_see_a_known_edge_and_a_known_violation():
    """The walk finds real edges (so the tests above cannot pass by finding nothing), and would flag an upward one."""
    assert "monai_app.errors" in GRAPH["monai_app.files"]
    assert "monai_app.engine.distributed" in GRAPH["monai_app.engine.handlers"]
    assert layer_of("monai_app.cli") > layer_of("monai_app.datasets.brats") > layer_of("monai_app.errors")
