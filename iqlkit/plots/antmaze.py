"""Figures for AntMaze (notebook 06): the mazes from above with the evaluation start 'r' and goal 'g', the data's
maze next to the evaluation maze, paths of episodes on them, rendered frames of the ant, success over training per
seed, and final success rates next to the paper's Table 1 (also as a markdown table)."""
from __future__ import annotations

from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from iqlkit.envs.antmaze import CELL, PAPER_SCORES, TASKS, G, R, make_eval_env
from iqlkit.envs.data import flatten_observations
from iqlkit.envs.maze import MazeTask, first_success
from iqlkit.plots.maze import cell_square, draw_maze

MARKS = (R, G)  # the letters of the start and goal: gymnasium-robotics' marks 'r' and 'g', as notebook 06 names them


def eval_task(name: str) -> MazeTask:
    """D4RL's evaluation task of a maze or dataset name ('umaze', 'medium-play', ...): iqlkit.envs.antmaze.TASKS."""
    return TASKS[name.split("-")[0]]


def find_cell(maze_map: Sequence[Sequence], mark: str) -> tuple[int, int]:
    """(row, col) of the first cell marked `mark` ('r' or 'g')."""
    return next((i, j) for i, row in enumerate(maze_map) for j, c in enumerate(row) if c == mark)


def maze_task(maze_map: Sequence[Sequence]) -> MazeTask:
    """A gymnasium-robotics AntMaze map (1 = wall; 0, 'r', 'g', 'c' = floor) as a MazeTask of 4 x 4 cells; a map
    without exactly one 'r' and one 'g' (a data map) has no fixed start and goal: its first floor cell is both."""
    if marked(maze_map):
        return MazeTask.from_marked("", maze_map, CELL)
    plain = tuple(tuple(int(c == 1) for c in row) for row in maze_map)
    floor = find_cell(plain, 0)
    return MazeTask("", plain, floor, floor, CELL)


def marked(maze_map: Sequence[Sequence]) -> bool:
    """Whether a map marks exactly one start 'r' and one goal 'g' cell (an evaluation map)."""
    cells = [c for row in maze_map for c in row]
    return cells.count(R) == 1 and cells.count(G) == 1


def cell_xy(maze_map: Sequence[Sequence], cell: tuple[int, int]) -> np.ndarray:
    """World x-y of a (row, col) cell centre of a raw map (MazeTask.cell_xy, cells of 4 x 4)."""
    return maze_task(maze_map).cell_xy(cell)


def draw_map(ax: Axes, maze_map: Sequence[Sequence]) -> None:
    """plots.maze.draw_maze of a raw map: its start 'r' and goal 'g' marked if it has them."""
    draw_maze(ax, maze_task(maze_map), MARKS if marked(maze_map) else None)


