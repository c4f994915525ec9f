"""The IQL paper's Table 1 over several datasets: rows are datasets, columns methods, each cell the final score's mean ±
std over seeds, with the paper's number beside it where the dataset is one of the paper's.

Every stack of methods on every dataset (iqlkit.experiments.compare: IQL, one-step and BC as one fit_many stack) is
one task of a backend, so the whole grid shares one progress bar and one pool or Ray cluster. Each stack trains in
its own run folder (storage/<dataset>/<methods>), and out/results.csv gains a finished stack's rows at once
(rewritten atomically, in the grid's order): started again, the table trains only the stacks it has no rows for.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from iqlkit.engine.iql import IQLConfig
from iqlkit.engine.runfolder import RunFolder, read_csv, write_csv
from iqlkit.envs.data import Transitions, flatten_observations
from iqlkit.envs.paper import PAPER, TABLE1
from iqlkit.experiments.backends import Backend, Task, record_failures
from iqlkit.experiments.compare import Run, compare_tasks, run_methods

RESULTS = "results.csv"
@dataclass(frozen=True)
class Benchmark:
    """One row of the table: a dataset's id, its transitions, the IQL config they train with, and its evaluation (a
    PointMaze task name or an env factory, observations through obs_fn, the dataset's reference returns if any)."""

    name: str
    data: Transitions
    config: IQLConfig
    task: str | Callable[[], object]
    obs_fn: Callable = flatten_observations
    references: tuple[float, float] | None = None


def paper_row(dataset_id: str) -> str | None:
    """The row of Table 1 a dataset stands for (D4RL/antmaze/umaze-v1 -> antmaze-umaze, mujoco/hopper/medium-v0 ->
    hopper-medium, and the kit's own ids alike), or None."""
    from iqlkit.envs.antmaze import dataset_name

    name = dataset_id.lower()
    if "antmaze" in name:
        try:
            return f"antmaze-{dataset_name(dataset_id)}"
        except ValueError:
            return None
    env = next((e for e in ("halfcheetah", "hopper", "walker2d") if e in name), None)
    mode = next((m for m in ("medium-expert", "medium-replay", "medium") if m in name), None)
    return f"{env}-{mode}" if env and mode else None


def read_rows(out: str | Path) -> list[dict]:
    """The rows of a table folder's results.csv (numbers as numbers, scores a dataset has not left out); [] when
    there is none."""
    path = Path(out) / RESULTS
    if not path.exists():
        return []
    return [{"dataset": r["dataset"], "method": r["method"], "seed": int(r["seed"]), "step": int(r["step"]),
             **{k: float(v) for k, v in r.items() if k not in ("dataset", "method", "seed", "step") and v != ""}}
            for r in read_csv(path)]


def _ordered(rows: list[dict], datasets: Sequence[str], methods: Sequence[str]) -> list[dict]:
    """Rows in the grid's order: dataset, method (as given), seed, step."""
    d, m = {n: i for i, n in enumerate(datasets)}, {n: i for i, n in enumerate(methods)}
    return sorted(rows, key=lambda r: (d.get(r["dataset"], -1), m.get(r["method"], -1), r["seed"], r["step"]))


