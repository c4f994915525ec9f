"""PointMaze datasets the kit makes itself, by the D4RL/Minari recipe, written as real Minari datasets.

Recipe: a planner (BFS over maze cells) gives the next waypoint towards a commanded cell, a PD controller
a = clip(10 (waypoint - pos) - 1 * vel, -1, 1) drives the ball, Gaussian action noise (std 0.5) is added.
Like D4RL AntMaze, the task has ONE goal (the evaluation goal): reward 1 within 0.45 of it, a continuing task
(no terminations, episodes end by time-out), and `desired_goal` holds that goal. The commanded cells are
random, so the data is undirected: 'navigate' episodes chase a new random cell whenever they reach one;
'stitch' episodes are single short hops to a cell at most `hop` moves away, so no episode joins the
evaluation start to the evaluation goal: a method must stitch pieces of several episodes to solve the task.
"""
from __future__ import annotations

import numpy as np

from iqlkit.envs.data import write_minari
from iqlkit.envs.maze import GOAL_RADIUS, MazeTask, bfs_distances
from iqlkit.envs.pointmaze import TASKS, make_env, pd_action


def pointmaze(task: str | MazeTask = "umaze", mode: str = "navigate", n_steps: int = 100_000,
              episode_steps: int = 300, hop: int = 2, noise: float = 0.5, seed: int = 0,
              dataset_id: str | None = None, root: str | None = None):
    """Record a PointMaze dataset (see module docstring) and write it with minari.create_dataset_from_buffers.

    Returns the MinariDataset; its id defaults to iqlkit/pointmaze-<task>/<mode>-v0, under `root`
    (default: $MINARI_DATASETS_PATH or ~/.minari/datasets), overwriting a dataset of that id.
    """
    import os

    from minari.data_collector import EpisodeBuffer

    task = TASKS[task] if isinstance(task, str) else task
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1; got {n_steps} (an existing dataset of that id is left as it is)")
    if mode not in ("navigate", "stitch"):
        raise ValueError(f"mode must be 'navigate' or 'stitch'; got {mode!r}")
    dataset_id = dataset_id or f"iqlkit/pointmaze-{task.name}/{mode}-v0"
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(root)
    rng = np.random.default_rng(seed)
    env = make_env(task)
    goal_xy = task.cell_xy(task.goal)
    cells = task.free_cells()
    tables = {c: bfs_distances(task.maze_map, c) for c in cells}
    episodes, total, e = [], 0, 0
    while total < n_steps:
        length = min(episode_steps, n_steps - total)
        start = cells[rng.integers(len(cells))]
        obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"reset_cell": np.array(start),
                                                                    "goal_cell": np.array(task.goal)})
        near = [c for c in cells if 0 < tables[c][start] <= hop] if mode == "stitch" else cells
        target = near[rng.integers(len(near))]
        buffer = {"observation": [obs["observation"]], "achieved_goal": [obs["achieved_goal"]]}
        actions, rewards = [], []
        for _ in range(length):
            pos, vel = obs["observation"][None, :2], obs["observation"][None, 2:]
            if tuple(task.xy_cell(pos)[0]) == target:
                if mode == "stitch":
                    break
                target = cells[rng.integers(len(cells))]
            action = pd_action(task, tables[target], pos, vel)[0]
            action = np.clip(action + noise * rng.normal(size=2), -1, 1).astype(np.float32)
            obs, _, _, _, _ = env.step(action)
            rewards.append(float(np.linalg.norm(obs["achieved_goal"] - goal_xy) <= GOAL_RADIUS))
            actions.append(action)
            buffer["observation"].append(obs["observation"])
            buffer["achieved_goal"].append(obs["achieved_goal"])
        if not actions:
            continue
        n = len(actions)
        observations = {k: np.array(v) for k, v in buffer.items()}
        observations["desired_goal"] = np.tile(goal_xy, (n + 1, 1))
        episodes.append(EpisodeBuffer(id=e, observations=observations, actions=np.array(actions), rewards=rewards,
                                      terminations=[False] * n, truncations=[False] * (n - 1) + [True]))
        total, e = total + n, e + 1
    return write_minari(
        dataset_id, episodes, env=env.spec, eval_env=make_env(task, eval_env=True).spec,
        algorithm_name=f"PD+BFS {mode}",
        description=f"iqlkit PointMaze {task.name} ({mode}): fixed goal {task.goal}, reward 1 within 0.45, "
                    f"continuing task, action noise {noise}")
