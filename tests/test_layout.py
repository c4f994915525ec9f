"""The kit's imports flow one way: every module sits in a layer and imports only from its own layer or below, and no
module imports itself back through others (imports inside functions and under TYPE_CHECKING count too)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# 0: core math and leaf helpers (they import nothing of the kit but each other); 1: data and environments;
# 2: the engine and its loop; 3: experiments; 4: figures, widgets, the command line, classroom tools
LAYERS = {
    0: ["iqlkit", "iqlkit.expectile", "iqlkit.tabular", "iqlkit.nets", "iqlkit.smoke", "iqlkit.maze", "iqlkit.device",
        "iqlkit.parallel", "iqlkit.plots.training", "iqlkit.session", "iqlkit.regression"],
    1: ["iqlkit.data", "iqlkit.evaluate", "iqlkit.pointmaze", "iqlkit.datagen", "iqlkit.antmaze", "iqlkit.controller",
        "toy_envs", "toy_envs.tabular_mdp", "toy_envs.two_step", "toy_envs.grid_maze"],
    2: ["iqlkit.iql", "iqlkit.fast", "iqlkit.runfolder", "iqlkit.train", "iqlkit.online"],
    3: ["iqlkit.awr", "iqlkit.extraction", "iqlkit.baselines", "iqlkit.compare", "iqlkit.sweep", "iqlkit.taustudy",
        "iqlkit.bench"],
    4: ["iqlkit.plots", "iqlkit.widgets", "iqlkit.cli", "iqlkit.__main__", "iqlkit.assign"],
}
MODULES = sorted(p for pkg in ("iqlkit", "toy_envs") for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def layer(name: str) -> int:
    """The layer of a module: its own entry, else its package's (iqlkit.plots.sweep -> iqlkit.plots)."""
    for n, names in sorted(LAYERS.items(), key=lambda kv: -kv[0]):
        if name in names:
            return n
    parent = name.rpartition(".")[0]
    if parent in ("", "iqlkit"):
        raise KeyError(f"{name} is in no layer: add it to LAYERS in tests/test_layout.py")
    return layer(parent)


def kit_imports(path: Path, known: set[str]) -> set[str]:
    """The kit modules a file imports anywhere in it (module level, functions, TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
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
    monkeypatch.setitem(GRAPH, "iqlkit.maze", GRAPH["iqlkit.maze"] | {"iqlkit.data"})
    with pytest.raises(AssertionError, match="import cycle: .*iqlkit.maze -> iqlkit.data"):
        test_no_import_cycles()
