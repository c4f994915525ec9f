"""Minari AntMaze: the evaluation env of each dataset, and datasets made here in the same schema.

Minari's D4RL/antmaze/*-v1 data comes from gymnasium-robotics AntMaze_*-v4 (27-dim `observation`, x-y
`achieved_goal` and `desired_goal`) run as a continuing task: reward 1 on every step within 0.45 of the goal, no
terminations, the goal kept when reached, episodes cut by time-out (700 steps in umaze, 1000 otherwise). The
evaluation env uses the D4RL start ('r') and goal ('g') cells below and is continuing too: its return counts the
steps spent at the goal, so the kit scores success (any step within 0.45 of the goal). The 27-dim `observation`
has no x-y: data.flatten_observations puts `achieved_goal` (the ant's position) in front of it.

`generate` makes such datasets by Minari's recipe: the kit's trained ant (iqlkit.envs.controller) walks towards D4RL's
waypoints (next cell on a shortest path + 0-1 m jitter, the goal itself from the goal's cell and its neighbours)
with std 0.2 Gaussian action noise, continuing task, 1M steps. Its modes keep D4RL's meanings, which name the data:
'play' draws start and goal among marked cells (D4RL: hand-picked; here the `*_Diverse_GR` maps' 'c' cells, and
umaze's one start and goal), 'diverse' draws them anywhere. Minari swapped the two for medium and large (its
`medium-play` draws anywhere, its `medium-diverse` uses the marked cells) but not for umaze (its `umaze` has the
fixed start and goal, its `umaze-diverse` draws anywhere). D4RL's meanings hold for all three mazes and are the data
the IQL paper's Table 1 (PAPER_SCORES) was measured on; so iqlkit/antmaze-medium-play-v0 is like Minari's
D4RL/antmaze/medium-diverse-v1, and iqlkit/antmaze-umaze-play-v0 like D4RL/antmaze/umaze-v1. `record` (noisy random
actions, goals next to the start) stays for fast plumbing tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from iqlkit.envs.controller import NOISE, WEIGHTS, Controller, cached, direction_episode, drive
from iqlkit.envs.data import write_minari
from iqlkit.envs.maze import GOAL, START as R, MazeTask
from iqlkit.envs.paper import TABLE1
from iqlkit.parallel import process_map

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
PAPER_SCORES = {name: TABLE1[f"antmaze-{name}"]["iql"] for name in ENV_IDS}  # IQL's column of Table 1 (AntMaze v0)


def dataset_name(dataset_id: str) -> str:
    """'D4RL/antmaze/medium-play-v1' -> 'medium-play', also for the kit's ids: 'iqlkit/antmaze-medium-play-v0'
    (generate; its umaze-play is D4RL's umaze) and 'iqlkit/antmaze-umaze/recorded-v0' (record)."""
    key = dataset_id.replace("umaze-play", "umaze")
    for name in sorted(ENV_IDS, key=len, reverse=True):
        if f"/{name}-" in key or f"antmaze-{name}/" in key or f"antmaze-{name}-v" in key:
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
    maze = name.split("-")[0]  # the eval env Minari's datasets carry, its mirrored umaze included
    minari_eval = gym.make(ENV_IDS[name], continuing_task=True, reset_target=False,
                           maze_map=MINARI_UMAZE_EVAL_MAP if maze == "umaze" else EVAL_MAPS[maze])
    return write_minari(
        dataset_id, episodes, env=env.spec, eval_env=minari_eval.spec, algorithm_name="noisy random actions",
        ref_min_score=0.0, ref_max_score=float(episode_steps),
        description=f"iqlkit: AntMaze {name} recorded for plumbing tests (Minari's schema, continuing task)")


MODES = ("play", "diverse")
# (maze, mode) -> the env the data comes from: its id and, where not its own, the marked map (D4RL's meanings)
DATA_ENVS = {("umaze", "play"): ("AntMaze_UMaze-v4", EVAL_MAPS["umaze"]),
             ("umaze", "diverse"): ("AntMaze_UMaze-v4", None),
             ("medium", "play"): ("AntMaze_Medium_Diverse_GR-v4", None),
             ("medium", "diverse"): ("AntMaze_Medium-v4", None),
             ("large", "play"): ("AntMaze_Large_Diverse_GR-v4", None),
             ("large", "diverse"): ("AntMaze_Large-v4", None)}


def eval_name(maze: str, mode: str) -> str:
    """The ENV_IDS / PAPER_SCORES name of the kit's (maze, mode) data: ('umaze', 'play') -> 'umaze'."""
    return "umaze" if (maze, mode) == ("umaze", "play") else f"{maze}-{mode}"


def make_data_env(maze: str, mode: str):
    """The env `generate` records: DATA_ENVS[maze, mode], continuing task, goal kept, Minari's time limit."""
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env_id, marked = DATA_ENVS[maze, mode]
    return gym.make(env_id, continuing_task=True, reset_target=False, **({"maze_map": marked} if marked else {}))


def data_episode(weights: str, maze: str, mode: str, seed: int, steps: int, noise: float) -> dict[str, np.ndarray]:
    """One episode of `generate` (in a worker): the ant driven by controller.drive in make_data_env(maze, mode)."""
    policy = cached(("policy", weights), lambda: Controller(weights))
    env = cached(("data", maze, mode), lambda: make_data_env(maze, mode))
    return drive(env, TASKS[maze], policy, steps, noise, np.random.default_rng(seed))


def eval_return(weights: str, name: str, seed: int) -> float:
    """Return of one noiseless episode of the ant in the kit's evaluation env `name`."""
    policy = cached(("policy", weights), lambda: Controller(weights))
    env = cached(("eval", name), lambda: make_eval_env(name))
    episode = drive(env, TASKS[name.split("-")[0]], policy, env.spec.max_episode_steps, 0.0,
                    np.random.default_rng(seed))
    return float(episode["rewards"].sum())


def minari_infos(episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The infos Minari's AntMaze data keeps, one per observation: success, qpos = [x-y, observation[:13]] (15),
    qvel = observation[13:] (14), goal = desired_goal (2)."""
    return {"success": episode["success"], "qpos": np.concatenate([episode["achieved_goal"],
                                                                    episode["observation"][:, :13]], 1),
            "qvel": episode["observation"][:, 13:], "goal": episode["desired_goal"]}


def generate(maze: str = "umaze", mode: str = "play", n_steps: int = 1_000_000, seed: int = 0,
             workers: int | None = None, noise: float = 0.2, ref_episodes: int = 100, weights: str | None = None,
             dataset_id: str | None = None):
    """Make the Minari dataset iqlkit/antmaze-<maze>-<mode>-v0 by Minari's recipe (module docstring).

    Episodes of the env's time limit (700 steps in umaze, 1000 otherwise; the last one shorter so that the total
    is n_steps), each in a worker process (default: one per core) seeded by (seed, episode index): the data does
    not depend on the number of workers. ref_max_score: the mean return of the noiseless ant over `ref_episodes`
    episodes of the kit's evaluation env (as Minari's expert policy); ref_min_score 0 (a random ant never
    reaches a goal two cells away); none where that mean is 0. Overwrites a dataset of that id under
    $MINARI_DATASETS_PATH.
    """
    from minari.data_collector import EpisodeBuffer

    if (maze, mode) not in DATA_ENVS:
        raise ValueError(f"unknown maze/mode {maze!r}/{mode!r}: mazes {sorted(TASKS)}, modes {MODES}")
    weights = str(weights or WEIGHTS)
    dataset_id = dataset_id or f"iqlkit/antmaze-{maze}-{mode}-v0"
    env, name = make_data_env(maze, mode), eval_name(maze, mode)
    limit = env.spec.max_episode_steps
    lengths = [limit] * (n_steps // limit) + ([n_steps % limit] if n_steps % limit else [])
    tasks = [(weights, maze, mode, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]), n, noise)
             for i, n in enumerate(lengths)]
    episodes = process_map(data_episode, tasks, workers, f"{dataset_id}: {n_steps:,} steps")
    returns = process_map(eval_return, [(weights, name, seed + i) for i in range(ref_episodes)], workers,
                          f"{dataset_id}: {ref_episodes} reference episodes")
    ref_max = float(np.mean(returns)) if returns else 0.0
    buffers = [EpisodeBuffer(id=i, seed=ep["seed"], actions=ep["actions"], rewards=list(ep["rewards"]),
                             observations={k: ep[k] for k in ("observation", "achieved_goal", "desired_goal")},
                             terminations=[False] * len(ep["rewards"]),
                             truncations=[False] * (len(ep["rewards"]) - 1) + [True], infos=minari_infos(ep))
               for i, ep in enumerate(episodes)]
    return write_minari(
        dataset_id, buffers, env=env.spec, eval_env=make_eval_env(name).spec,
        algorithm_name="BFS waypoints + SAC ant controller (iqlkit.envs.controller)",
        **({"ref_min_score": 0.0, "ref_max_score": ref_max, "num_episodes_average_score": ref_episodes}
           if ref_max > 0 else {}),
        description=f"iqlkit: AntMaze {maze} {mode} by Minari's recipe (D4RL's meaning of {mode!r}: "
                    f"{'marked start and goal cells' if mode == 'play' else 'start and goal anywhere'}), "
                    f"waypoints + SAC controller, action noise {noise}, continuing task")


def maze_success(weights: str, name: str, seed: int, noise: float) -> bool:
    """Whether the waypoint-following ant reaches the goal of the kit's evaluation env `name` (D4RL's start and
    goal) within its time limit, with action noise `noise`."""
    policy = cached(("policy", weights), lambda: Controller(weights))
    env = cached(("eval", name), lambda: make_eval_env(name))
    episode = drive(env, TASKS[name.split("-")[0]], policy, env.spec.max_episode_steps, noise,
                    np.random.default_rng(seed), until_success=True)
    return bool(episode["success"].any())


def check_controller(weights: str | Path = WEIGHTS, episodes: int = 100, steps: int = 1000,
                     workers: int | None = None, seed: int = 0) -> dict[str, float]:
    """The controller's acceptance figures (controller.TARGETS): mean speed along the command, the fraction of
    `steps`-step episodes that fall (tip past horizontal) and, reported beside them, that bounce above 1 m upright
    (direction_env, noise 0.2); success from D4RL's start in umaze (noise 0 and 0.2) and medium (noise 0.2 and 0),
    and in large (noise 0.2, reported), `episodes` episodes each."""
    weights = str(weights)
    Controller(weights)  # a missing or corrupt file is named before any worker starts
    walks = process_map(direction_episode, [(weights, seed + i, steps, NOISE) for i in range(episodes)], workers,
                        "controller check: walking")
    speed, falls, bounces = np.array(walks, dtype=float).T
    figures = {"speed": float(speed.mean()), "fall_rate": float(falls.mean()), "bounce_rate": float(bounces.mean())}
    for name, noise, key in (("umaze", 0.0, "umaze_success"), ("umaze", NOISE, "umaze_success_noise"),
                             ("medium-play", NOISE, "medium_success_noise"), ("medium-play", 0.0, "medium_success"),
                             ("large-play", NOISE, "large_success_noise")):
        jobs = [(weights, name, seed + i, noise) for i in range(episodes)]
        figures[key] = float(np.mean(process_map(maze_success, jobs, workers, f"controller check: {key}")))
    return figures | {"episodes": episodes, "episode_steps": steps}
