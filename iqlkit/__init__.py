"""iqlkit: Implicit Q-Learning for a course, from expectiles to GPU AntMaze.

The layers, each a sub-package that imports only from those below it (tests/test_layout.py checks):
  theory       the math the course teaches: the expectile loss and expectiles, exact tabular IQL
  envs         data and environments: Minari datasets as tensors, the kit's PointMaze and AntMaze data, rollouts
  engine       IQL itself, its fast path, the one training loop and its run folders, online fine-tuning, baselines
  experiments  expectile regression with a network, comparisons, ablation sweeps, the tau study, policy
               extraction, the fine-tuning study, the bench
  plots, cli, assign   figures and sliders, the command line, classroom assignments
beside small helpers (session, smoke, parallel). What the notebooks use most is importable from here:
`from iqlkit import IQL, IQLConfig, fit, fit_many, load_minari`.
"""
from importlib import import_module

__version__ = "0.1.0"
_PUBLIC = {"IQL": "iqlkit.engine.iql", "IQLConfig": "iqlkit.engine.iql", "fit": "iqlkit.engine.train",
           "fit_many": "iqlkit.engine.train", "TrainOptions": "iqlkit.engine.train", "load_minari": "iqlkit.envs.data",
           "Transitions": "iqlkit.envs.data", "evaluate": "iqlkit.envs.evaluate"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """The public names, imported on first use (so that `import iqlkit` and the CLI's start stay light)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'iqlkit' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
