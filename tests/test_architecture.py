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

