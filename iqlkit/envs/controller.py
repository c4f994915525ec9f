"""A direction-following ant: the low-level controller that walks the kit's AntMaze data through the maze.

The recipe of Minari's and D4RL's AntMaze data: a learned controller walks the ant towards waypoints given by a
planner over maze cells, with Gaussian action noise (std 0.2). Here the controller is trained by
stable-baselines3 SAC on gymnasium's Ant-v5 built from the same `ant.xml` AntMaze-v4 loads, with the same 27-dim
observation (qpos[2:] and qvel: torso height, orientation, joint angles, velocities; no x-y). Its input is that
observation plus a commanded unit direction in the world frame (2); the reward per 0.05 s step is

    r = 10 min(v.d, 1.5) + 3 u - 0.5 |a|^2,
    v: the torso's x-y velocity, d: the command, u: the cosine of the torso's tilt, a: the policy's action,

with Minari's scale on the velocity (10 x velocity towards the target) capped at 1.5 m/s, so that sprinting earns
nothing, an upright bonus in place of Ant's constant healthy reward, Ant's control cost, and a fall (`fallen`: the
torso tipped past horizontal, u < 0) ending the episode. Why the upright bonus: a fall that happens once in 1,000
steps costs a discounted (gamma 0.99) critic next to nothing, so the first shipped ant (uncapped speed, a constant
bonus of 3) walked at 1.32 m/s and fell in 63% of 1,000-step episodes; the tilt is seen at every step, long before
the ant tips. The bonus is 3 u rather than a penalty 5 (1 - u) next to a constant: with the penalty, a tilted ant
earned less than nothing and SAC learnt to tip over to end the episode (every episode of a first run ended so). The
command is redrawn uniformly on the circle every 100 steps (OGBench's directional controller) and turned by a small
random angle at every step, as D4RL's jittered waypoints turn it; the executed action carries the data's std 0.2
noise, so the policy is robust to both.

The shipped policy (`recorded/ant_controller.json`: its weights as text, next to how they were made and their
acceptance figures; `Controller`) is SAC's actor mean, tanh-squashed, run in numpy: generating data needs no
stable-baselines3. `waypoint` is D4RL's planner rule; `direction` turns it into a command.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from iqlkit.envs.maze import MazeTask, next_cells
from iqlkit.envs.sac import TextPolicy, hardware, versions

WEIGHTS = Path(__file__).parents[1] / "recorded" / "ant_controller.json"
ANT_KWARGS = {"exclude_current_positions_from_observation": True, "include_cfrc_ext_in_observation": False}
OBS_DIM, ACT_DIM = 27, 8  # AntMaze's `observation` (qpos[2:] 13, qvel 14); the ant's 8 hinge motors
VELOCITY_WEIGHT, SPEED_CAP, UPRIGHT_WEIGHT, CTRL_WEIGHT = 10.0, 1.5, 3.0, 0.5  # r = 10 min(v.d, 1.5) + 3 u - 0.5 |a|^2
RESAMPLE_EVERY = 100  # steps between commands during training
COMMAND_JITTER = 0.1  # std (radians) of the command's turn at each step during training
NOISE = 0.2  # std of the Gaussian action noise of the data (Minari, D4RL)
BOUNCE_Z = 1.0  # Ant-v5's healthy torso height limit: above it with the torso upright is a bounce, not a fall


def upright(obs: np.ndarray) -> np.ndarray:
    """u = 1 - 2 (qx^2 + qy^2): the cosine of the torso's tilt (its up axis against the world's), from the
    quaternion (w, x, y, z) = obs[1:5]. obs [..., >= 5] -> [...]."""
    obs = np.asarray(obs)
    return 1 - 2 * (obs[..., 2] ** 2 + obs[..., 3] ** 2)


def fallen(obs: np.ndarray) -> np.ndarray:
    """A fall: the torso tipped past horizontal or on its back (u < 0), what leaves an ant down in a maze.
    obs [..., >= 5] -> bool [...]."""
    return upright(obs) < 0


def bounced(obs: np.ndarray) -> np.ndarray:
    """A bounce: the torso above Ant's 1 m healthy height while upright (not a fall). obs [..., >= 5] -> bool."""
    obs = np.asarray(obs)
    return (obs[..., 0] > BOUNCE_Z) & ~fallen(obs)


def reward(speed: float, obs: np.ndarray, action: np.ndarray) -> float:
    """r = 10 min(v.d, 1.5) + 3 u - 0.5 |a|^2 (the training reward; `speed` is v.d, u = upright(obs))."""
    return float(VELOCITY_WEIGHT * min(speed, SPEED_CAP) + UPRIGHT_WEIGHT * upright(obs)
                 - CTRL_WEIGHT * np.sum(np.square(action)))


