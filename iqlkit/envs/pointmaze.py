"""PointMaze: the kit's layouts with their evaluation start and goal, the envs, the data's PD controller, and V
over the maze (the geometry lives in iqlkit.envs.maze)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from iqlkit.envs.maze import MazeTask, bfs_distances, next_cells

U_MAZE = ((1, 1, 1, 1, 1), (1, 0, 0, 0, 1), (1, 1, 1, 0, 1), (1, 0, 0, 0, 1), (1, 1, 1, 1, 1))
MEDIUM_MAZE = ((1, 1, 1, 1, 1, 1, 1, 1), (1, 0, 0, 1, 1, 0, 0, 1), (1, 0, 0, 1, 0, 0, 0, 1),
               (1, 1, 0, 0, 0, 1, 1, 1), (1, 0, 0, 1, 0, 0, 0, 1), (1, 0, 1, 0, 0, 1, 0, 1),
               (1, 0, 0, 0, 1, 0, 0, 1), (1, 1, 1, 1, 1, 1, 1, 1))

TASKS = {
    "umaze": MazeTask("umaze", U_MAZE, start=(3, 1), goal=(1, 1)),
    "medium": MazeTask("medium", MEDIUM_MAZE, start=(6, 1), goal=(1, 6)),
}
__all__ = ["TASKS", "MazeTask", "bfs_distances", "make_env", "pd_action", "goal_direction", "action_quality",
           "success_rate", "value_grid"]


def make_env(task: MazeTask, eval_env: bool = False, **kwargs):
    """PointMaze-v3 on the task's layout; the evaluation env starts at 'r', ends at 'g' (continuing_task=False)."""
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    if eval_env:
        return gym.make("PointMaze_UMaze-v3", maze_map=task.eval_map(), continuing_task=False, **kwargs)
    return gym.make("PointMaze_UMaze-v3", maze_map=[list(r) for r in task.maze_map], continuing_task=True, **kwargs)


def pd_action(task: MazeTask, dist: dict[tuple[int, int], int], pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """The data's controller a = clip(10 (waypoint - pos) - vel, -1, 1) for positions and velocities [n, 2], driving
    towards the cell at distance 0 of `dist` (bfs_distances): the waypoint is the centre of the next cell on the
    shortest path, or of the target cell once inside it."""
    waypoints = task.cell_xy(next_cells(dist, task.xy_cell(pos)))
    return np.clip(10.0 * (waypoints - pos) - 1.0 * vel, -1, 1)


def goal_direction(task: MazeTask, obs: np.ndarray) -> np.ndarray:
    """The data's controller aimed at the task's goal (pd_action) for obs [n, >= 4] (position, velocity first)."""
    return pd_action(task, bfs_distances(task.maze_map, task.goal), obs[:, :2], obs[:, 2:4])


def action_quality(task: MazeTask, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
    """cos(a, a_goal): how well an action points where the goal-directed controller would push (1 best, -1 worst)."""
    ref = goal_direction(task, obs)
    norms = np.linalg.norm(act, axis=1) * np.linalg.norm(ref, axis=1)
    return np.where(norms > 0, (act * ref).sum(1) / np.maximum(norms, 1e-12), 0.0)


def success_rate(act: Callable[[np.ndarray], np.ndarray], task: str = "medium", n_episodes: int = 50,
                 seed: int = 0) -> dict[str, float]:
    """{'success_rate': share of n_episodes from the task's start that reach its goal} (picklable via partial)."""
    from functools import partial

    from iqlkit.envs.evaluate import evaluate

    result = evaluate(act, partial(make_env, TASKS[task], True), n_episodes=n_episodes, n_envs=10, seed=seed)
    return {"success_rate": result.success_rate}


def value_grid(value_fn: Callable[[np.ndarray], np.ndarray], task: MazeTask, resolution: int = 12,
               obs_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V at rest (velocity 0) on a grid of x-y points, NaN inside walls: returns (xs, ys, V[len(ys), len(xs)]).

    value_fn takes flat observations [x, y, vx, vy, goal_x, goal_y] (after obs_fn, e.g. a normaliser).
    """
    (rows, cols), size = task.shape, task.cell_size
    half_w, half_h = cols / 2 * size, rows / 2 * size
    xs = np.linspace(-half_w, half_w, cols * resolution + 1)[:-1] + half_w / (cols * resolution)
    ys = np.linspace(half_h, -half_h, rows * resolution + 1)[:-1] - half_h / (rows * resolution)
    X, Y = np.meshgrid(xs, ys)
    cells = task.xy_cell(np.stack([X.ravel(), Y.ravel()], 1))
    free = task.walls()[cells[:, 0], cells[:, 1]] == 0
    goal = task.cell_xy(task.goal)
    obs = np.concatenate([X.ravel()[:, None], Y.ravel()[:, None], np.zeros((X.size, 2)), np.tile(goal, (X.size, 1))], 1)
    values = np.asarray(value_fn(obs_fn(obs) if obs_fn else obs), dtype=float)
    return xs, ys, np.where(free, values, np.nan).reshape(X.shape)
