"""Methods x seeds on one dataset: train each through the same engine (seeds stacked), evaluate, collect success rates."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from iqlkit.engine.baselines import method_setup
from iqlkit.engine.iql import IQLConfig
from iqlkit.engine.runfolder import read_csv, write_csv
from iqlkit.engine.train import fit_many
from iqlkit.envs.data import Transitions, flatten_observations
from iqlkit.envs.evaluate import evaluate
from iqlkit.envs.pointmaze import TASKS, make_env
from iqlkit.parallel import process_map


@dataclass(frozen=True)
class Run:
    """One trained and evaluated agent: its method, seed, final success rate and CSV-style log rows."""

    method: str
    seed: int
    success_rate: float
    rows: list


def env_factory(task: str | Callable[[], object]) -> Callable[[], object]:
    """The evaluation env factory: a PointMaze task's name (iqlkit.envs.pointmaze.TASKS), or any picklable factory."""
    if callable(task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown PointMaze task {task!r}: choose one of {sorted(TASKS)} or pass an env factory")
    return partial(make_env, TASKS[task], True)


def run_methods(methods: tuple[str, ...], seeds: tuple[int, ...], data: Transitions, config: IQLConfig,
                task: str | Callable[[], object], eval_episodes: int, eval_every: int, device: str = "cpu",
                n_envs: int = 10, obs_fn: Callable = flatten_observations, log_dir: str | None = None) -> list[Run]:
    """Train `methods` (which must share their data) x `seeds` as one IQL of len(methods) * len(seeds) agents
    (fit_many: agent (m, s) starts and samples as fit(data, config_m, seed=s) would), evaluating every eval_every
    steps on eval_episodes episodes of `task` (observations through obs_fn, as in training); one Run per method and
    seed, method by method. With log_dir the stack logs, checkpoints and resumes in log_dir/<methods joined by +>."""
    import torch

    torch.set_num_threads(1)
    setups = [method_setup(m, data, config) for m in methods]
    if any(d is not setups[0][0] for d, _ in setups):
        raise ValueError(f"methods {methods} train on different data; run them in separate calls")
    make = env_factory(task)

    def eval_fn(agent) -> dict[str, float]:  # each agent evaluated with its own seed's episodes
        return {"success_rate": evaluate(agent.act, make, n_episodes=eval_episodes, n_envs=n_envs, seed=agent.seed,
                                         obs_fn=obs_fn).success_rate}

    configs = [c for _, c in setups for _ in seeds]
    _, rows = fit_many(setups[0][0], configs, list(seeds) * len(methods), device=device,
                       eval_fn=eval_fn, eval_every=eval_every, log_every=eval_every, progress=log_dir is not None,
                       log_dir=log_dir and Path(log_dir) / "+".join(methods))
    runs = []
    for k, (method, seed) in enumerate((m, s) for m in methods for s in seeds):
        mine = [{"step": r["step"], "success_rate": r["success_rate"]} for r in rows if r["agent"] == k]
        runs.append(Run(method, seed, mine[-1]["success_rate"], mine))
    return runs


def compare_methods(data: Transitions, config: IQLConfig, task: str | Callable[[], object],
                    methods: tuple[str, ...] = ("iql", "one-step", "bc", "top10-bc"), seeds: tuple[int, ...] = (0, 1, 2),
                    steps: int | None = None, eval_episodes: int = 50, n_evals: int = 4,
                    workers: int | None = None, device: str = "cpu", n_envs: int = 10,
                    obs_fn: Callable = flatten_observations, log_dir: str | None = None) -> list[Run]:
    """Every method with every seed. Methods that train on the same data (IQL, one-step and BC differ only in tau
    and beta) train as one stack, all their seeds with them; each stack runs in one of `workers` processes
    (default one per CPU core). task: a PointMaze task name or a picklable env factory; obs_fn and log_dir as in
    run_methods. A list of Runs, method by method."""
    config = replace(config, max_steps=steps or config.max_steps)
    stacked = tuple(m for m in methods if method_setup(m, data, config)[0] is data)  # IQL's data as it is
    groups = ([stacked] if stacked else []) + [(m,) for m in methods if m not in stacked]
    job = partial(run_methods, seeds=tuple(seeds), data=data.to("cpu"), config=config, task=task,
                  eval_episodes=eval_episodes, eval_every=max(config.max_steps // n_evals, 1), device=device,
                  n_envs=n_envs, obs_fn=obs_fn, log_dir=log_dir)
    by_method: dict[str, list[Run]] = {}
    for runs in process_map(job, [(g,) for g in groups], workers):
        for run in runs:
            by_method.setdefault(run.method, []).append(run)
    return [run for m in methods for run in by_method[m]]


def write_results(runs: list[Run], path: str | Path) -> Path:
    """One CSV row per evaluation of every Run: method, seed, step, success_rate (written atomically)."""
    return write_csv(path, [{"method": r.method, "seed": r.seed, **row} for r in runs for row in r.rows],
                     ["method", "seed", "step", "success_rate"])


def read_results(path: str | Path) -> list[Run]:
    """The Runs of a write_results CSV (also .csv.gz), in its order; each Run's score is its last evaluation."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for row in read_csv(path):
        runs.setdefault((row["method"], int(row["seed"])), []).append(
            {"step": int(row["step"]), "success_rate": float(row["success_rate"])})
    return [Run(method, seed, evals[-1]["success_rate"], evals) for (method, seed), evals in runs.items()]


def success_table(runs: list[Run]) -> dict[str, np.ndarray]:
    """Method -> final success rates over its seeds."""
    table: dict[str, list[float]] = {}
    for run in runs:
        table.setdefault(run.method, []).append(run.success_rate)
    return {m: np.array(v) for m, v in table.items()}
