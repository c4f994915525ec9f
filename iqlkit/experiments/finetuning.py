"""The fine-tuning study of notebook 08: one maze run of every seed (offline only, or offline then online through
iqlkit.engine.online.finetune), and the readers of its log rows (per seed, as series, at a step, the deepest fall,
goal reaches per 1,000 transitions)."""
from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import torch

from iqlkit.engine.iql import IQLConfig
from iqlkit.engine.online import finetune
from iqlkit.engine.train import fit_many


def by_seed(rows: Sequence[dict], seeds: Sequence[int]) -> list[list[dict]]:
    """Each seed's log rows, in the order of `seeds` (rows without a 'seed' column belong to every seed: one agent)."""
    return [[r for r in rows if r.get("seed", seed) == seed] for seed in seeds]


def series(runs: Sequence[Sequence[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps [points] and values [seeds, points] of the rows holding a finite `key` (for a score: the evaluations),
    cut to the shortest seed."""
    kept = [[r for r in run if key in r and np.isfinite(float(r[key]))] for run in runs]
    n = min(len(run) for run in kept)
    steps = np.array([float(r["step"]) for r in kept[0][:n]])
    return steps, np.array([[float(r[key]) for r in run[:n]] for run in kept]).reshape(len(runs), n)


def values_at(runs: Sequence[Sequence[dict]], key: str, step: int) -> np.ndarray:
    """Each seed's `key` in its row of step `step` ([seeds]; KeyError if a seed has no such row)."""
    out = []
    for k, run in enumerate(runs):
        found = [float(r[key]) for r in run if r["step"] == step and key in r]
        if not found:
            raise KeyError(f"seed index {k} has no {key!r} at step {step:,}")
        out.append(found[0])
    return np.array(out)


def largest_drop(values: np.ndarray) -> np.ndarray:
    """Per row of values [seeds, points]: the largest fall from one point to a later one, max over i < j of
    v_i - v_j (0 when the row never falls)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    peak = np.maximum.accumulate(values, axis=1)
    return (peak - values).max(axis=1)


def goal_rates(terminals: np.ndarray, window: int) -> np.ndarray:
    """Goal reaches (terminal rows) per 1,000 transitions in successive windows of `window` rows; a shorter last
    window is dropped."""
    terminals = np.asarray(terminals, dtype=float)
    n = len(terminals) // window
    if n == 0:
        raise ValueError(f"{len(terminals)} rows hold no full window of {window}")
    return 1000.0 * terminals[:n * window].reshape(n, window).mean(1)


def maze_run(dataset: str, config: IQLConfig, task: str, variant: str, seeds: Sequence[int], offline_steps: int,
             online_steps: int, n_envs: int = 1, init_state: dict | None = None, eval_episodes: int = 20,
             eval_every: int = 2_000, log_every: int = 500) -> dict:
    """One run of notebook 08 on a kit PointMaze dataset (the Minari id `dataset`), every seed at once, in this
    process (picklable for iqlkit.parallel.process_map).

    variant 'offline': offline_steps + online_steps offline updates with `config` as given (its schedule included);
    else one of VARIANTS through finetune(), from `init_state` (the agents at step offline_steps) if given. Every
    eval_every updates: eval_episodes mean-action episodes from the task's S (pointmaze.success_rate) whose reset
    seeds change with the step (the same for every run at the same step and seed). Returns {'rows': the log rows,
    'switch': the agents' state_dict at step offline_steps, 'end': at the end, 'online': per seed the x-y and the
    terminal flag of its online transitions in buffer order (None for 'offline'), 'seconds': wall time}.
    """
    import time

    from iqlkit.envs.data import load_minari
    from iqlkit.envs.pointmaze import TASKS, make_env, success_rate
    from iqlkit.session import quiet_warnings

    torch.set_num_threads(1)  # in a worker process as in the notebook's (iqlkit.session.start, without its banner)
    quiet_warnings()
    begin = time.perf_counter()
    data = load_minari(dataset, terminate_on_success=True, verbose=False)
    at_switch: dict = {}

    def eval_fn(agent) -> dict:
        learner = getattr(agent, "learner", agent)  # a Member of the seeds' IQL, or the IQL of one seed
        if agent.steps == offline_steps and not at_switch:
            at_switch.update(learner.state_dict())
        return success_rate(agent.act, task, eval_episodes, seed=100_000 * (agent.seed or 0) + agent.steps)

    loop = dict(eval_fn=eval_fn, eval_every=eval_every, log_every=log_every, progress=False)
    online = None
    if variant == "offline":
        learner, rows = fit_many(data, config, list(seeds), steps=offline_steps + online_steps, device="cpu", **loop)
    else:
        learner, rows, source = finetune(data, config, partial(make_env, TASKS[task], True), offline_steps,
                                         online_steps, seeds, variant, n_envs, init_state=init_state, **loop)
        n = source.buffer.n_offline
        views = [source.buffer.view(k) for k in range(len(seeds))]
        online = [{"xy": v.observations[n:, :2].cpu().numpy(), "terminal": v.terminals[n:].cpu().numpy()}
                  for v in views]
    return {"rows": rows, "switch": at_switch or init_state, "end": learner.state_dict(), "online": online,
            "seconds": time.perf_counter() - begin}


def joined(rows: Sequence[dict], offline_rows: Sequence[dict], switch: int) -> list[dict]:
    """A run's log rows behind the offline phase it started from: offline_rows up to step `switch`, then `rows`, when
    `rows` begin after the switch (a fine-tuning run started from the offline-only run); else `rows` as they are."""
    rows = list(rows)
    if rows and rows[0]["step"] <= switch:
        return rows
    return [r for r in offline_rows if r["step"] <= switch] + rows