def unit(v: np.ndarray) -> np.ndarray:
    """v / |v| along the last axis (zero vectors stay zero)."""
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def waypoint(task: MazeTask, dist: dict, xy: np.ndarray, goal_xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """D4RL's waypoint: the centre of the next cell on a shortest path to the goal's cell (`dist`: bfs_distances to
    it) plus U[0, cell/4)^2 jitter (0-1 m in AntMaze), redrawn at every call; the goal itself once that next cell
    is the goal's cell (from a neighbour of it or inside it). xy, goal_xy [2] -> [2]."""
    nxt = next_cells(dist, task.xy_cell(xy)[None])[0]
    if tuple(nxt) == tuple(task.xy_cell(goal_xy)):
        return np.asarray(goal_xy, dtype=float)
    return task.cell_xy(nxt) + rng.uniform(0, task.cell_size / 4, 2)


def direction(task: MazeTask, dist: dict, xy: np.ndarray, goal_xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The command: d = (w - xy) / |w - xy| towards the waypoint w = waypoint(...). [2]."""
    return unit(waypoint(task, dist, xy, goal_xy, rng) - np.asarray(xy, dtype=float))


class Controller(TextPolicy):
    """The shipped ant in numpy (iqlkit.envs.sac.TextPolicy): a = tanh(mu([obs, d])), SAC's mean action, for an
    observation [..., 27] and a unit command d [..., 2]."""

    def __init__(self, path: str | Path = WEIGHTS) -> None:
        super().__init__(path, OBS_DIM + 2, ACT_DIM)

    def __call__(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        """Deterministic action in [-1, 1]^8 for observations [..., 27] and unit commands [..., 2]."""
        return self.mean(np.concatenate([np.asarray(obs, dtype=np.float32), np.asarray(command, dtype=np.float32)],
                                        -1))


def make_ant(**kwargs):
    """gymnasium's Ant-v5 with AntMaze's ant.xml and 27-dim observation; falls are judged by `fallen`, not Ant."""
    import gymnasium as gym

    return gym.make("Ant-v5", **ANT_KWARGS, terminate_when_unhealthy=False, **kwargs)


def direction_env(noise: float = NOISE, episode_steps: int = 1000, resample_every: int = RESAMPLE_EVERY,
                  jitter: float = COMMAND_JITTER):
    """The training env: Ant-v5 + a command redrawn every `resample_every` steps and turned by N(0, jitter^2)
    radians at each step, reward `reward`, Gaussian action noise of std `noise` on the executed action, episodes
    ended by a fall or after `episode_steps` steps. Observation [27 + 2]; info: speed, fallen, bounced."""
    import gymnasium as gym

    class DirectionEnv(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM + 2,), np.float32)
            self.angle, self.t = 0.0, 0

        @property
        def command(self) -> np.ndarray:
            return np.array([np.cos(self.angle), np.sin(self.angle)])

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self.t, self.angle = 0, self.np_random.uniform(0, 2 * np.pi)
            self.speed_sum, self.bounce = 0.0, False
            return np.concatenate([obs, self.command]).astype(np.float32), info

        def step(self, action):
            executed = np.clip(action + noise * self.np_random.normal(size=ACT_DIM), -1, 1)
            obs, _, _, truncated, info = self.env.step(executed)
            speed = float(np.array([info["x_velocity"], info["y_velocity"]]) @ self.command)
            down = bool(fallen(obs))
            info = {**info, "speed": speed, "fallen": down, "bounced": bool(bounced(obs))}
            r = reward(speed, obs, action)
            self.t += 1
            self.speed_sum, self.bounce = self.speed_sum + speed, self.bounce or info["bounced"]
            if down or truncated:  # what the training log reports of each episode (iqlkit.envs.sac.train_sac)
                info["episode_stats"] = {"speed": self.speed_sum / self.t, "fall": down, "bounce": self.bounce}
            self.angle = (self.np_random.uniform(0, 2 * np.pi) if self.t % resample_every == 0
                          else self.angle + jitter * self.np_random.normal())
            return np.concatenate([obs, self.command]).astype(np.float32), r, down, truncated, info

    return DirectionEnv(make_ant(max_episode_steps=episode_steps))


def train(out: str | Path = "runs/controller", steps: int = 3_000_000, seed: int = 0, n_envs: int = 4,
          hidden: tuple[int, ...] = (128, 128), checkpoint_every: int = 25_000, log_every: int = 5_000,
          learning_starts: int = 10_000, noise: float = NOISE, updates_per_step: float = 0.5,
          gamma: float = 0.99) -> Path:
    """Train the controller with SB3 SAC on `direction_env` (iqlkit.envs.sac.train_sac: resumable, a snapshot of
    the actor at every checkpoint); its log adds the episodes' mean speed along the command, falls and bounces.
    Returns OUT/policy.json, the actor and how it was made."""
    from iqlkit.envs.sac import train_sac

    made = partial(provenance, steps, seed, n_envs, hidden, updates_per_step, gamma)
    return train_sac(partial(direction_env, noise), out, steps, made, seed, n_envs, hidden, updates_per_step, gamma,
                     checkpoint_every, log_every, learning_starts, stats=("speed", "fall", "bounce"),
                     desc="controller SAC")


def provenance(steps: int, seed: int, n_envs: int, hidden: tuple[int, ...], updates_per_step: float, gamma: float,
               wall_s: float) -> dict:
    """How the weights were made: the command, seed, steps, wall time, hardware and library versions."""
    return {"command": f"OMP_NUM_THREADS=1 python -m iqlkit controller train --steps {steps} --seed {seed} "
                       f"--n-envs {n_envs} --hidden {' '.join(map(str, hidden))} --updates-per-step "
                       f"{updates_per_step:g} --gamma {gamma:g}",
            "seed": seed, "steps": steps, "updates": round(steps * updates_per_step), "gamma": gamma,
            "wall_s": wall_s, "hardware": hardware(),
            "reward": f"{VELOCITY_WEIGHT:g} min(v.d, {SPEED_CAP:g}) + {UPRIGHT_WEIGHT:g} u - {CTRL_WEIGHT:g} |a|^2; "
                      f"a tip past horizontal ends the episode",
            "training_noise": NOISE, "resample_every": RESAMPLE_EVERY, "command_jitter": COMMAND_JITTER,
            "versions": versions()}


def drive(env, task: MazeTask, policy: Controller, steps: int, noise: float, rng: np.random.Generator,
          until_success: bool = False, options: dict | None = None) -> dict[str, np.ndarray]:
    """One AntMaze episode of the waypoint-following ant: reset (seeded from rng), then `steps` steps of
    a = clip(policy(obs, direction) + noise N(0, 1), -1, 1) towards `desired_goal` (kept once reached), or up to
    the first success. Returns observation [n+1, 27], achieved_goal and desired_goal [n+1, 2], actions [n, 8]
    (float32), rewards [n], success [n+1] (the reset's, then each step's) and the reset seed."""
    seed = int(rng.integers(2**31))
    obs, info = env.reset(seed=seed, options=options)
    goal = obs["desired_goal"]
    dist = task.distances(tuple(task.xy_cell(goal)))
    keys = ("observation", "achieved_goal", "desired_goal")
    out: dict[str, list] = {k: [obs[k]] for k in keys} | {"actions": [], "rewards": [], "success": [info["success"]]}
    for _ in range(steps):
        command = direction(task, dist, obs["achieved_goal"], goal, rng)
        action = np.clip(policy(obs["observation"], command) + noise * rng.normal(size=ACT_DIM), -1, 1)
        obs, reward, _, truncated, info = env.step(action.astype(np.float32))
        for k in keys:
            out[k].append(obs[k])
        out["actions"].append(action.astype(np.float32))
        out["rewards"].append(float(reward))
        out["success"].append(bool(info["success"]))
        if truncated or (until_success and info["success"]):
            break
    return {k: np.array(v) for k, v in out.items()} | {"seed": seed}


_CACHE: dict = {}  # per process: envs and policies reused across the tasks a worker runs


def cached(key, make):
    """_CACHE[key], made by make() on first use in this process."""
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def direction_episode(weights: str, seed: int, steps: int, noise: float) -> tuple[float, bool, bool]:
    """(mean speed along the command, fell, bounced) of one `direction_env` episode of `steps` steps with action
    noise."""
    policy = cached(("policy", weights), lambda: Controller(weights))
    env = cached(("direction", steps, noise), lambda: direction_env(noise, episode_steps=steps))
    obs, _ = env.reset(seed=seed)
    speeds, down, bounce = [], False, False
    for _ in range(steps):
        obs, _, down, truncated, info = env.step(policy(obs[:OBS_DIM], obs[OBS_DIM:]))
        speeds.append(info["speed"])
        bounce |= info["bounced"]
        if down or truncated:
            break
    return float(np.mean(speeds)), bool(down), bool(bounce)


TARGETS = {"speed": (1.0, ">="), "fall_rate": (0.01, "<"), "umaze_success": (0.9, ">="),
           "umaze_success_noise": (0.8, ">="), "medium_success_noise": (0.8, ">="), "medium_success": (0.8, ">=")}


def report(figures: dict[str, float]) -> str:
    """The acceptance figures as lines 'name value (target op x: met / MISSED)'."""
    lines = []
    for key, value in figures.items():
        if key in TARGETS:
            target, op = TARGETS[key]
            met = value >= target if op == ">=" else value < target
            lines.append(f"{key:22s} {value:8.3f}   target {op} {target}: {'met' if met else 'MISSED'}")
        else:
            lines.append(f"{key:22s} {value}")
    return "\n".join(lines)
