"""Policies the kit trains itself with stable-baselines3 SAC and ships as text: the AntMaze ant (iqlkit.envs.controller)
and the locomotion agents (iqlkit.envs.locomotion).

`train_sac` is one resumable SAC run: a tqdm bar, OUT/log.csv (returns and the env's own episode figures), and every
`checkpoint_every` steps a checkpoint (OUT/model.zip, OUT/replay.pkl, OUT/state.json) and a snapshot of the actor
(OUT/snapshots/<steps>.json). `export` writes an actor as one JSON file, its weights as text (float32 exactly, the
shortest decimals) next to how it was made; `TextPolicy` runs it in numpy, so generating data needs no
stable-baselines3: a = tanh(mu(s)) (the mean), or a = tanh(mu(s) + sigma(s) eps), eps ~ N(0, I) (a sample, when the
file holds the log-std head).
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

LOG_STD_RANGE = (-20.0, 2.0)  # stable-baselines3's clip of the actor's log-std


def encode(a: np.ndarray) -> str:
    """A float32 array as text: each number's shortest decimal that reads back to the same float32."""
    return " ".join(map(str, np.asarray(a, dtype=np.float32).ravel()))


def decode(text: str, shape: list[int]) -> np.ndarray:
    """encode's inverse: the float32 array of that shape, bit for bit."""
    return np.array(text.split(), dtype=np.float32).reshape(shape)


def _layer(layer) -> dict:
    weight = layer.weight.detach().cpu().numpy()
    return {"shape": list(weight.shape), "w": encode(weight), "b": encode(layer.bias.detach().cpu().numpy())}


def export(model, path: str | Path, info: dict) -> Path:
    """Write an SB3 SAC actor as one JSON file: `info` (how it was made), "layers" (latent_pi's Linear layers, then
    mu: the mean network) and "log_std" (the log-std head), each weight [out, in] (torch's layout) and bias as text."""
    import torch

    layers = [m for m in model.actor.latent_pi if isinstance(m, torch.nn.Linear)] + [model.actor.mu]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, "layers": [_layer(m) for m in layers],
                                "log_std": _layer(model.actor.log_std)}, indent=1) + "\n")
    return path


class TextPolicy:
    """An exported SAC actor in numpy: mean(obs) = tanh(W_k relu(... relu(W_1 obs + b_1) ...) + b_k), and sample(obs)
    = tanh(mu + sigma eps) with the log-std head. Input dimension `in_dim`, output `out_dim`, checked on loading."""

    def __init__(self, path: str | Path, in_dim: int | None = None, out_dim: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no policy weights at {path}: train them first (python -m iqlkit controller "
                                    f"train, or python -m iqlkit expert train)")
        try:
            meta = json.loads(path.read_text())
            # W [in, out] as a view of torch's [out, in]: the memory layout the shipped figures were measured with
            # (a matmul over another layout rounds differently, and a simulated robot amplifies it)
            self.layers = [(decode(m["w"], m["shape"]).T, decode(m["b"], m["shape"][:1])) for m in meta["layers"]]
            head = meta.get("log_std")
            self.log_std = None if head is None else (decode(head["w"], head["shape"]).T,
                                                      decode(head["b"], head["shape"][:1]))
            dims = [w.shape for w, _ in self.layers]
            if any(a[1] != b[0] for a, b in zip(dims, dims[1:])) or (in_dim or dims[0][0]) != dims[0][0] or (
                    out_dim or dims[-1][1]) != dims[-1][1]:
                raise ValueError(f"layer shapes {dims} do not map {in_dim} inputs to {out_dim} actions")
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path} is not a policy file written by iqlkit.envs.sac.export ({e}); retrain it, or "
                             f"restore it from git") from e
        self.info = {k: v for k, v in meta.items() if k not in ("layers", "log_std")}

    def _latent(self, obs: np.ndarray) -> np.ndarray:
        h = np.asarray(obs, dtype=np.float32)
        for w, b in self.layers[:-1]:
            h = np.maximum(h @ w + b, 0)
        return h

    def mean(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action tanh(mu(s)) in [-1, 1]: [..., act_dim]."""
        w, b = self.layers[-1]
        return np.tanh(self._latent(obs) @ w + b)

    def sample(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A stochastic action tanh(mu(s) + sigma(s) eps), as the SAC actor samples it: [..., act_dim]."""
        if self.log_std is None:
            raise ValueError("this policy file holds no log-std head (exported before it was kept): only its mean "
                             "acts")
        latent = self._latent(obs)
        (w, b), (ws, bs) = self.layers[-1], self.log_std
        std = np.exp(np.clip(latent @ ws + bs, *LOG_STD_RANGE))
        return np.tanh(latent @ w + b + std * rng.normal(size=std.shape).astype(np.float32))


def load_replay(path: str | Path):
    """The replay buffer a train_sac run keeps (OUT/replay.pkl): SB3's ReplayBuffer, [steps per env, n_envs, ...]."""
    from stable_baselines3.common.save_util import load_from_pkl

    return load_from_pkl(path)


def versions() -> dict[str, str]:
    """The versions of the libraries a trained policy's figures depend on."""
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "stable-baselines3", "gymnasium", "mujoco", "numpy")}