def paper_table(benchmarks: Sequence[Benchmark], methods: Sequence[str], seeds: Sequence[int], out: str | Path,
                storage: str | Path | None = None, eval_episodes: int = 50, n_evals: int = 2, device: str = "cpu",
                n_envs: int = 10, backend: Backend | None = None, tensorboard: bool = False,
                progress: bool = True) -> list[dict]:
    """Every method x seed on every benchmark; writes out/results.csv (one row per evaluation: dataset, method, seed,
    step, scores), out/table.md and out/table.csv, and out/failed.csv when stacks failed (the others go on).

    The stacks train on `backend` (default: a local pool, one process per core) in run folders under `storage` (a
    folder every node sees; default: out). Resumable: a stack with rows in results.csv is not trained again. One
    table at a time in `out` (a lock). Returns the rows of results.csv.
    """
    backend, out = backend or Backend(), Path(out)
    names, methods, seeds = [b.name for b in benchmarks], tuple(methods), tuple(seeds)
    if len(set(names)) != len(names):
        raise ValueError(f"each dataset once, please: {names}")
    tasks, dataset_of = [], {}
    for b in benchmarks:  # every stack built (methods checked) before any task starts
        for t in compare_tasks(b.data, b.config, b.task, methods, seeds, eval_episodes, n_evals, device, n_envs,
                               b.obs_fn, str(Path(storage or out) / b.name.replace("/", "_")), b.references,
                               tensorboard, False):
            tasks.append(Task(t.args, t.runs, f"{b.name}: {t.label}"))
            dataset_of[id(tasks[-1])] = b.name
    folder = RunFolder(out)
    folder.lock()
    try:
        rows = read_rows(out)
        final = {b.name: b.config.max_steps for b in benchmarks}
        have = {(r["dataset"], r["method"], r["seed"]) for r in rows if r["step"] == final.get(r["dataset"])}
        todo = [t for t in tasks if any((dataset_of[id(t)], m, s) not in have for m in t.args[0] for s in seeds)]

        def finish(task: Task, runs: list[Run]) -> None:
            name, redone = dataset_of[id(task)], set(task.args[0])
            rows[:] = [r for r in rows if r["dataset"] != name or r["method"] not in redone]  # never a row twice
            rows.extend({"dataset": name, "method": run.method, "seed": run.seed, **row} for run in runs
                        for row in run.rows)
            write_csv(out / RESULTS, _ordered(rows, names, methods))

        failures = backend.run(run_methods, todo, finish, desc=f"table {sum(t.runs for t in todo)} runs",
                               progress=progress)
        failed = [{"dataset": dataset_of[id(f.task)], "method": m, "seed": s, "reason": f.reason}
                  for f in failures for m in f.task.args[0] for s in seeds]
        record_failures(out, failed, sum(t.runs for t in todo), "table")
        rows = _ordered(rows, names, methods)
        cells = layout(rows, names, methods)
        (out / "table.md").write_text(format_table(cells, methods) + "\n")
        write_csv(out / "table.csv", [_csv_row(c, methods) for c in cells])
    finally:
        folder.release()
    return rows


def layout(rows: list[dict], datasets: Sequence[str], methods: Sequence[str]) -> list[dict]:
    """Table 1's layout: per dataset its paper row, the metric, and per method (mean, std, n seeds, paper number or
    None) of the final evaluations, or None without runs. The metric is the normalised score where the dataset's
    rows have one, else the success rate in %."""
    cells = []
    for name in datasets:
        mine = [r for r in rows if r["dataset"] == name]
        normalised = any(not math.isnan(r.get("normalized_score", math.nan)) for r in mine)
        metric = "normalized_score" if normalised else "success_rate"
        key = paper_row(name)
        cell = {"dataset": name, "paper_row": key, "metric": metric}
        for method in methods:
            evals = sorted((r for r in mine if r["method"] == method), key=lambda r: r["step"])
            last = {r["seed"]: r[metric] for r in evals}  # each seed's final evaluation
            scores = np.array(list(last.values())) * (1.0 if normalised else 100.0)
            paper = TABLE1.get(key or "", {}).get(method)
            cell[method] = (float(scores.mean()), float(scores.std()), len(scores), paper) if len(scores) else None
        cells.append(cell)
    return cells


def _csv_row(cell: dict, methods: Sequence[str]) -> dict:
    """A dataset's cells as one CSV row: <method>_mean, _std, _n, _paper per method (empty where missing)."""
    row = {k: cell[k] for k in ("dataset", "paper_row", "metric")}
    for method in methods:
        row.update(zip((f"{method}_{k}" for k in ("mean", "std", "n", "paper")), cell[method] or (None, None, 0, None)))
    return row


def format_table(cells: list[dict], methods: Sequence[str]) -> str:
    """The table as Markdown: mean ± std (n seeds) per cell, the paper's number in brackets, and what was measured."""
    lines = ["| dataset | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for c in cells:
        texts = []
        for method in methods:
            if c[method] is None:
                texts.append("-")
                continue
            mean, std, n, paper = c[method]
            texts.append(f"{mean:.1f} ± {std:.1f} (n={n})" + ("" if paper is None else f" [paper {paper:.1f}]"))
        label = c["dataset"] + (f" ({c['paper_row']})" if c["paper_row"] else "")
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    lines.append("")
    lines.append("Cells: the final evaluation's score, mean ± std over seeds; the normalised score where the dataset "
                 "has reference returns, else the success rate in %. [paper x]: " + PAPER + ".")
    return "\n".join(lines)
