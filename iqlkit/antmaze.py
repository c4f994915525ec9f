"""Minari AntMaze: the evaluation env of each dataset, and small datasets recorded here in the same schema.

Minari's D4RL/antmaze/*-v1 data comes from gymnasium-robotics AntMaze_*-v4 (27-dim `observation`, x-y
`achieved_goal` and `desired_goal`) run as a continuing task: reward 1 on every step within 0.45 of the goal, no
terminations, the goal kept when reached, episodes cut by time-out (700 steps in umaze, 1000 otherwise). The
evaluation env uses the D4RL start ('r') and goal ('g') cells below and is continuing too: its return counts the
steps spent at the goal, so the kit scores success (any step within 0.45 of the goal). The 27-dim `observation`
has no x-y: data.flatten_observations puts `achieved_goal` (the ant's position) in front of it.
"""
from __future__ import annotations

import numpy as np

from iqlkit.maze import GOAL, START as R, MazeTask

G = GOAL
CELL = 4.0  # AntMaze's maze_size_scaling: one maze cell is 4 x 4 in world coordinates

# D4RL's evaluation start and goal (row 0 is the top of the maze). Minari's umaze eval env uses the data's maze
# mirrored ([1, 0, 0, r, 1], [1, 0, 1, 1, 1], [1, 0, 0, g, 1]: Minari issue #304); the kit evaluates umaze on the
# data's own maze with the task its data was collected for (start bottom-left, goal top-left).
EVAL_MAPS = {
    "umaze": [[1, 1, 1, 1, 1], [1, G, 0, 0, 1], [1, 1, 1, 0, 1], [1, R, 0, 0, 1], [1, 1, 1, 1, 1]],
    "medium": [[1, 1, 1, 1, 1, 1, 1, 1], [1, R, 0, 1, 1, 0, 0, 1], [1, 0, 0, 1, 0, 0, 0, 1], [1, 1, 0, 0, 0, 1, 1, 1],
               [1, 0, 0, 1, 0, 0, 0, 1], [1, 0, 1, 0, 0, 1, 0, 1], [1, 0, 0, 0, 1, 0, G, 1], [1, 1, 1, 1, 1, 1, 1, 1]],
    "large": [[1] * 12, [1, R, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1],
              [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1], [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1],
              [1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1], [1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1],
              [1, 0, 0, 1, 0, 0, 0, 1, 0, G, 0, 1], [1] * 12],
}
TASKS = {name: MazeTask.from_marked(name, marked, CELL) for name, marked in EVAL_MAPS.items()}  # D4RL's tasks
MINARI_UMAZE_EVAL_MAP = [[1, 1, 1, 1, 1], [1, 0, 0, R, 1], [1, 0, 1, 1, 1], [1, 0, 0, G, 1], [1, 1, 1, 1, 1]]
ENV_IDS = {"umaze": "AntMaze_UMaze-v4", "umaze-diverse": "AntMaze_UMaze-v4", "medium-play": "AntMaze_Medium-v4",
           "medium-diverse": "AntMaze_Medium_Diverse_GR-v4", "large-play": "AntMaze_Large-v4",
           "large-diverse": "AntMaze_Large_Diverse_GR-v4"}
PAPER_SCORES = {"umaze": 87.5, "umaze-diverse": 62.2, "medium-play": 71.2, "medium-diverse": 70.0,
                "large-play": 39.6, "large-diverse": 47.5}  # IQL paper, Table 1 (AntMaze v0)


def dataset_name(dataset_id: str) -> str:
    """'D4RL/antmaze/medium-play-v1' -> 'medium-play' (also for the kit's 'iqlkit/antmaze-umaze/...' ids)."""
    for name in sorted(ENV_IDS, key=len, reverse=True):
        if f"/{name}-" in dataset_id or f"antmaze-{name}/" in dataset_id:
            return name
    raise ValueError(f"{dataset_id!r} is not an AntMaze dataset id; known mazes: {sorted(ENV_IDS)}")


