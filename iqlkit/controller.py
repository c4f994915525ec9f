"""A direction-following ant: the low-level controller that walks the kit's AntMaze data through the maze.

The recipe of Minari's and D4RL's AntMaze data: a learned controller walks the ant towards waypoints given by a
planner over maze cells, with Gaussian action noise (std 0.2). Here the controller is trained by
stable-baselines3 SAC on gymnasium's Ant-v5 built from the same `ant.xml` AntMaze-v4 loads, with the same 27-dim
observation (qpos[2:] and qvel: torso height, orientation, joint angles, velocities; no x-y). Its input is that
observation plus a commanded unit direction in the world frame (2); the reward per 0.05 s step is

    r = 10 v.d + 3 - 0.5 |a|^2,    v: the torso's x-y velocity, d: the command, a: the policy's action,

with Minari's scale on the velocity (10 x velocity towards the target), Ant's control cost, and a fall (`fallen`)
ending the episode. Shorter runs set the healthy bonus: with Ant's 1 next to 10 v.d, speed paid far more than
staying up and the policy settled for hopping gaits that fell after about 100 steps; with 10 (and the control cost
scaled up to 2.5) standing still was the safe choice and the ant had not started walking after 180k steps.
The command is redrawn uniformly on the circle every 100 steps (OGBench's directional controller) and the executed
action carries the data's std 0.2 noise during training, so the policy is robust to it.

The shipped policy (`recorded/ant_controller.json`: its weights as text, next to how they were made and their
acceptance figures; `Controller`) is SAC's actor mean, tanh-squashed, run in numpy: generating data needs no
stable-baselines3. `waypoint` is D4RL's planner rule; `direction` turns it into a command.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from iqlkit.maze import MazeTask, next_cells

WEIGHTS = Path(__file__).parent / "recorded" / "ant_controller.json"
ANT_KWARGS = {"exclude_current_positions_from_observation": True, "include_cfrc_ext_in_observation": False}
OBS_DIM, ACT_DIM = 27, 8  # AntMaze's `observation` (qpos[2:] 13, qvel 14); the ant's 8 hinge motors
VELOCITY_WEIGHT, HEALTHY_REWARD, CTRL_WEIGHT = 10.0, 3.0, 0.5  # r = 10 v.d + 3 - 0.5 |a|^2
RESAMPLE_EVERY = 100  # steps between commands during training
NOISE = 0.2  # std of the Gaussian action noise of the data (Minari, D4RL)
HEALTHY_Z = (0.2, 1.0)  # Ant-v5's healthy torso height


def fallen(obs: np.ndarray) -> np.ndarray:
    """A fall: torso height outside Ant's healthy (0.2, 1.0), or the torso's up axis below horizontal
    (1 - 2 (qx^2 + qy^2) < 0, quaternion (w, x, y, z) = obs[1:5]). obs [..., >= 5] -> bool [...]."""
    obs = np.asarray(obs)
    z, up = obs[..., 0], 1 - 2 * (obs[..., 2] ** 2 + obs[..., 3] ** 2)
    return (z < HEALTHY_Z[0]) | (z > HEALTHY_Z[1]) | (up < 0)


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


class Controller:
    """The shipped policy in numpy: a = tanh(W_k relu(... relu(W_1 [obs, d] + b_1) ...) + b_k), SAC's mean action."""

    def __init__(self, path: str | Path = WEIGHTS):
        # W [in, out] as a view of torch's [out, in]: the memory layout the acceptance figures were measured with
        # (a matmul over another layout rounds differently, and the simulated ant amplifies it)
        self.layers = [(decode(layer["w"], layer["shape"]).T, decode(layer["b"], layer["shape"][:1]))
                       for layer in json.loads(Path(path).read_text())["layers"]]

    def __call__(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        """Deterministic action in [-1, 1]^8 for observations [..., 27] and unit commands [..., 2]."""
        h = np.concatenate([np.asarray(obs, dtype=np.float32), np.asarray(command, dtype=np.float32)], -1)
        for w, b in self.layers[:-1]:
            h = np.maximum(h @ w + b, 0)
        w, b = self.layers[-1]
        return np.tanh(h @ w + b)


def make_ant(**kwargs):
    """gymnasium's Ant-v5 with AntMaze's ant.xml and 27-dim observation; falls are judged by `fallen`, not Ant."""
    import gymnasium as gym

    return gym.make("Ant-v5", **ANT_KWARGS, terminate_when_unhealthy=False, **kwargs)


def direction_env(noise: float = NOISE, episode_steps: int = 1000, resample_every: int = RESAMPLE_EVERY):
    """The training env: Ant-v5 + a command redrawn every `resample_every` steps, reward 10 v.d + 3 - 0.5 |a|^2,
    Gaussian action noise of std `noise` on the executed action, episodes ended by a fall or after
    `episode_steps` steps. Observation [27 + 2]."""
    import gymnasium as gym

    class DirectionEnv(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM + 2,), np.float32)
            self.command, self.t = np.zeros(2), 0

        def _draw(self):
            angle = self.np_random.uniform(0, 2 * np.pi)
            self.command = np.array([np.cos(angle), np.sin(angle)])

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self.t = 0
            self._draw()
            return np.concatenate([obs, self.command]).astype(np.float32), info

        def step(self, action):
            executed = np.clip(action + noise * self.np_random.normal(size=ACT_DIM), -1, 1)
            obs, _, _, truncated, info = self.env.step(executed)
            velocity = np.array([info["x_velocity"], info["y_velocity"]])
            down = bool(fallen(obs))
            info = {**info, "speed": float(velocity @ self.command), "fallen": down}
            reward = VELOCITY_WEIGHT * info["speed"] + HEALTHY_REWARD - CTRL_WEIGHT * float(np.sum(np.square(action)))
            self.t += 1
            if self.t % resample_every == 0:
                self._draw()
            return np.concatenate([obs, self.command]).astype(np.float32), reward, down, truncated, info

    return DirectionEnv(make_ant(max_episode_steps=episode_steps))


