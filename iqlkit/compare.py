"""Methods x seeds on one dataset: train each through the same engine (seeds stacked), evaluate, collect success rates."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from iqlkit.baselines import method_setup
from iqlkit.data import Transitions
from iqlkit.evaluate import evaluate
from iqlkit.iql import IQLConfig
from iqlkit.parallel import process_map
from iqlkit.pointmaze import TASKS, make_env


@dataclass(frozen=True)
class Run:
    """One trained and evaluated agent: its method, seed, final success rate and CSV-style log rows."""

    method: str
    seed: int
    success_rate: float
    rows: list


def run_method(method: str, seeds: tuple[int, ...], data: Transitions, config: IQLConfig, task: str,
               eval_episodes: int, eval_every: int) -> list[Run]:
    """Train `method` for all seeds at once (fit_many), evaluating every eval_every steps; one Run per seed."""
    import torch

    from iqlkit.train import fit_many

    torch.set_num_threads(1)
    method_data, method_config = method_setup(method, data, config)
    make = partial(make_env, TASKS[task], True)

    def eval_fn(agent) -> dict[str, float]:  # each agent evaluated with its own seed's episodes
        return {"success_rate": evaluate(agent.act, make, n_episodes=eval_episodes, n_envs=10,
                                         seed=agent.seed).success_rate}

    _, rows = fit_many(method_data, method_config, seeds, eval_fn=eval_fn, eval_every=eval_every,
                       log_every=eval_every, progress=False)
    runs = []
    for seed in seeds:
        mine = [{"step": r["step"], "success_rate": r["success_rate"]} for r in rows if r["seed"] == seed]
        runs.append(Run(method, seed, mine[-1]["success_rate"], mine))
    return runs


def compare_methods(data: Transitions, config: IQLConfig, task: str,
                    methods: tuple[str, ...] = ("iql", "one-step", "bc", "top10-bc"), seeds: tuple[int, ...] = (0, 1, 2),
                    steps: int | None = None, eval_episodes: int = 50, n_evals: int = 4,
                    workers: int | None = None) -> list[Run]:
    """Every method with every seed: the seeds of a method train together (one IQL of S agents), methods in
    `workers` processes (default one per CPU core); a list of Runs, method by method."""
    config = replace(config, max_steps=steps or config.max_steps)
    job = partial(run_method, seeds=tuple(seeds), data=data.to("cpu"), config=config, task=task,
                  eval_episodes=eval_episodes, eval_every=max(config.max_steps // n_evals, 1))
    return [run for runs in process_map(job, [(m,) for m in methods], workers) for run in runs]


def success_table(runs: list[Run]) -> dict[str, np.ndarray]:
    """Method -> final success rates over its seeds."""
    table: dict[str, list[float]] = {}
    for run in runs:
        table.setdefault(run.method, []).append(run.success_rate)
    return {m: np.array(v) for m, v in table.items()}