def make_eval_env(name: str, **kwargs):
    """The D4RL evaluation env of an AntMaze dataset without the dataset: fixed start and goal, continuing task."""
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    maze = name.split("-")[0]
    return gym.make(ENV_IDS[name], maze_map=EVAL_MAPS[maze], continuing_task=True, reset_target=False, **kwargs)


def eval_env_factory(dataset_id: str, dataset=None, minari_eval: bool = False):
    """A no-argument env maker: the kit's D4RL evaluation env, or (minari_eval) the dataset's own eval env.

    They agree for medium and large; for umaze Minari's eval maze is the data's maze mirrored (issue #304).
    """
    from functools import partial

    if minari_eval:
        if dataset is None:
            raise ValueError(f"minari_eval needs the dataset on disk: minari download {dataset_id}")
        return partial(dataset.recover_environment, eval_env=True)
    return partial(make_eval_env, dataset_name(dataset_id))


def record(name: str = "umaze", n_steps: int = 5_000, episode_steps: int = 700, seed: int = 0,
           dataset_id: str | None = None):
    """Record an AntMaze dataset in Minari's schema with a scripted policy (noisy random actions).

    Each episode starts in a random free cell with its own goal drawn in the start cell or a neighbouring one
    (goals differ per episode, as in the diverse datasets), so some episodes reach the goal and sit there:
    the continuing-task tail is present, as in the real data. For plumbing, not for learning.
    """
    import gymnasium as gym
    import gymnasium_robotics
    import minari
    from minari.data_collector import EpisodeBuffer

    gym.register_envs(gymnasium_robotics)
    dataset_id = dataset_id or f"iqlkit/antmaze-{name}/recorded-v0"
    env = gym.make(ENV_IDS[name], continuing_task=True, reset_target=False, max_episode_steps=episode_steps)
    rng = np.random.default_rng(seed)
    maze_map = env.unwrapped.maze.maze_map
    free = [(i, j) for i, row in enumerate(maze_map) for j, c in enumerate(row) if c != 1]
    episodes, total = [], 0
    while total < n_steps:
        start = free[rng.integers(len(free))]
        near = [c for c in free if abs(c[0] - start[0]) + abs(c[1] - start[1]) <= 1]
        goal = near[rng.integers(len(near))]
        obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"reset_cell": np.array(start),
                                                                    "goal_cell": np.array(goal)})
        keys = ("observation", "achieved_goal", "desired_goal")
        buffer = {k: [obs[k]] for k in keys}
        actions, rewards, successes = [], [], []
        for _ in range(min(episode_steps, n_steps - total)):
            action = np.clip(0.5 * rng.normal(size=8), -1, 1).astype(np.float32)
            obs, reward, _, _, info = env.step(action)
            actions.append(action)
            rewards.append(float(reward))
            successes.append(bool(info["success"]))
            for k in keys:
                buffer[k].append(obs[k])
        n = len(actions)
        episodes.append(EpisodeBuffer(id=len(episodes), observations={k: np.array(v) for k, v in buffer.items()},
                                      actions=np.array(actions), rewards=rewards, terminations=[False] * n,
                                      truncations=[False] * (n - 1) + [True],
                                      infos={"success": np.array(successes)}))
        total += n
    if dataset_id in minari.list_local_datasets():
        minari.delete_dataset(dataset_id)
    maze = name.split("-")[0]  # the eval env Minari's datasets carry, its mirrored umaze included
    minari_eval = gym.make(ENV_IDS[name], continuing_task=True, reset_target=False,
                           maze_map=MINARI_UMAZE_EVAL_MAP if maze == "umaze" else EVAL_MAPS[maze])
    return minari.create_dataset_from_buffers(
        dataset_id, episodes, env=env.spec, eval_env=minari_eval.spec, algorithm_name="noisy random actions",
        ref_min_score=0.0, ref_max_score=float(episode_steps),
        description=f"iqlkit: AntMaze {name} recorded for plumbing tests (Minari's schema, continuing task)")