def hardware() -> str:
    """'<CPU model>, <n> cores, 1 torch thread' (what SAC trained on)."""
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, 1 torch thread"


def train_sac(make_env: Callable[[], object], out: str | Path, steps: int, provenance: Callable[[float], dict],
              seed: int = 0, n_envs: int = 4, hidden: tuple[int, ...] = (256, 256), updates_per_step: float = 0.5,
              gamma: float = 0.99, checkpoint_every: int = 25_000, log_every: int = 5_000,
              learning_starts: int = 10_000, stats: tuple[str, ...] = (), desc: str = "SAC") -> Path:
    """Train SB3 SAC (one torch thread) on `n_envs` copies of make_env() up to `steps` env steps; resumable.

    The envs step together, with n_envs x updates_per_step gradient steps after each step of all of them. `stats`:
    figures each env reports in info["episode_stats"] on an episode's last step, logged as their mean over the last
    20 episodes beside the return. provenance(wall_s) -> dict says how the policy was made (stored in every export).
    Returns OUT/policy.json, the final actor.
    """
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv
    from tqdm.auto import tqdm

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    envs = DummyVecEnv([make_env for _ in range(n_envs)])
    envs.seed(seed)
    state = json.loads((out / "state.json").read_text()) if (out / "model.zip").exists() else {"wall_s": 0.0}
    if "steps" in state:
        model = SAC.load(out / "model.zip", env=envs, device="cpu")
        model.load_replay_buffer(out / "replay.pkl")
        print(f"resuming from {out / 'model.zip'} at step {model.num_timesteps:,}")
    else:
        model = SAC("MlpPolicy", envs, buffer_size=steps + n_envs, learning_starts=learning_starts, batch_size=256,
                    train_freq=1, gradient_steps=max(1, round(n_envs * updates_per_step)), gamma=gamma,
                    policy_kwargs={"net_arch": list(hidden)}, seed=seed, device="cpu", verbose=0)

    class Progress(BaseCallback):
        """tqdm bar, CSV log (returns and the env's episode figures), resumable checkpoints and snapshots."""

        def _on_training_start(self) -> None:
            self.bar = tqdm(total=steps, initial=self.num_timesteps, unit="step", desc=desc, mininterval=10)
            self.start, self.wall0, self.mark = time.time(), state["wall_s"], (self.num_timesteps, time.time())
            self.ret = np.zeros(n_envs)
            self.episodes: list[list[float]] = []
            new = not (out / "log.csv").exists()
            self.file = open(out / "log.csv", "a", newline="")
            self.log = csv.writer(self.file)
            if new:
                self.log.writerow(["step", "wall_s", "steps_per_s", "episodes", "return", *stats, "ent_coef"])

        def _on_step(self) -> bool:
            self.ret += self.locals["rewards"]
            for k in np.flatnonzero(self.locals["dones"]):
                figures = self.locals["infos"][k].get("episode_stats", {})
                self.episodes.append([self.ret[k], *(float(figures.get(s, np.nan)) for s in stats)])
                self.ret[k] = 0
            self.bar.update(n_envs)
            if self.num_timesteps % log_every < n_envs:
                self._write()
            if self.num_timesteps % checkpoint_every < n_envs:
                self._save()
            return True

        def _write(self) -> None:
            now, (step0, t0) = time.time(), self.mark
            recent = np.array(self.episodes[-20:], dtype=float).reshape(-1, 1 + len(stats))
            means = recent.mean(0) if len(recent) else [np.nan] * (1 + len(stats))
            ent = float(torch.exp(self.model.log_ent_coef.detach())) if self.model.log_ent_coef is not None else 0
            row = [self.num_timesteps, round(self.wall0 + now - self.start, 1),
                   round((self.num_timesteps - step0) / max(now - t0, 1e-9), 1), len(self.episodes),
                   *(round(float(v), 4) for v in means), round(ent, 5)]
            self.log.writerow(row)
            self.file.flush()
            self.bar.set_postfix(dict(zip(["return", *stats], row[4:])))
            self.mark = (self.num_timesteps, now)

        def _save(self) -> None:
            self.model.save(out / "model.tmp.zip")
            self.model.save_replay_buffer(out / "replay.tmp.pkl")
            os.replace(out / "model.tmp.zip", out / "model.zip")
            os.replace(out / "replay.tmp.pkl", out / "replay.pkl")
            wall = round(self.wall0 + time.time() - self.start, 1)
            export(self.model, out / "snapshots" / f"{self.num_timesteps}.json", provenance(wall))
            (out / "state.json").write_text(json.dumps({"steps": self.num_timesteps, "wall_s": wall}))

        def _on_training_end(self) -> None:
            self._save()
            self.bar.close()
            self.file.close()

    remaining = steps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=Progress(), reset_num_timesteps=False)
    wall = json.loads((out / "state.json").read_text())["wall_s"]
    return export(model, out / "policy.json", provenance(wall))
