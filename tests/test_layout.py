"""The kit's imports flow one way: every module sits in a layer and imports only from its own layer or below, and no
module imports itself back through others (imports inside functions and under TYPE_CHECKING count too)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# by package: 0 the theory the course teaches and leaf helpers (they import nothing of the kit but each other);
# 1 data and environments; 2 the engine and its loop; 3 experiments; 4 figures and sliders, the command line,
# classroom tools and the package's own lazy public names
LAYERS = {
    0: ["iqlkit.theory", "iqlkit.smoke", "iqlkit.session", "iqlkit.parallel"],
    1: ["iqlkit.envs", "toy_envs"],
    2: ["iqlkit.engine"],
    3: ["iqlkit.experiments"],
    4: ["iqlkit", "iqlkit.plots", "iqlkit.cli", "iqlkit.__main__", "iqlkit.assign"],
}
MODULES = sorted(p for pkg in ("iqlkit", "toy_envs") for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def layer(name: str) -> int:
    """The layer of a module: its own entry, else its package's (iqlkit.engine.iql -> iqlkit.engine)."""
    for n, names in LAYERS.items():
        if name in names:
            return n
    parent = name.rpartition(".")[0]
    if parent in ("", "iqlkit"):
        raise KeyError(f"{name} is in no layer: give it a sub-package, or add it to LAYERS in tests/test_layout.py")
    return layer(parent)


def kit_imports(path: Path, known: set[str]) -> set[str]:
    """The kit modules a file imports anywhere in it (module level, functions, TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = {f"{node.module}.{a.name}" for a in node.names} & known  # `from iqlkit.envs import data`
            found |= modules or {node.module}
    return {n for n in found if n in known} - {module_name(path)}


GRAPH = {module_name(p): kit_imports(p, {module_name(q) for q in MODULES}) for p in MODULES}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_a_module_imports_only_from_its_layer_or_below(name):
    upward = {m for m in GRAPH[name] if layer(m) > layer(name)}
    assert not upward, f"{name} (layer {layer(name)}) imports from higher layers: {sorted(upward)}"


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(name, path):
        state[name] = 1
        for dep in GRAPH[name]:
            if state.get(dep) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(path[path.index(dep):] + [dep])}")
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in GRAPH:
        if name not in state:
            visit(name, [name])


def test_the_check_finds_a_cycle_when_there_is_one(monkeypatch):
    monkeypatch.setitem(GRAPH, "iqlkit.envs.maze", GRAPH["iqlkit.envs.maze"] | {"iqlkit.envs.data"})
    with pytest.raises(AssertionError, match="import cycle: .*iqlkit.envs.maze -> iqlkit.envs.data"):
        test_no_import_cycles()


def test_the_check_finds_an_engine_module_that_imports_a_figure(monkeypatch):
    monkeypatch.setitem(GRAPH, "iqlkit.engine.train", GRAPH["iqlkit.engine.train"] | {"iqlkit.plots.training"})
    with pytest.raises(AssertionError, match=r"iqlkit.engine.train \(layer 2\) imports from higher layers: "
                                             r"\['iqlkit.plots.training'\]"):
        test_a_module_imports_only_from_its_layer_or_below("iqlkit.engine.train")


def test_the_tree_shows_the_layers():
    top = sorted(p.stem for p in (ROOT / "iqlkit").glob("*.py"))
    assert top == ["__init__", "__main__", "cli", "parallel", "session", "smoke"], top  # the rest sit in layers
    assert {p.name for p in (ROOT / "iqlkit").iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        "theory", "envs", "engine", "experiments", "plots", "assign"}