def layouts_figure(names: Sequence[str] = ("umaze", "medium", "large")) -> Figure:
    """The evaluation mazes side by side, drawn to the same scale (cells of 4 x 4)."""
    widths = [eval_task(n).shape[1] for n in names]
    height = max(eval_task(n).shape[0] for n in names)
    fig, axes = plt.subplots(1, len(names), figsize=(0.45 * sum(widths) + 1.2 * len(names), 0.45 * height + 1.4),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    for ax, name in zip(axes[0], names):
        task = eval_task(name)
        draw_maze(ax, task, MARKS)
        moves = task.distances()[task.start]
        ax.set_title(f"{name}: {task.shape[0]} x {task.shape[1]} cells,\n'r' to 'g': {moves} cell moves "
                     f"({moves * task.cell_size:g} units)", fontsize=10)
    axes[0][0].legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return fig


def dataset_paths(dataset, n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """n random episodes: x-y paths (`achieved_goal`, [T + 1, 2]), goals [n, 2] and first-success steps [n] (-1: none).

    Path point t + 1 is where step t ends, so a first success at step t is drawn at path[t + 1].
    """
    ids = np.sort(np.random.default_rng(seed).choice(dataset.total_episodes, min(n, dataset.total_episodes),
                                                     replace=False))
    episodes = list(dataset.iterate_episodes(episode_indices=ids.tolist()))
    firsts = [first_success(ep.rewards) for ep in episodes]
    return ([np.asarray(ep.observations["achieved_goal"]) for ep in episodes],
            np.array([ep.observations["desired_goal"][0] for ep in episodes]), np.array(firsts))


def rollout_paths(act: Callable[[np.ndarray], np.ndarray], make_env: Callable[[], object], n_episodes: int = 1,
                  seed: int = 0, obs_fn: Callable = flatten_observations) -> list[np.ndarray]:
    """x-y path (`achieved_goal`, [T + 1, 2]) of each of n_episodes run with act(batch of flat obs) in one env."""
    env, paths = make_env(), []
    try:
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed + episode)
            xy, done = [obs["achieved_goal"]], False
            while not done:
                action = act(obs_fn({k: np.asarray(v)[None] for k, v in obs.items()}))[0]
                obs, _, terminated, truncated, _ = env.step(action)
                xy.append(obs["achieved_goal"])
                done = terminated or truncated
            paths.append(np.array(xy))
    finally:
        env.close()
    return paths


def maze_figure(maze_map: Sequence[Sequence], paths: Sequence[np.ndarray] = (), goals: np.ndarray | None = None,
                firsts: Sequence[int] | None = None, labels: Sequence[str] | None = None, title: str = "") -> Figure:
    """One maze with x-y paths: dot = first point, X = the path's goal, square = its first success (firsts[k] >= 0)."""
    fig, ax = plt.subplots(figsize=(5.4, 5.4))
    draw_map(ax, maze_map)
    colors = plt.get_cmap("tab10")
    for k, path in enumerate(paths):
        ax.plot(path[:, 0], path[:, 1], color=colors(k % 10), lw=1.2, label=None if labels is None else labels[k])
        ax.plot(*path[0], "o", color=colors(k % 10), ms=5)
        if goals is not None:
            ax.plot(*goals[k], "X", color=colors(k % 10), ms=9, mec="black")
        if firsts is not None and firsts[k] >= 0:
            ax.plot(*path[firsts[k] + 1], "s", color=colors(k % 10), ms=9, mec="black", zorder=6,
                    label="first success: cut here" if k == int(np.argmax(np.asarray(firsts) >= 0)) else None)
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return fig


def dataset_maps(dataset) -> tuple[list[list], list[list]]:
    """The maze maps a Minari AntMaze dataset was recorded in and is evaluated in (from its two env specs)."""
    maps = []
    for eval_env in (False, True):
        env = dataset.recover_environment(eval_env=eval_env)
        maps.append(env.unwrapped.maze.maze_map)
        env.close()
    return maps[0], maps[1]


def data_vs_eval_figure(data_map: Sequence[Sequence], eval_map: Sequence[Sequence], xy: np.ndarray) -> Figure:
    """The maze the data was recorded in (with the visited x-y) next to the evaluation maze; differing walls hatched."""
    differ = maze_task(data_map).walls() != maze_task(eval_map).walls()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, maze_map, title in ((axes[0], data_map, f"the data's maze: {len(xy):,} visited x-y"),
                                (axes[1], eval_map, "the dataset's evaluation maze ('r' to 'g')")):
        draw_map(ax, maze_map)
        for k, cell in enumerate(np.argwhere(differ)):
            ax.add_patch(cell_square(maze_task(maze_map), cell, fill=False, hatch="//", ec="tab:orange", lw=1.5,
                                     zorder=6, label="walls differ" if k == 0 else None))
        ax.set_title(title, fontsize=10)
    axes[0].hist2d(xy[:, 0], xy[:, 1], bins=60, cmap="viridis", cmin=1, zorder=4, alpha=0.85)
    verdict = "the same walls" if not differ.any() else f"{int(differ.sum())} cells differ (hatched)"
    fig.suptitle(f"data maze vs the eval env's maze: {verdict}")
    for ax in axes:
        ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return fig


def render_views(name: str, seed: int = 0, size: int = 360) -> dict[str, np.ndarray]:
    """Two RGB frames of the evaluation env after reset: the maze from above at 60 degrees, and the ant close up.

    Needs an offscreen OpenGL: set MUJOCO_GL=egl (or osmesa) before mujoco is first imported.
    """
    env = make_eval_env(name, render_mode="rgb_array", width=size, height=size)
    renderer = env.unwrapped.ant_env.mujoco_renderer
    extent = CELL * max(eval_task(name).shape)  # the maze's larger side
    renderer.default_cam_config = {"type": 0, "trackbodyid": -1, "lookat": np.array([0.0, -0.05 * extent, 0.0]),
                                   "distance": 1.3 * extent, "elevation": -60.0, "azimuth": 90.0}
    try:
        obs, _ = env.reset(seed=seed)
        views = {f"{name} from above, the ant at 'r'": env.render()}
        cam = renderer.viewer.cam
        cam.lookat[:] = [*obs["achieved_goal"], 0.5]
        cam.distance, cam.elevation, cam.azimuth = 4.0, -60.0, 180.0
        views["the ant: 4 legs, 8 joints (the actions)"] = env.render()
    finally:
        env.close()
    return views


def frames_figure(frames: dict[str, np.ndarray]) -> Figure:
    """Rendered frames side by side, titled."""
    fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 4.4), squeeze=False)
    for ax, (title, frame) in zip(axes[0], frames.items()):
        ax.imshow(frame)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


