"""Ablation sweeps: configurations x seeds, trained in stacks where the shapes allow, resumable from disk.

A run is one (config, seed). Runs whose configs differ only in tau, beta, actor dropout or a common learning-rate
factor train together as agents of one IQL (fit_many); other differences (batch size, depth, width) form separate
groups. A group checkpoints while it trains (out/groups/<key>/), and every finished group adds its rows to
results.csv (one row per run and evaluation: config, seed, step, scores; rewritten atomically, in the grid's order),
so an interrupted sweep, started again, resumes the group it was in and trains only the runs that have no final row
yet. The groups train in a local process pool or as Ray tasks (iqlkit.experiments.backends), with the same rows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from iqlkit.engine.iql import IQLConfig, stack_key
from iqlkit.engine.runfolder import CHECKPOINT, PREVIOUS, RunFolder, _number, read_csv, write_csv
from iqlkit.engine.train import TrainOptions, fit_many
from iqlkit.envs.data import Transitions
from iqlkit.experiments.backends import Backend, Task, record_failures

RESULTS = "results.csv"
RECORDED = Path(__file__).parents[1] / "recorded"  # results of full sweeps the kit ran (notebook 07 shows them)

# the reproducibility report's Table 3 (one hyperparameter at a time around the authors' AntMaze settings)
REPORT_GRID: dict[str, tuple] = {
    "tau": (0.5, 0.6, 0.7, 0.8, 0.9, 0.99),
    "beta": (5.0, 10.0, 20.0),
    "dropout": (0.0, 0.1, 0.3, 0.5),
    "batch_size": (256, 512, 1024),
    "depth": (2, 3, 5),
    "lr": (2e-4, 3e-4, 4e-4),
}
AXIS_LABELS = {"tau": "Expectile (tau)", "beta": "Temperature (beta)", "dropout": "Dropout (p)",
               "batch_size": "Batch size (B)", "depth": "Network depth (d)", "lr": "Learning rate (lr)"}


def with_value(base: IQLConfig, axis: str, value: float) -> IQLConfig:
    """base with one hyperparameter set: an IQLConfig field, 'depth' (layers of base's width) or 'lr' (all three)."""
    if axis == "depth":
        return replace(base, hidden=(base.hidden[0],) * int(value))
    if axis == "lr":
        return replace(base, actor_lr=value, critic_lr=value, value_lr=value)
    if axis not in base.to_dict():
        raise ValueError(f"unknown axis {axis!r}: use an IQLConfig field, 'depth' or 'lr'")
    return replace(base, **{axis: type(getattr(base, axis))(value)})


def ablation(base: IQLConfig, grid: dict[str, Sequence] = REPORT_GRID) -> list[tuple[str, float, IQLConfig]]:
    """One-at-a-time ablation (the report's layout): (axis, value, config) for every value of every axis."""
    return [(axis, value, with_value(base, axis, value)) for axis, values in grid.items() for value in values]


def config_id(config: IQLConfig) -> str:
    """A run's config as one canonical JSON string (the key in results.csv)."""
    return json.dumps(config.to_dict(), sort_keys=True)


def stack_groups(configs: Sequence[IQLConfig], steps: int | None = None) -> list[tuple[int, list[IQLConfig]]]:
    """The distinct configs, grouped as they train: (updates, configs) per group of equal stack_key and length."""
    groups: dict[tuple, list[IQLConfig]] = {}
    for c in {config_id(c): c for c in configs}.values():
        groups.setdefault((stack_key(c), steps or c.max_steps), []).append(c)
    return [(n, group) for (_, n), group in groups.items()]


def read_results(out: str | Path) -> list[dict]:
    """The rows of a sweep folder's results.csv, or of a results file (.csv or .csv.gz), numbers as written (int or
    float, so that rewriting them changes no text); [] when there is none."""
    path = Path(out) / RESULTS if Path(out).is_dir() or not Path(out).suffix else Path(out)
    if not path.exists():
        return []
    return [{k: v if k == "config" else _number(v) for k, v in row.items()} for row in read_csv(path)]


def _group_folder(out: Path, jobs: list[tuple[IQLConfig, int]], steps: int) -> Path:
    """Where one stack of runs checkpoints while it trains: out/groups/<hash of its configs, seeds and length>."""
    key = json.dumps([[config_id(c), s] for c, s in jobs] + [steps], sort_keys=True)
    return out / "groups" / hashlib.sha1(key.encode()).hexdigest()[:12]


def _train_group(data: Transitions, jobs: list[tuple[IQLConfig, int]], options: TrainOptions,
                 threads: int | None) -> list[dict]:
    """Train one stack of runs with fit_many, checkpointing in options.log_dir (an interrupted group resumes there);
    rows at each evaluation (config, seed, step, stats, scores), each labelled by the agent that produced it."""
    if threads:
        torch.set_num_threads(threads)
    configs, seeds = [c for c, _ in jobs], [s for _, s in jobs]
    learner, rows = fit_many(data, configs, seeds, **vars(options))
    for name in (CHECKPOINT, PREVIOUS):  # the rows are what a sweep keeps; a group's weights would fill the disk
        (Path(options.log_dir) / name).unlink(missing_ok=True)
    return [{"config": config_id(learner.configs[r["agent"]]), "seed": learner.seeds[r["agent"]], "steps": options.steps,
             **{k: v for k, v in r.items() if k not in ("agent", "seed", "tau", "beta")}} for r in rows]


def _ordered(rows: list[dict], configs: Sequence[IQLConfig]) -> list[dict]:
    """Rows in the grid's order (config as given, seed, step), whatever order the groups finished in; rows of
    configs outside the grid first, as they were."""
    rank = {config_id(c): i for i, c in enumerate(configs)}
    return sorted(rows, key=lambda r: (rank.get(r["config"], -1), int(r["seed"]), float(r["step"])))


def sweep(data: Transitions, configs: Sequence[IQLConfig], seeds: Sequence[int], out: str | Path,
          eval_fn: Callable[[Callable], dict], steps: int | None = None, n_evals: int = 3, device: str = "cpu",
          max_agents: int = 48, workers: int = 1, log_every: int | None = None, probe: Callable | None = None,
          progress: bool = True, backend: Backend | None = None, storage: str | Path | None = None,
          tensorboard: bool = False) -> list[dict]:
    """Train every config with every seed (stacked where possible) and evaluate n_evals times; resumable.

    eval_fn(act) -> dict of scores (picklable unless the groups train in this process); act maps a batch of
    observations to actions. log_every (default: at the evaluations) adds rows of training statistics and
    probe(stack) diagnostics. backend: where the groups train (default: a local pool of `workers` processes);
    storage: where their run folders go, a folder every node sees (default: out); tensorboard: event files of every
    run beside its group's log.csv. A run that fails is listed in out/failed.csv with the reason and the others go
    on: when the NaN guard fires, the rest of its stack trains again without the agents it names (from scratch);
    another error fails the whole stack. One sweep at a time in `out` (a lock).
    Returns every row of out/results.csv, earlier runs included, in the grid's order.
    """
    from tqdm.auto import tqdm

    if n_evals < 1 or max_agents < 1 or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"a sweep needs n_evals >= 1, max_agents >= 1 and distinct seeds; got {n_evals}, "
                         f"{max_agents} and {list(seeds)}")
    backend = backend or Backend(workers=workers)
    out = Path(out)
    folder = RunFolder(out)
    folder.lock()
    try:
        rows = read_results(out)
        groups = stack_groups(configs, steps)
        n_steps = {config_id(c): n for n, group in groups for c in group}
        done = {(r["config"], int(r["seed"])) for r in rows if r["step"] == r["steps"] == n_steps.get(r["config"])}
        chunks = []
        for n, group in groups:
            jobs = [(c, s) for c in group for s in seeds if (config_id(c), s) not in done]
            chunks += [(jobs[i: i + max_agents], n) for i in range(0, len(jobs), max_agents)]
        todo = sum(len(jobs) for jobs, _ in chunks)
        if len(n_steps) * len(seeds) > todo:
            tqdm.write(f"{len(n_steps) * len(seeds) - todo} runs already in {out / RESULTS}: skipped")

        def tasks_for(chunks: list[tuple[list, int]]) -> list[Task]:
            """A task per chunk, its options built here: a bad option fails before any group starts."""
            here = backend.in_process(len(chunks))
            shipped = data if here else data.to("cpu")  # one copy for all: Ray stores it once
            return [Task((shipped, jobs, TrainOptions(
                steps=n, device=device, eval_fn=eval_fn, eval_every=max(n // n_evals, 1),
                log_every=log_every or max(n // n_evals, 1), probe=probe, progress=False, tensorboard=tensorboard,
                log_dir=_group_folder(Path(storage or out), jobs, n)), backend.threads(len(chunks))), len(jobs),
                f"{len(jobs)} runs of {n} updates") for jobs, n in chunks]

        def finish(task: Task, new: list[dict]) -> None:
            rows.extend(new)
            write_csv(out / RESULTS, _ordered(rows, configs))

        tasks, failed = tasks_for(chunks), []
        while tasks:  # a stack whose NaN guard fired trains again without the agents the guard names
            again = []
            for f in backend.run(_train_group, tasks, finish, desc=f"sweep {sum(t.runs for t in tasks)} runs",
                                 progress=progress):
                jobs = f.task.args[1]
                bad = set(getattr(f.error, "agents", None) or range(len(jobs)))
                failed += [{"config": config_id(c), "seed": s, "reason": f.reason} for k, (c, s) in enumerate(jobs)
                           if k in bad]
                if len(bad) < len(jobs):
                    again.append(([job for k, job in enumerate(jobs) if k not in bad], f.task.args[2].steps))
            tasks = tasks_for(again)
        record_failures(out, failed, todo, "sweep")
    finally:
        folder.release()
    return _ordered(rows, configs)


def final_scores(rows: list[dict], config: IQLConfig, metric: str = "success_rate") -> np.ndarray:
    """The metric at each seed's last evaluation of `config`, one value per seed (sorted by seed)."""
    key, last = config_id(config), {}
    for r in rows:
        if r["config"] == key and r["step"] == r["steps"]:
            last[int(r["seed"])] = r[metric]
    return np.array([last[s] for s in sorted(last)])


def ablation_table(results: dict[str, list[dict]], entries: list[tuple[str, float, IQLConfig]],
                   metric: str = "success_rate", scale: float = 100.0) -> list[dict]:
    """Table 3's layout: one row per (axis, value), one column per dataset, cells (mean, std, n) over seeds x scale."""
    table = []
    for axis, value, config in entries:
        row = {"axis": axis, "value": value}
        for name, rows in results.items():
            scores = final_scores(rows, config, metric) * scale
            row[name] = (float(scores.mean()), float(scores.std()), len(scores)) if len(scores) else None
        table.append(row)
    return table


def format_table(table: list[dict]) -> str:
    """The table as Markdown, mean +- std (n seeds), the best mean of each axis and dataset in bold."""
    datasets = [k for k in table[0] if k not in ("axis", "value")]
    best = {(r["axis"], d): max((x[d][0] for x in table if x["axis"] == r["axis"] and x[d]), default=None)
            for r in table for d in datasets}
    lines = ["| hyperparameter | value | " + " | ".join(datasets) + " |", "|---|---|" + "---|" * len(datasets)]
    previous = None
    for r in table:
        cells = []
        for d in datasets:
            if r[d] is None:
                cells.append("-")
                continue
            mean, std, n = r[d]
            text = f"{mean:.1f} ± {std:.1f}"
            cells.append(f"**{text}**" if mean == best[(r["axis"], d)] else text)
        label = AXIS_LABELS.get(r["axis"], r["axis"]) if r["axis"] != previous else ""
        previous = r["axis"]
        lines.append(f"| {label} | {r['value']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
