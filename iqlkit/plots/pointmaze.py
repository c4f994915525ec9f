"""Figures for the continuous PointMaze (notebook 04): the maze with the data's hops, V over the maze for several tau
on one colour scale, success rates per method (bars = mean over seeds, dots = seeds), success over training, and the
mean Q and V over training (clipped double Q on vs off)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from iqlkit.envs.data import Transitions
from iqlkit.envs.maze import MazeTask
from iqlkit.plots.maze import CMAP, WALL_COLOR, draw_maze


def episode_paths(data: Transitions, n: int, seed: int = 0) -> list[np.ndarray]:
    """x-y paths [T + 1, 2] (first two observation features) of n episodes of the data, drawn without replacement."""
    ids = data.episode_ids().long().cpu().numpy()
    xy, next_xy = data.observations[:, :2].cpu().numpy(), data.next_observations[:, :2].cpu().numpy()
    chosen = np.random.default_rng(seed).choice(ids[-1] + 1, size=min(n, ids[-1] + 1), replace=False)
    return [np.concatenate([xy[ids == e], next_xy[ids == e][-1:]]) for e in sorted(chosen)]


def episode_spans(data: Transitions, task: MazeTask) -> np.ndarray:
    """Per episode: shortest-path cell moves (BFS) from the cell it starts in to the farthest cell it visits."""
    free = task.free_cells()
    index = {c: k for k, c in enumerate(free)}
    moves = np.array([[dist[b] for b in free] for dist in map(task.distances, free)])  # [cell, cell]
    cells = np.array([index[tuple(c)] for c in task.xy_cell(data.next_observations[:, :2].cpu().numpy())])
    ids = data.episode_ids().long().cpu().numpy()
    begins = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]  # first step of each episode
    starts = np.array([index[tuple(c)] for c in task.xy_cell(data.observations[begins, :2].cpu().numpy())])
    spans = np.zeros(len(starts), dtype=int)
    np.maximum.at(spans, ids, moves[starts[ids], cells])
    return spans


def maze_hops_figure(task: MazeTask, paths: Sequence[np.ndarray], spans: np.ndarray) -> Figure:
    """Three panels: cell moves to G (BFS) per free cell, a few of the data's episodes, and the episodes' spans."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.15]})
    dist = task.distances()
    draw_maze(axes[0], task)
    for cell, d in dist.items():
        if cell not in (task.start, task.goal):
            axes[0].text(*task.cell_xy(cell), str(d), ha="center", va="center", fontsize=9, color="0.3")
    axes[0].set_title(f"{task.name} maze: S -> G takes {dist[task.start]} cell moves\n(numbers: moves to G)",
                      fontsize=10)
    draw_maze(axes[1], task)
    colors = plt.get_cmap("tab10")
    for k, path in enumerate(paths):
        axes[1].plot(path[:, 0], path[:, 1], color=colors(k % 10), lw=1, label="episode")
        axes[1].plot(*path[0], "o", color=colors(k % 10), ms=4)
    axes[1].set_title(f"{len(paths)} episodes of the data (dot = where each starts)", fontsize=10)
    spans = np.asarray(spans, dtype=int)
    counts = np.bincount(spans, minlength=dist[task.start] + 1)
    axes[2].bar(np.arange(len(counts)), counts, color="tab:blue", label="episodes")
    axes[2].axvline(dist[task.start], color="tab:red", ls="--", label=f"S -> G: {dist[task.start]} moves")
    axes[2].set(xlabel="cell moves from an episode's first cell to its farthest cell", ylabel="episodes",
                title=f"no episode joins S and G (longest: {spans.max()} moves)")
    axes[2].title.set_fontsize(10)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def value_maps(task: MazeTask, grids: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], titles: Sequence[str],
               label: str = "V(s) at rest", vlim: tuple[float, float] | None = None) -> Figure:
    """Side-by-side heatmaps of value_grid outputs (xs, ys, V) on one colour scale, walls, S and G on each."""
    if len(grids) != len(titles):
        raise ValueError(f"{len(grids)} grids but {len(titles)} titles: give one title per panel")
    if vlim is None:
        finite = np.concatenate([v[np.isfinite(v)] for _, _, v in grids])
        vlim = float(finite.min()), float(finite.max())
    norm = Normalize(*vlim)
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids) + 1, 4.4), squeeze=False, layout="constrained")
    image = None
    for ax, (xs, ys, V), title in zip(axes[0], grids, titles):
        dx, dy = (xs[1] - xs[0]) / 2, (ys[0] - ys[1]) / 2
        image = ax.imshow(V, extent=(xs[0] - dx, xs[-1] + dx, ys[-1] - dy, ys[0] + dy), origin="upper",
                          cmap=plt.get_cmap(CMAP).with_extremes(bad=WALL_COLOR), norm=norm, interpolation="nearest")
        draw_maze(ax, task)
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label=label)
    return fig


