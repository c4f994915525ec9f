"""Figures for offline-to-online fine-tuning (notebook 08): success over the offline and the online phase, the share of
online rows in the batches, where the buffer's rows lie in the maze, rollouts of a policy before and after, how often
the new data reach the goal, and how far the success rate falls between evaluations."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from iqlkit.envs.maze import GOAL_RADIUS, MazeTask
from iqlkit.experiments.finetuning import series
from iqlkit.plots.maze import CMAP, draw_maze, maze_extent


def _phases(ax: plt.Axes, switch: int, right: float) -> None:
    """The offline phase shaded, the switch to online as a dashed line, both in the legend."""
    ax.axvspan(0, switch, color="0.92", zorder=0, label="offline phase")
    ax.axvline(switch, color="0.3", ls="--", lw=1, label=f"switch to online (step {switch:,})")
    ax.set_xlim(0, right)


def _color(colors: dict[str, str] | None, name: str, k: int):
    """The label's colour from `colors`, else the k-th of tab10."""
    return (colors or {}).get(name, plt.get_cmap("tab10")(k % 10))


def phase_curves(curves: dict[str, Sequence[Sequence[dict]]], switch: int, key: str = "success_rate",
                 title: str = "success over the offline and the online phase",
                 colors: dict[str, str] | None = None) -> Figure:
    """Per label: a thin line per seed and a thick mean of `key` against update step; the offline phase shaded (after
    the switch one update = one env step); colors: label -> colour (default: tab10 in order)."""
    fig, ax = plt.subplots(figsize=(8, 4.4))
    right = 0.0
    for k, (name, runs) in enumerate(curves.items()):
        color = _color(colors, name, k)
        steps, values = series(runs, key)
        for seed_values in values:
            ax.plot(steps, seed_values, color=color, lw=0.8, alpha=0.4)
        ax.plot(steps, values.mean(0), color=color, lw=2.4, marker="o", ms=3.5, label=f"{name} (mean of {len(runs)})")
        right = max(right, steps.max())
    _phases(ax, switch, right)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("update step (fine-tuning runs: one env step per update after the switch)")
    ax.set_ylabel(f"{key.replace('_', ' ')} (thin: seeds)")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def online_share_figure(curves: dict[str, Sequence[Sequence[dict]]], switch: int, n_offline: int,
                        colors: dict[str, str] | None = None) -> Figure:
    """The measured share of online rows in the batches (mean over seeds, per log interval) against update step, and
    dashed the share uniform sampling implies with the offline data kept, t / (n_offline + t) after t env steps."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    right = 0.0
    for k, (name, runs) in enumerate(curves.items()):
        steps, share = series(runs, "online_share")
        ax.plot(steps, share.mean(0), color=_color(colors, name, k), lw=2, label=f"{name}: measured")
        right = max(right, steps.max())
    t = np.linspace(0, right - switch, 200)
    ax.plot(switch + t, t / (n_offline + t), color="black", ls=":", lw=1.5,
            label=f"t / ({n_offline:,} + t): offline data kept")
    _phases(ax, switch, right)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("update step")
    ax.set_ylabel("share of online rows in a batch")
    ax.set_title("How the data mix changes: online transitions in the minibatches", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    return fig


def visit_maps(task: MazeTask, groups: dict[str, np.ndarray], title: str = "") -> Figure:
    """One panel per group of x-y points [n, 2]: the share of its points in each maze cell (log colours, one scale)."""
    shares = []
    for xy in groups.values():
        cells = task.xy_cell(xy)
        counts = np.zeros(task.shape)
        np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
        share = counts / max(len(xy), 1)
        shares.append(np.where(task.walls() == 1, np.nan, np.where(share > 0, share, np.nan)))
    finite = np.concatenate([s[np.isfinite(s)] for s in shares])
    norm = LogNorm(finite.min(), max(finite.max(), finite.min() * 1.01)) if finite.size else LogNorm(1e-3, 1)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups) + 1, 4.4), squeeze=False, layout="constrained")
    image = None
    for ax, (name, xy), share in zip(axes[0], groups.items(), shares):
        image = ax.imshow(share, extent=maze_extent(task), origin="upper", norm=norm,
                          cmap=plt.get_cmap(CMAP).with_extremes(bad="white"), interpolation="nearest")
        draw_maze(ax, task)
        ax.set_title(f"{name}\n({len(xy):,} transitions)", fontsize=10)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label="share of the transitions in the cell (white: none)")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def path_success(task: MazeTask, paths: Sequence[np.ndarray]) -> np.ndarray:
    """Per x-y path: did it end within GOAL_RADIUS of the centre of the task's goal cell (the env's success)."""
    goal = task.cell_xy(task.goal)
    return np.array([np.linalg.norm(xy[-1] - goal) <= GOAL_RADIUS for xy in paths], dtype=bool)


def rollouts_figure(task: MazeTask, paths: dict[str, Sequence[np.ndarray]], ncols: int | None = None) -> Figure:
    """One panel per policy (rows of ncols, default all in one row): its rollouts' x-y paths from S (dot: the start,
    x: the end), titled with how many reached G (path_success)."""
    ncols = ncols or len(paths)
    nrows = -(-len(paths) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(paths):]:
        ax.set_visible(False)
    for ax, (name, runs) in zip(axes.flat, paths.items()):
        draw_maze(ax, task)
        for k, xy in enumerate(runs):
            color = plt.get_cmap("tab10")(k % 10)
            ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1.1, alpha=0.85)
            ax.plot(*xy[0], "o", color=color, ms=4)
            ax.plot(*xy[-1], "x", color=color, ms=7, mew=2)
        ax.set_title(f"{name}\n{int(path_success(task, runs).sum())} of {len(runs)} rollouts reach G", fontsize=10)
    fig.tight_layout()
    return fig


def goal_rate_figure(rates: dict[str, np.ndarray], window: int, offline_rate: float,
                     colors: dict[str, str] | None = None) -> Figure:
    """Goal-reaching transitions per 1,000 in successive windows of `window` online steps ([seeds, windows] per
    label: thin lines per seed, thick mean), against the offline data's rate (dashed)."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for k, (name, per_seed) in enumerate(rates.items()):
        color = _color(colors, name, k)
        x = (np.arange(per_seed.shape[1]) + 0.5) * window
        for seed_rates in per_seed:
            ax.plot(x, seed_rates, color=color, lw=0.8, alpha=0.4)
        ax.plot(x, per_seed.mean(0), color=color, lw=2.2, marker="o", ms=4, label=f"{name} (mean of {len(per_seed)})")
    ax.axhline(offline_rate, color="black", ls="--", lw=1.2, label=f"offline data: {offline_rate:.2f}")
    ax.set_xlabel("online steps since the switch (window centres)")
    ax.set_ylabel("goal reaches per 1,000 transitions")
    ax.set_title("How often the new data reaches the goal, against the offline data", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def drops_figure(drops: dict[str, np.ndarray], title: str = "", colors: dict[str, str] | None = None) -> Figure:
    """Per label: a bar at the mean over seeds of the largest fall of the success rate between two evaluations
    (iqlkit.experiments.finetuning.largest_drop), a dot per seed, the mean written above the bar."""
    fig, ax = plt.subplots(figsize=(1.9 * len(drops) + 2, 4.2))
    rng = np.random.default_rng(0)
    for k, (name, per_seed) in enumerate(drops.items()):
        per_seed = np.asarray(per_seed, dtype=float)
        ax.bar(k, per_seed.mean(), color=_color(colors, name, k), alpha=0.6, width=0.6, label=name)
        ax.plot(k + rng.uniform(-0.12, 0.12, len(per_seed)), per_seed, "o", color="black", ms=5)
        ax.text(k, per_seed.mean() + 0.02, f"{per_seed.mean():.2f}", ha="center", va="bottom", fontsize=10)
    ax.set_xticks(range(len(drops)), list(drops), fontsize=9)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("largest fall between two evaluations\n(bar: mean, dots: seeds)")
    ax.set_title(title or "How far the success rate falls from an earlier evaluation", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
