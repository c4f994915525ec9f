"""The dataset inspector: what is in an offline dataset before any learning (returns, lengths, rewards, ends, states)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iqlkit.envs.maze import MazeTask, first_success


def episode_table(dataset) -> dict[str, np.ndarray]:
    """Per-episode length, return, terminated, truncated and first-success step (-1: none) of a Minari dataset."""
    rows = []
    for ep in dataset.iterate_episodes():
        rewards = np.asarray(ep.rewards, dtype=float)
        rows.append((len(rewards), rewards.sum(), bool(np.any(ep.terminations)), bool(np.any(ep.truncations)),
                     first_success(rewards)))
    length, ret, term, trunc, first = (np.array(c) for c in zip(*rows))
    return {"length": length, "return": ret, "terminated": term, "truncated": trunc, "first_success": first}


def positions(dataset, max_points: int = 200_000) -> np.ndarray:
    """x-y positions of the agent (`achieved_goal` of dict observations, else the first two features)."""
    points = []
    for ep in dataset.iterate_episodes():
        obs = ep.observations
        points.append(np.asarray(obs["achieved_goal"] if isinstance(obs, dict) else obs[:, :2])[:-1, :2])
        if sum(len(p) for p in points) >= max_points:
            break
    return np.concatenate(points)[:max_points]


def data_summary(dataset, task: MazeTask | None = None) -> dict[str, float]:
    """Episodes, steps, the share of episodes that reach their goal, the share of steps up to each first success
    (1 - the sitting-at-goal tail: what terminate_on_success keeps) and, given the maze, the share of its floor cells
    the data visits."""
    table = episode_table(dataset)
    success = table["first_success"] >= 0
    steps = int(table["length"].sum())
    tail = int(np.where(success, table["length"] - table["first_success"] - 1, 0).sum())
    summary = {"episodes": len(table["length"]), "steps": steps, "mean_length": float(table["length"].mean()),
               "reach_goal": float(success.mean()), "before_goal": (steps - tail) / steps}
    if task is not None:
        cells = task.xy_cell(positions(dataset, max_points=steps))
        floor = task.walls() == 0
        visited = np.zeros_like(floor)
        visited[cells[:, 0], cells[:, 1]] = True
        summary["floor_visited"] = float((visited & floor).sum() / floor.sum())
    return summary


def inspect_dataset(dataset, title: str | None = None) -> Figure:
    """Five panels: episode returns, episode lengths, reward values, how episodes end, and visited x-y states."""
    table, xy = episode_table(dataset), positions(dataset)
    rewards = np.concatenate([np.asarray(ep.rewards) for ep in dataset.iterate_episodes()])
    fig, ax = plt.subplots(1, 5, figsize=(20, 3.6))
    ax[0].hist(table["return"], bins=40, color="tab:blue")
    ax[0].set(title="episode returns", xlabel="return (sum of rewards)", ylabel="episodes (log)", yscale="log")
    ax[1].hist(table["length"], bins=40, color="tab:green")
    ax[1].set(title="episode lengths", xlabel="steps", ylabel="episodes")
    values, counts = np.unique(np.round(rewards, 3), return_counts=True)
    ax[2].bar([f"{v:g}" for v in values[:20]], counts[:20], color="tab:orange")
    ax[2].set(title=f"reward values ({len(rewards):,} steps)", xlabel="reward", ylabel="steps")
    ax[2].set_yscale("log")
    success = table["first_success"] >= 0
    after = np.where(success, table["length"] - table["first_success"] - 1, 0).sum()
    ends = {"terminated": table["terminated"].sum(), "truncated": table["truncated"].sum(),
            "reached goal": success.sum()}
    ax[3].bar(list(ends), list(ends.values()), color=["tab:red", "tab:gray", "tab:purple"])
    ax[3].set(title=f"episode ends; {after:,} steps after first success", ylabel="episodes")
    ax[4].hist2d(xy[:, 0], xy[:, 1], bins=60, cmap="magma", cmin=1)
    ax[4].set(title="visited x-y positions", xlabel="x", ylabel="y", aspect="equal")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