def success_by_agent(rows: Sequence[dict], key: str = "success_rate") -> tuple[np.ndarray, np.ndarray, list]:
    """From fit_many's rows: evaluation steps [T], values [S, T] (one row per agent) and the agents' seeds."""
    agents = sorted({r["agent"] for r in rows})
    per_agent = [[(r["step"], r[key]) for r in rows if r["agent"] == a and key in r] for a in agents]
    steps = np.array([s for s, _ in per_agent[0]], dtype=float)
    seeds = [next(r["seed"] for r in rows if r["agent"] == a) for a in agents]
    return steps, np.array([[v for _, v in pairs] for pairs in per_agent], dtype=float), seeds


def success_curves(rows: Sequence[dict], paper: float | None = None, title: str = "success over training") -> Figure:
    """Success rate (%) against update step: a thin line per seed, the mean and a mean +- std band over seeds."""
    steps, rates, seeds = success_by_agent(rows)
    rates = 100 * rates
    mean, std = rates.mean(0), rates.std(0)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for seed, seed_rates in zip(seeds, rates):
        ax.plot(steps, seed_rates, lw=0.9, alpha=0.6, marker=".", label=f"seed {seed}")
    ax.fill_between(steps, mean - std, mean + std, color="black", alpha=0.12, label="mean +- std")
    ax.plot(steps, mean, color="black", lw=2.5, marker="o", ms=4, label=f"mean of {len(seeds)} seeds")
    if paper is not None:
        ax.axhline(paper, color="tab:red", ls="--", label=f"IQL paper, Table 1: {paper:.1f}")
    ax.set(ylim=(-3, 103), xlabel="update step", ylabel="success rate (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def final_success(rows: Sequence[dict], key: str = "success_rate") -> np.ndarray:
    """Each agent's value of `key` at its last evaluation: [S]."""
    return success_by_agent(rows, key)[1][:, -1]


def paper_comparison(ours: dict[str, Sequence[float]], label: str = "this run", paper: dict[str, float] = PAPER_SCORES,
                     title: str = "final success rate vs the IQL paper") -> Figure:
    """Per dataset: the paper's Table 1 score and ours (success rate x 100: bar = mean, line = std, dots = seeds)."""
    names = list(paper)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 4.4))
    ax.bar(x - 0.2, [paper[n] for n in names], width=0.38, color="0.6", label="IQL paper, Table 1 (D4RL v0)")
    for k, name in enumerate(names):
        if name not in ours:
            ax.text(k + 0.2, 2, "not run", ha="center", va="bottom", rotation=90, fontsize=9, color="0.4")
            continue
        rates = 100 * np.asarray(ours[name], dtype=float)
        ax.bar(k + 0.2, rates.mean(), width=0.38, yerr=rates.std(), capsize=4, color="tab:blue",
               label=label if name == next(n for n in names if n in ours) else None)
        ax.plot(np.full(len(rates), k + 0.2), rates, "o", color="black", ms=4)
        ax.text(k + 0.2, rates.mean() + rates.std() + 2, f"{rates.mean():.1f}", ha="center", fontsize=9)
    for k, name in enumerate(names):
        ax.text(k - 0.2, paper[name] + 2, f"{paper[name]:.1f}", ha="center", fontsize=9)
    ax.set_xticks(x, names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set(ylim=(0, 110), ylabel="success rate (%) / normalised score", title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    return fig


def results_markdown(ours: dict[str, Sequence[float]], setting: str, paper: dict[str, float] = PAPER_SCORES) -> str:
    """A markdown table: per dataset the paper's score and ours as mean +- std (min to max) of 100 x success rate."""
    lines = [f"| dataset | IQL paper, Table 1 | this run: {setting} |", "| --- | --- | --- |"]
    for name, score in paper.items():
        if name in ours:
            r = 100 * np.asarray(ours[name], dtype=float)
            cell = f"{r.mean():.1f} +- {r.std():.1f} ({len(r)} seeds, {r.min():.0f} to {r.max():.0f})"
        else:
            cell = "not run"
        lines.append(f"| {name} | {score:.1f} | {cell} |")
    return "\n".join(lines)
