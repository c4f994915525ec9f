"""Methods x seeds on one dataset: train each through the same engine, evaluate, collect success rates."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from iqlkit.baselines import method_setup
from iqlkit.data import Transitions
from iqlkit.evaluate import evaluate
from iqlkit.iql import IQLConfig
from iqlkit.pointmaze import TASKS, make_env


@dataclass(frozen=True)
class Run:
    """One trained and evaluated agent: its method, seed, final success rate and CSV-style log rows."""

    method: str
    seed: int
    success_rate: float
    rows: list


def run_method(method: str, seed: int, data: Transitions, config: IQLConfig, task: str, eval_episodes: int,
               eval_every: int) -> Run:
    """Train `method` with `seed` on the task's data, evaluating every eval_every steps; final success over eval_episodes."""
    import torch

    from iqlkit.train import fit

    torch.set_num_threads(1)
    method_data, method_config = method_setup(method, data, config)
    make = partial(make_env, TASKS[task], True)
    rows: list[dict] = []

    def eval_fn(agent) -> dict[str, float]:
        result = {"success_rate": evaluate(agent.act, make, n_episodes=eval_episodes, n_envs=10, seed=seed).success_rate}
        rows.append({"step": agent.steps, **result})
        return result

    fit(method_data, method_config, seed=seed, eval_fn=eval_fn, eval_every=eval_every, progress=False)
    return Run(method, seed, rows[-1]["success_rate"], rows)


def compare_methods(data: Transitions, config: IQLConfig, task: str, methods: tuple[str, ...] = ("iql", "one-step", "bc", "top10-bc"),
                    seeds: tuple[int, ...] = (0, 1, 2), steps: int | None = None, eval_episodes: int = 50,
                    n_evals: int = 4, workers: int | None = None) -> list[Run]:
    """Every method with every seed (in `workers` processes, default one per CPU core); a list of Runs."""
    config = replace(config, max_steps=steps or config.max_steps)
    job = partial(run_method, data=data.to("cpu"), config=config, task=task, eval_episodes=eval_episodes,
                  eval_every=max(config.max_steps // n_evals, 1))
    pairs = [(m, s) for m in methods for s in seeds]
    workers = min(workers or os.cpu_count() or 1, len(pairs))
    if workers == 1:
        return [job(m, s) for m, s in pairs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(job, *zip(*pairs)))


def success_table(runs: list[Run]) -> dict[str, np.ndarray]:
    """Method -> final success rates over its seeds."""
    table: dict[str, list[float]] = {}
    for run in runs:
        table.setdefault(run.method, []).append(run.success_rate)
    return {m: np.array(v) for m, v in table.items()}