def encode(a: np.ndarray) -> str:
    """A float32 array as text: each number's shortest decimal that reads back to the same float32."""
    return " ".join(map(str, np.asarray(a, dtype=np.float32).ravel()))


def decode(text: str, shape: list[int]) -> np.ndarray:
    """encode's inverse: the float32 array of that shape, bit for bit."""
    return np.array(text.split(), dtype=np.float32).reshape(shape)


def export(model, path: str | Path, info: dict) -> Path:
    """Write an SB3 SAC actor's mean network (latent_pi's Linear layers, then mu) as one JSON file: `info` (how
    it was made) and "layers", each its weight [out, in] (torch's layout) and bias as text (encode), float32
    exactly."""
    import torch

    layers = [m for m in model.actor.latent_pi if isinstance(m, torch.nn.Linear)] + [model.actor.mu]
    weights = [layer.weight.detach().cpu().numpy() for layer in layers]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, "layers": [
        {"shape": list(w.shape), "w": encode(w), "b": encode(layer.bias.detach().cpu().numpy())}
        for w, layer in zip(weights, layers)]}, indent=1) + "\n")
    return path


def train(out: str | Path = "runs/controller", steps: int = 1_200_000, seed: int = 0, n_envs: int = 4,
          hidden: tuple[int, ...] = (128, 128), checkpoint_every: int = 25_000, log_every: int = 5_000,
          learning_starts: int = 10_000, noise: float = NOISE) -> Path:
    """Train the controller with SB3 SAC (one torch thread) on `direction_env`; resumable.

    `n_envs` envs are stepped together with one gradient step per step of all of them (updates = steps / n_envs).
    Every `checkpoint_every` steps OUT/model.zip, OUT/replay.pkl and OUT/state.json (steps, wall time) are
    written; running again resumes from them. OUT/log.csv gets a row every `log_every` steps. At the end the
    actor's mean network and how it was made go to OUT/ant_controller.json (`export`).
    """
    import os

    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv
    from tqdm.auto import tqdm

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    envs = DummyVecEnv([lambda: direction_env(noise) for _ in range(n_envs)])
    envs.seed(seed)
    state = json.loads((out / "state.json").read_text()) if (out / "model.zip").exists() else {"wall_s": 0.0}
    if "steps" in state:
        model = SAC.load(out / "model.zip", env=envs, device="cpu")
        model.load_replay_buffer(out / "replay.pkl")
        print(f"resuming from {out / 'model.zip'} at step {model.num_timesteps:,}")
    else:
        model = SAC("MlpPolicy", envs, buffer_size=steps, learning_starts=learning_starts, batch_size=256,
                    train_freq=1, gradient_steps=1, policy_kwargs={"net_arch": list(hidden)}, seed=seed,
                    device="cpu", verbose=0)

    class Progress(BaseCallback):
        """tqdm bar, CSV log (returns, speed along the command, falls), resumable checkpoints."""

        def _on_training_start(self) -> None:
            self.bar = tqdm(total=steps, initial=self.num_timesteps, unit="step", desc="controller SAC",
                            mininterval=10)
            self.start, self.wall0, self.mark = time.time(), state["wall_s"], (self.num_timesteps, time.time())
            self.ret, self.speed, self.len = np.zeros(n_envs), np.zeros(n_envs), np.zeros(n_envs)
            self.episodes: list[tuple[float, float, bool]] = []
            new = not (out / "log.csv").exists()
            self.file = open(out / "log.csv", "a", newline="")
            self.log = csv.writer(self.file)
            if new:
                self.log.writerow(["step", "wall_s", "steps_per_s", "episodes", "return", "speed", "fall_rate",
                                   "ent_coef"])

        def _on_step(self) -> bool:
            rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
            self.ret += rewards
            self.speed += [i["speed"] for i in infos]
            self.len += 1
            for k in np.flatnonzero(dones):
                self.episodes.append((self.ret[k], self.speed[k] / self.len[k], infos[k]["fallen"]))
                self.ret[k] = self.speed[k] = self.len[k] = 0
            self.bar.update(n_envs)
            if self.num_timesteps % log_every < n_envs:
                self._write()
            if self.num_timesteps % checkpoint_every < n_envs:
                self._save()
            return True

        def _write(self) -> None:
            now, (step0, t0) = time.time(), self.mark
            recent = np.array(self.episodes[-20:], dtype=float).reshape(-1, 3)
            ent = float(torch.exp(self.model.log_ent_coef.detach())) if self.model.log_ent_coef is not None else 0
            row = [self.num_timesteps, round(self.wall0 + now - self.start, 1), round((self.num_timesteps - step0) /
                   max(now - t0, 1e-9), 1), len(self.episodes)] + [round(float(v), 4) for v in
                   (recent.mean(0) if len(recent) else [np.nan] * 3)] + [round(ent, 5)]
            self.log.writerow(row)
            self.file.flush()
            self.bar.set_postfix(ret=row[4], speed=row[5], falls=row[6])
            self.mark = (self.num_timesteps, now)

        def _save(self) -> None:
            self.model.save(out / "model.tmp.zip")
            self.model.save_replay_buffer(out / "replay.tmp.pkl")
            os.replace(out / "model.tmp.zip", out / "model.zip")
            os.replace(out / "replay.tmp.pkl", out / "replay.pkl")
            wall = self.wall0 + time.time() - self.start
            (out / "state.json").write_text(json.dumps({"steps": self.num_timesteps, "wall_s": round(wall, 1)}))

        def _on_training_end(self) -> None:
            self._save()
            self.bar.close()
            self.file.close()

    remaining = steps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=Progress(), reset_num_timesteps=False)
    wall = json.loads((out / "state.json").read_text())["wall_s"]
    return export(model, out / "ant_controller.json", provenance(steps, seed, n_envs, hidden, wall))


