"""kacnb's four layers: every import goes down a layer or stays in one, and none goes in a circle.

The imports are read from the source (``ast``), including those inside functions and under
``TYPE_CHECKING``, so a lazy import cannot hide a dependency. Ranks: the shared modules
(``_checks``, ``report``, ``_root``) 0, ``theory`` 1, ``cfm`` 2, ``experiments`` 3,
``collection`` 4 (and ``kacnb.__main__``, the command's entry point).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kacnb"
LAYERS = ("theory", "cfm", "experiments", "collection")
SHARED = ("_checks", "report", "_root")


def module_name(path: Path) -> str:
    """``kacnb/cfm/train.py`` -> ``kacnb.cfm.train`` (a package's ``__init__`` -> the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rank(module: str) -> int:
    """The layer rank of a module of kacnb (see the module docstring)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the top-level package itself (its docstring only)
    if parts[1] in SHARED:
        return 0
    if parts[1] == "__main__":
        return LAYERS.index("collection") + 1
    return LAYERS.index(parts[1]) + 1


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The kacnb modules ``path`` imports (resolved relative imports; ``from p import m`` counts
    ``p.m`` when that is a module, else ``p``)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [(mod, [a.name for a in node.names])]
        else:
            continue
        for mod, names in targets:
            if not (mod == "kacnb" or mod.startswith("kacnb.")):
                continue
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in known]
            found.update(subs or [mod])
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) for p in files}


def violations(g: dict[str, set[str]]) -> list[str]:
    """Imports that go up a layer, the shared modules importing kacnb, and import cycles."""
    out = []
    for mod, deps in sorted(g.items()):
        for dep in sorted(deps):
            if rank(dep) > rank(mod) or (rank(mod) == 0 and rank(dep) >= 0):
                out.append(f"{mod} imports {dep} (layer {rank(dep)} from layer {rank(mod)})")
    # cycles: depth-first search with colours
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                out.append("cycle: " + " -> ".join(stack[stack.index(d) :] + [d]))
            elif d in g and d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    return out


def test_no_import_goes_up_a_layer_or_in_a_circle():
    g = graph()
    assert len(g) > 40  # the reader found the package
    assert violations(g) == []


def test_every_module_belongs_to_a_layer():
    stray = [
        p.name for p in PACKAGE.glob("*.py") if p.stem not in (*SHARED, "__init__", "__main__")
    ]
    assert stray == [], f"modules outside a layer: {stray}"
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == (
        sorted(LAYERS)
    )


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_lists_its_modules(layer):
    """A layer's docstring names every module it holds, one line each (``- ``name`` -- ...``)."""
    init = PACKAGE / layer / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    listed = {line.split("``")[1] for line in doc.splitlines() if line.startswith("- ``")}
    present = {p.stem for p in (PACKAGE / layer).glob("*.py") if p.stem != "__init__"}
    assert listed == present
    assert "May import" in doc


def test_the_checker_catches_an_upward_import_and_a_cycle():
    """The checker itself fails for the mistakes it is there to catch."""
    g = {
        "kacnb.theory.kac": {"kacnb.cfm.paths"},  # mathematics importing the engine
        "kacnb.cfm.paths": {"kacnb.theory.kac"},
        "kacnb.cfm.train": {"kacnb.cfm.ensemble"},
        "kacnb.cfm.ensemble": {"kacnb.cfm.train"},  # the old train <-> ensemble cycle
        "kacnb.report": {"kacnb.theory.kac"},  # a shared module importing a layer
    }
    found = violations(g)
    assert any("kacnb.theory.kac imports kacnb.cfm.paths" in v for v in found)
    assert any("kacnb.report imports" in v for v in found)
    cycles = [v for v in found if v.startswith("cycle")]
    assert any("kacnb.cfm.ensemble" in c and "kacnb.cfm.train" in c for c in cycles)
    assert (
        violations({"kacnb.cfm.train": {"kacnb.cfm.ensemble"}, "kacnb.cfm.ensemble": set()}) == []
    )


def test_relative_imports_are_resolved():
    """``from ..theory.kac import Kac`` in kacnb/cfm/paths.py is read as kacnb.theory.kac."""
    g = graph()
    assert "kacnb.theory.kac" in g["kacnb.cfm.paths"]
    assert "kacnb.cfm.config" in g["kacnb.cfm.ensemble"]
    assert "kacnb.cfm.train" not in g["kacnb.cfm.ensemble"]