def distance_grid(task: MazeTask) -> np.ndarray:
    """Shortest-path cell moves to the goal for every cell [rows, cols] (BFS), NaN in walls."""
    grid = np.full(task.shape, np.nan)
    for (i, j), d in task.distances().items():
        grid[i, j] = d
    return grid


def value_distance_figure(task: MazeTask, cell_values: dict[str, np.ndarray]) -> Figure:
    """V at each free cell's centre (value_grid, resolution=1) against its cell moves to G: dots, mean per distance."""
    dist = distance_grid(task)
    free = np.isfinite(dist)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, (name, V) in enumerate(cell_values.items()):
        if np.shape(V) != dist.shape:
            raise ValueError(f"{name}: values of shape {np.shape(V)}, the maze has {dist.shape} cells "
                             f"(use value_grid(..., resolution=1))")
        color = plt.get_cmap("tab10")(k)
        d, v = dist[free], np.asarray(V, dtype=float)[free]
        levels = np.unique(d)
        ax.plot(d + 0.08 * (k - (len(cell_values) - 1) / 2), v, "o", color=color, alpha=0.45, ms=4)
        ax.plot(levels, [v[d == level].mean() for level in levels], color=color, lw=2, label=name)
    ax.set_xlabel("cell moves to G (shortest path)")
    ax.set_ylabel("V at the cell centre (dots: cells, line: mean)")
    ax.set_title("Learned V against the distance to the goal")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def success_bars(table: dict[str, np.ndarray], title: str = "final success rate") -> Figure:
    """One bar per method at its mean success rate over seeds, a dot per seed, the mean written above each bar."""
    fig, ax = plt.subplots(figsize=(1.6 * len(table) + 2, 4))
    rng = np.random.default_rng(0)
    for k, (method, rates) in enumerate(table.items()):
        rates = np.asarray(rates, dtype=float)
        ax.bar(k, rates.mean(), color=plt.get_cmap("tab10")(k), alpha=0.6, width=0.6, label=method)
        ax.plot(k + rng.uniform(-0.12, 0.12, len(rates)), rates, "o", color="black", ms=5)
        ax.text(k, rates.mean() + 0.03, f"{rates.mean():.2f}", ha="center", va="bottom", fontsize=10)
    ax.set_xticks(range(len(table)), list(table))
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("success rate (bar: mean, dots: seeds)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def success_curves(curves: dict[str, Sequence[Sequence[dict]]], title: str = "success over training") -> Figure:
    """Per label: a thin line per seed and a thick mean line of success_rate against update step (Run.rows)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, (name, runs) in enumerate(curves.items()):
        color = plt.get_cmap("tab10")(k)
        steps = np.array([float(r["step"]) for r in runs[0]])
        rates = np.array([[float(r["success_rate"]) for r in rows] for rows in runs])
        for seed_rates in rates:
            ax.plot(steps, seed_rates, color=color, lw=0.8, alpha=0.45)
        ax.plot(steps, rates.mean(0), color=color, lw=2.5, marker="o", ms=4, label=f"{name}: mean of {len(runs)}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("update step")
    ax.set_ylabel("success rate (thin: seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def q_v_figure(logs: dict[str, Sequence[dict]], bounds: tuple[float, float] | None = None) -> Figure:
    """Mean Q_target(s, a) and mean V(s) of the batches against update step, one line per run (rows of the fit log).

    bounds: the range true values can take (with r - 1 per step: [-1 / (1 - gamma), 0]), drawn dashed.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, key, what in ((axes[0], "q_mean", "mean Q_target(s, a)"), (axes[1], "v_mean", "mean V(s)")):
        for k, (name, rows) in enumerate(logs.items()):
            ax.plot([float(r["step"]) for r in rows], [float(r[key]) for r in rows], color=plt.get_cmap("tab10")(k),
                    label=name)
        if bounds is not None:
            for b in bounds:
                ax.axhline(b, color="black", ls="--", lw=1)
        ax.set_title(f"{what} over the batch", fontsize=10)
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9, loc="lower left")
    bounds_note = "" if bounds is None else f" (dashed: possible range {bounds[0]:g} to {bounds[1]:g})"
    axes[0].set_ylabel("value" + bounds_note)
    fig.tight_layout()
    return fig