def provenance(steps: int, seed: int, n_envs: int, hidden: tuple[int, ...], wall_s: float) -> dict:
    """How the weights were made: the command, seed, steps, wall time, hardware and library versions."""
    import os
    import platform
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return {"command": f"OMP_NUM_THREADS=1 python -m iqlkit controller train --steps {steps} --seed {seed} "
                       f"--n-envs {n_envs} --hidden {' '.join(map(str, hidden))}",
            "seed": seed, "steps": steps, "updates": steps // n_envs, "wall_s": wall_s,
            "hardware": f"{cpu}, {os.cpu_count()} cores, 1 torch thread",
            "reward": f"{VELOCITY_WEIGHT} v.d + {HEALTHY_REWARD} - {CTRL_WEIGHT} |a|^2; falls end episodes",
            "training_noise": NOISE, "resample_every": RESAMPLE_EVERY,
            "versions": {p: version(p) for p in ("torch", "stable-baselines3", "gymnasium", "mujoco", "numpy")}}


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


def direction_episode(weights: str, seed: int, steps: int, noise: float) -> tuple[float, bool]:
    """(mean speed along the command, fell) of one `direction_env` episode of `steps` steps with action noise."""
    policy = cached(("policy", weights), lambda: Controller(weights))
    env = cached(("direction", steps, noise), lambda: direction_env(noise, episode_steps=steps))
    obs, _ = env.reset(seed=seed)
    speeds, down = [], False
    for _ in range(steps):
        obs, _, down, truncated, info = env.step(policy(obs[:OBS_DIM], obs[OBS_DIM:]))
        speeds.append(info["speed"])
        if down or truncated:
            break
    return float(np.mean(speeds)), bool(down)


TARGETS = {"speed": (1.0, ">="), "fall_rate": (0.01, "<"), "umaze_success": (0.9, ">="),
           "umaze_success_noise": (0.8, ">="), "medium_success_noise": (0.8, ">=")}


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
