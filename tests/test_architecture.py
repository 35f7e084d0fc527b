"""The package's layering: no module imports one that stands above it in the pipeline, so there is no cycle.

docs/architecture.md draws the same layers. A module may import its own layer or any layer below it; imports
inside functions count too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import yoco

ROOT = Path(yoco.__file__).parent

LAYERS = [
    ["errors", "allocator", "provenance", "progress"],
    ["registry", "protocol"],
    ["files", "runtime"],
    ["data"],
    ["models"],
    ["augment"],
    ["train", "predict"],
    ["runner"],
    ["dynamics", "evaluate"],
    ["scores"],
    ["selectors", "scoretable"],
    ["rules"],
    ["condense"],
    ["report"],
    ["ladder"],
    ["cli"],
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.startswith("yoco.") else module
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module yoco.{top} is in no layer of tests/test_architecture.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("yoco.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("yoco"):
            if node.module == "yoco":
                found |= {f"yoco.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def test_every_module_imports_only_its_layer_or_below():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = "yoco." + ".".join(rel.parts).removesuffix(".__init__")
        if module == "yoco.__init__":
            continue
        mine = _layer(module)
        for imported in _imports(path):
            if _layer(imported) > mine:
                problems.append(f"{module} (layer {mine}) imports {imported} (layer {_layer(imported)})")
    assert not problems, "\n".join(problems)



def _graph() -> dict[str, set[str]]:
    """Every yoco module's imports of other yoco modules (a package's import names its ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        modules["yoco." + ".".join(rel.parts).removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("yoco"):
                # `from yoco.pkg import sub` imports the submodule when there is one, else a name of the package
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_cycle_between_any_two_modules_sub_packages_included():
    """The layers above are checked between top-level modules; inside a package (data/, scores/, selectors/,
    ladder/, condense/) no two modules may import each other either, directly or through others."""
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)
