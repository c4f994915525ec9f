"""PointMaze geometry: layouts with evaluation start and goal, shortest paths, the envs, and V over the maze."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

U_MAZE = ((1, 1, 1, 1, 1), (1, 0, 0, 0, 1), (1, 1, 1, 0, 1), (1, 0, 0, 0, 1), (1, 1, 1, 1, 1))
MEDIUM_MAZE = ((1, 1, 1, 1, 1, 1, 1, 1), (1, 0, 0, 1, 1, 0, 0, 1), (1, 0, 0, 1, 0, 0, 0, 1),
               (1, 1, 0, 0, 0, 1, 1, 1), (1, 0, 0, 1, 0, 0, 0, 1), (1, 0, 1, 0, 0, 1, 0, 1),
               (1, 0, 0, 0, 1, 0, 0, 1), (1, 1, 1, 1, 1, 1, 1, 1))


@dataclass(frozen=True)
class MazeTask:
    """A PointMaze layout (1 = wall) with the evaluation start and goal cells (row, col)."""

    name: str
    maze_map: tuple[tuple[int, ...], ...]
    start: tuple[int, int]
    goal: tuple[int, int]

    def eval_map(self) -> list[list]:
        """The layout with 'r' (reset) and 'g' (goal) cells: gymnasium-robotics' fixed start and goal."""
        rows = [list(r) for r in self.maze_map]
        rows[self.start[0]][self.start[1]], rows[self.goal[0]][self.goal[1]] = "r", "g"
        return rows

    def free_cells(self) -> list[tuple[int, int]]:
        return [(i, j) for i, row in enumerate(self.maze_map) for j, c in enumerate(row) if c == 0]


TASKS = {
    "umaze": MazeTask("umaze", U_MAZE, start=(3, 1), goal=(1, 1)),
    "medium": MazeTask("medium", MEDIUM_MAZE, start=(6, 1), goal=(1, 6)),
}


def bfs_distances(maze_map, target: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Number of cell moves from every free cell to `target` (breadth-first search)."""
    dist, queue = {target: 0}, deque([target])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            n = (i + di, j + dj)
            if maze_map[n[0]][n[1]] == 0 and n not in dist:
                dist[n] = dist[(i, j)] + 1
                queue.append(n)
    return dist


def make_env(task: MazeTask, eval_env: bool = False, **kwargs):
    """PointMaze-v3 on the task's layout; the evaluation env starts at 'r', ends at 'g' (continuing_task=False)."""
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    if eval_env:
        return gym.make("PointMaze_UMaze-v3", maze_map=task.eval_map(), continuing_task=False, **kwargs)
    return gym.make("PointMaze_UMaze-v3", maze_map=[list(r) for r in task.maze_map], continuing_task=True, **kwargs)


def cell_of(task: MazeTask, xy: np.ndarray) -> np.ndarray:
    """(row, col) of positions [n, 2] (gymnasium-robotics' layout: unit cells, the map centred on the origin)."""
    h, w = len(task.maze_map), len(task.maze_map[0])
    col = np.clip(np.floor(xy[:, 0] + w / 2), 0, w - 1)
    row = np.clip(np.floor(h / 2 - xy[:, 1]), 0, h - 1)
    return np.stack([row, col], 1).astype(int)


def pd_action(task: MazeTask, dist: dict[tuple[int, int], int], pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """The data's controller a = clip(10 (waypoint - pos) - vel, -1, 1) for positions and velocities [n, 2], driving
    towards the cell at distance 0 of `dist` (bfs_distances): the waypoint is the centre of the next cell on the
    shortest path, or of the target cell once inside it."""
    h, w = len(task.maze_map), len(task.maze_map[0])
    target = min(dist, key=dist.get)
    waypoints = []
    for r, c in cell_of(task, pos):
        near = [(r + di, c + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)) if (r + di, c + dj) in dist]
        nxt = target if (r, c) == target or not near else min(near, key=dist.get)
        waypoints.append((nxt[1] + 0.5 - w / 2, h / 2 - (nxt[0] + 0.5)))
    return np.clip(10.0 * (np.array(waypoints) - pos) - 1.0 * vel, -1, 1)


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

    from iqlkit.evaluate import evaluate

    result = evaluate(act, partial(make_env, TASKS[task], True), n_episodes=n_episodes, n_envs=10, seed=seed)
    return {"success_rate": result.success_rate}


def value_grid(value_fn: Callable[[np.ndarray], np.ndarray], task: MazeTask, resolution: int = 12,
               obs_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V at rest (velocity 0) on a grid of x-y points, NaN inside walls: returns (xs, ys, V[len(ys), len(xs)]).

    value_fn takes flat observations [x, y, vx, vy, goal_x, goal_y] (after obs_fn, e.g. a normaliser).
    """
    maze = make_env(task).unwrapped.maze
    rows, cols = len(task.maze_map), len(task.maze_map[0])
    half_w, half_h = cols / 2 * maze.maze_size_scaling, rows / 2 * maze.maze_size_scaling
    xs = np.linspace(-half_w, half_w, cols * resolution + 1)[:-1] + half_w / (cols * resolution)
    ys = np.linspace(half_h, -half_h, rows * resolution + 1)[:-1] - half_h / (rows * resolution)
    X, Y = np.meshgrid(xs, ys)
    cells = np.array([maze.cell_xy_to_rowcol(p) for p in np.stack([X.ravel(), Y.ravel()], 1)])
    free = np.array([task.maze_map[i][j] == 0 for i, j in cells])
    goal = maze.cell_rowcol_to_xy(np.array(task.goal))
    obs = np.concatenate([X.ravel()[:, None], Y.ravel()[:, None], np.zeros((X.size, 2)), np.tile(goal, (X.size, 1))], 1)
    values = np.asarray(value_fn(obs_fn(obs) if obs_fn else obs), dtype=float)
    return xs, ys, np.where(free, values, np.nan).reshape(X.shape)
