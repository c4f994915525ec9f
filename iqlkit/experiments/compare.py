"""Methods x seeds on one dataset: train each through the same engine (seeds stacked), evaluate, collect success rates
(and normalised scores where the dataset has references). The stacks run in a local process pool or as Ray tasks
(iqlkit.experiments.backends); iqlkit.experiments.table runs them for several datasets at once."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from iqlkit.engine.baselines import method_setup
from iqlkit.engine.iql import IQLConfig
from iqlkit.engine.runfolder import RunFolder, read_csv, write_csv
from iqlkit.engine.train import fit_many
from iqlkit.envs.data import Transitions, flatten_observations
from iqlkit.envs.evaluate import evaluate
from iqlkit.envs.pointmaze import TASKS, make_env
from iqlkit.experiments.backends import Backend, Task


@dataclass(frozen=True)
class Run:
    """One trained and evaluated agent: its method, seed, final success rate and CSV-style log rows; a run whose stack
    failed has no rows and the failure's reason in `error`."""

    method: str
    seed: int
    success_rate: float
    rows: list
    error: str = ""


def env_factory(task: str | Callable[[], object]) -> Callable[[], object]:
    """The evaluation env factory: a PointMaze task's name (iqlkit.envs.pointmaze.TASKS), or any picklable factory."""
    if callable(task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown PointMaze task {task!r}: choose one of {sorted(TASKS)} or pass an env factory")
    return partial(make_env, TASKS[task], True)


def run_methods(methods: tuple[str, ...], seeds: tuple[int, ...], data: Transitions, config: IQLConfig,
                task: str | Callable[[], object], eval_episodes: int, eval_every: int, device: str = "cpu",
                n_envs: int = 10, obs_fn: Callable = flatten_observations, log_dir: str | None = None,
                references: tuple[float, float] | None = None, tensorboard: bool = False,
                progress: bool | None = None) -> list[Run]:
    """Train `methods` (which must share their data) x `seeds` as one IQL of len(methods) * len(seeds) agents
    (fit_many: agent (m, s) starts and samples as fit(data, config_m, seed=s) would), evaluating every eval_every
    steps on eval_episodes episodes of `task` (observations through obs_fn, as in training; with `references`, the
    dataset's (min, max) returns, a normalised score too); one Run per method and seed, method by method. With
    log_dir the stack logs (TensorBoard events with `tensorboard`), checkpoints and resumes in log_dir/<methods
    joined by +>; progress: its bar (default: with log_dir)."""
    import torch

    torch.set_num_threads(1)
    setups = [method_setup(m, data, config) for m in methods]
    if any(d is not setups[0][0] for d, _ in setups):
        raise ValueError(f"methods {methods} train on different data; run them in separate calls")
    make = env_factory(task)

    scores = ("success_rate", "normalized_score") if references is not None else ("success_rate",)

    def eval_fn(agent) -> dict[str, float]:  # each agent evaluated with its own seed's episodes
        summary = evaluate(agent.act, make, n_episodes=eval_episodes, n_envs=n_envs, seed=agent.seed, obs_fn=obs_fn,
                           references=references).summary()
        return {k: summary[k] for k in scores}

    configs = [c for _, c in setups for _ in seeds]
    _, rows = fit_many(setups[0][0], configs, list(seeds) * len(methods), device=device,
                       eval_fn=eval_fn, eval_every=eval_every, log_every=eval_every,
                       progress=log_dir is not None if progress is None else progress, tensorboard=tensorboard,
                       log_dir=log_dir and Path(log_dir) / "+".join(methods))
    runs = []
    for k, (method, seed) in enumerate((m, s) for m in methods for s in seeds):
        mine = [{"step": r["step"], **{name: r[name] for name in scores}} for r in rows if r["agent"] == k]
        runs.append(Run(method, seed, mine[-1]["success_rate"], mine))
    return runs


def method_groups(methods: tuple[str, ...], data: Transitions, config: IQLConfig) -> list[tuple[str, ...]]:
    """The stacks: methods that train on the IQL data as it is (IQL, one-step, BC differ only in tau and beta) in one,
    each other method (top-10% BC, on its own data) alone; a ValueError for an unknown method."""
    stacked = tuple(m for m in methods if method_setup(m, data, config)[0] is data)
    return ([stacked] if stacked else []) + [(m,) for m in methods if m not in stacked]


def compare_tasks(data: Transitions, config: IQLConfig, task: str | Callable[[], object], methods: tuple[str, ...],
                  seeds: tuple[int, ...], eval_episodes: int, n_evals: int, device: str, n_envs: int,
                  obs_fn: Callable, log_dir: str | None, references: tuple[float, float] | None = None,
                  tensorboard: bool = False, progress: bool | None = None) -> list[Task]:
    """One task of run_methods per stack (method_groups); the same data and evaluation for all."""
    data, eval_every = data.to("cpu"), max(config.max_steps // n_evals, 1)
    return [Task((group, tuple(seeds), data, config, task, eval_episodes, eval_every, device, n_envs, obs_fn, log_dir,
                  references, tensorboard, progress), len(group) * len(seeds), "+".join(group))
            for group in method_groups(methods, data, config)]


def compare_methods(data: Transitions, config: IQLConfig, task: str | Callable[[], object],
                    methods: tuple[str, ...] = ("iql", "one-step", "bc", "top10-bc"), seeds: tuple[int, ...] = (0, 1, 2),
                    steps: int | None = None, eval_episodes: int = 50, n_evals: int = 4,
                    workers: int | None = None, device: str = "cpu", n_envs: int = 10,
                    obs_fn: Callable = flatten_observations, log_dir: str | None = None,
                    references: tuple[float, float] | None = None, backend: Backend | None = None,
                    tensorboard: bool = False, progress: bool = False) -> list[Run]:
    """Every method with every seed. Methods that train on the same data (IQL, one-step and BC differ only in tau
    and beta) train as one stack, all their seeds with them; each stack is one task of `backend` (default: a local
    pool of `workers` processes, one per CPU core by default). task: a PointMaze task name or a picklable env
    factory; obs_fn, log_dir, references and tensorboard as in run_methods; progress: one bar over the runs. A list
    of Runs, method by method; the runs of a stack that failed carry its reason (Run.error), the others go on. One
    comparison at a time in log_dir (a lock)."""
    config = replace(config, max_steps=steps or config.max_steps)
    backend = backend or Backend(workers=workers)
    tasks = compare_tasks(data, config, task, tuple(methods), tuple(seeds), eval_episodes, n_evals, device, n_envs,
                          obs_fn, log_dir, references, tensorboard, False if progress else None)  # one bar at a time
    by_method: dict[str, list[Run]] = {}

    def collect(_: Task, runs: list[Run]) -> None:
        for run in runs:
            by_method.setdefault(run.method, []).append(run)

    folder = RunFolder(log_dir) if log_dir else None
    if folder is not None:
        folder.lock()
    try:
        for failure in backend.run(run_methods, tasks, collect, "compare", progress):
            for method in failure.task.args[0]:
                by_method[method] = [Run(method, s, float("nan"), [], failure.reason) for s in seeds]
    finally:
        if folder is not None:
            folder.release()
    return [run for m in methods for run in by_method[m]]


def write_results(runs: list[Run], path: str | Path) -> Path:
    """One CSV row per evaluation of every Run: method, seed, step, success_rate (and normalized_score where
    evaluated), written atomically; failed Runs have no rows."""
    return write_csv(path, [{"method": r.method, "seed": r.seed, **row} for r in runs for row in r.rows],
                     ["method", "seed", "step", "success_rate"])


def read_results(path: str | Path) -> list[Run]:
    """The Runs of a write_results CSV (also .csv.gz), in its order; each Run's score is its last evaluation."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for row in read_csv(path):
        runs.setdefault((row["method"], int(row["seed"])), []).append(
            {"step": int(row["step"]), **{k: float(v) for k, v in row.items() if k not in ("method", "seed", "step")
                                          and v != ""}})
    return [Run(method, seed, evals[-1]["success_rate"], evals) for (method, seed), evals in runs.items()]


def success_table(runs: list[Run], metric: str = "success_rate") -> dict[str, np.ndarray]:
    """Method -> the final evaluation's `metric` (success rate, or normalized_score) over its seeds (failed runs left
    out)."""
    table: dict[str, list[float]] = {}
    for run in runs:
        if not run.error:
            table.setdefault(run.method, []).append(run.rows[-1][metric] if run.rows else run.success_rate)
    return {m: np.array(v) for m, v in table.items()}
