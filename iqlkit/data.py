"""Offline datasets as tensors on the training device, the authors' preprocessing, and a Minari loader."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from iqlkit.iql import Batch


@dataclass(frozen=True)
class Transitions:
    """(s, a, r, s', terminal) per step plus `episode_ends` (last step of each episode: terminal or time-out)."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor
    episode_ends: torch.Tensor

    @staticmethod
    def from_arrays(observations, actions, rewards, next_observations, terminals, episode_ends=None,
                    device: str | torch.device = "cpu") -> "Transitions":
        """Check shapes and move float32 copies to `device`; episode_ends defaults to the terminals."""
        arrays = dict(observations=observations, actions=actions, rewards=rewards,
                      next_observations=next_observations, terminals=terminals,
                      episode_ends=terminals if episode_ends is None else episode_ends)
        t = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device) for k, v in arrays.items()}
        n = len(t["observations"])
        for k, v in t.items():
            if len(v) != n:
                raise ValueError(f"{k} has {len(v)} rows but observations has {n}")
        if t["observations"].ndim != 2 or t["actions"].ndim != 2:
            raise ValueError("observations and actions must be 2-D [N, dim]; flatten dict observations first")
        if t["next_observations"].shape != t["observations"].shape:
            raise ValueError(f"next_observations {tuple(t['next_observations'].shape)} must match observations "
                             f"{tuple(t['observations'].shape)}")
        for k in ("rewards", "terminals", "episode_ends"):
            if t[k].ndim != 1:
                raise ValueError(f"{k} must be 1-D [N]; got shape {tuple(t[k].shape)}")
        return Transitions(**t)

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def to(self, device: str | torch.device) -> "Transitions":
        """The same data on another device."""
        return Transitions(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """A uniform minibatch; indices are drawn on the data's device (no host round trip)."""
        idx = torch.randint(len(self), (batch_size,), device=self.observations.device, generator=generator)
        return Batch(self.observations[idx], self.actions[idx], self.rewards[idx], self.next_observations[idx],
                     self.terminals[idx])

    def episode_ids(self) -> torch.Tensor:
        """Episode index of every step (a step after an episode end starts a new one)."""
        ends = self.episode_ends.clone()
        ends[-1] = 1.0  # an unfinished last episode still counts as one
        return torch.cumsum(ends, 0) - ends

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode: sum of its rewards."""
        ids = self.episode_ids().long()
        return torch.zeros(int(ids[-1]) + 1, device=ids.device).index_add_(0, ids, self.rewards)

    def select(self, keep: torch.Tensor) -> "Transitions":
        """The steps where the boolean mask `keep` is true."""
        return Transitions(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})


def shift_rewards(data: Transitions, shift: float = -1.0) -> Transitions:
    """r <- r + shift; the authors' AntMaze preprocessing is r - 1 (so every step before the goal costs 1)."""
    return replace(data, rewards=data.rewards + shift)


def scale_by_return_range(data: Transitions, scale: float = 1000.0) -> Transitions:
    """r <- r / (max episode return - min episode return) * 1000 (the authors' locomotion preprocessing)."""
    returns = data.episode_returns()
    spread = float(returns.max() - returns.min())
    if spread <= 0:
        raise ValueError("all episodes have the same return: the return range is 0, nothing to scale by")
    return replace(data, rewards=data.rewards / spread * scale)


def clip_actions(data: Transitions, limit: float = 1 - 1e-5) -> Transitions:
    """a <- clip(a, -limit, limit), so log pi(a|s) stays finite at the action bounds (authors' code)."""
    return replace(data, actions=data.actions.clamp(-limit, limit))


@dataclass(frozen=True)
class ObsNorm:
    """Observation normalisation (s - mean) / std; evaluation must apply the same one as training."""

    mean: torch.Tensor
    std: torch.Tensor

    def __call__(self, obs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """(s - mean) / std, for numpy (evaluation) or torch (training) inputs."""
        if isinstance(obs, torch.Tensor):
            return (obs - self.mean.to(obs.device)) / self.std.to(obs.device)
        return (obs - self.mean.cpu().numpy()) / self.std.cpu().numpy()


def normalize_observations(data: Transitions, eps: float = 1e-3) -> tuple[Transitions, ObsNorm]:
    """Standardise s and s' with the dataset's mean and std (+ eps); returns the normaliser for evaluation."""
    norm = ObsNorm(data.observations.mean(0), data.observations.std(0) + eps)
    return replace(data, observations=norm(data.observations), next_observations=norm(data.next_observations)), norm


def top_fraction(data: Transitions, fraction: float = 0.1) -> Transitions:
    """The episodes whose returns are in the top `fraction` (top-10% BC's data)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    returns = data.episode_returns()
    n_keep = max(1, int(round(fraction * len(returns))))
    best = torch.zeros(len(returns), dtype=torch.bool, device=returns.device)
    best[torch.argsort(returns, descending=True)[:n_keep]] = True
    return data.select(best[data.episode_ids().long()])


def preprocess_rewards(data: Transitions, how: str) -> Transitions:
    """Apply a config's reward choice: 'none', 'minus_one' (r - 1) or 'return_range' (r / range * 1000)."""
    if how == "none":
        return data
    if how == "minus_one":
        return shift_rewards(data, -1.0)
    if how == "return_range":
        return scale_by_return_range(data)
    raise ValueError(f"unknown reward preprocessing {how!r}: use 'none', 'minus_one' or 'return_range'")


def minari_root() -> str:
    """Where Minari keeps datasets: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return os.environ.get("MINARI_DATASETS_PATH", os.path.join(os.path.expanduser("~"), ".minari", "datasets"))


def open_minari(dataset_id: str):
    """minari.load_dataset(id) for a dataset on disk, or a FileNotFoundError that says how to download it."""
    import minari

    if dataset_id not in minari.list_local_datasets():
        raise FileNotFoundError(
            f"Minari dataset {dataset_id!r} is not on disk (looked in {minari_root()}). Download it with:\n"
            f'    pip install "minari[all]" && minari download {dataset_id}\n'
            f"or point MINARI_DATASETS_PATH at the folder that holds it.")
    return minari.load_dataset(dataset_id)


def flatten_observations(obs, goal_conditioned: bool = True) -> np.ndarray:
    """Box observations as they are; dict ones as [position] + observation (+ desired_goal when goal_conditioned).

    The position (`achieved_goal`, x-y) is prepended when `observation` does not start with it: Minari's AntMaze
    `observation` (27) leaves the ant's x-y out (D4RL's 29 had it), PointMaze's starts with it. The rule reads
    only the observation itself, so loading and evaluation always agree.
    """
    if not isinstance(obs, dict):
        return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
    if "observation" not in obs:
        raise ValueError(f"dict observations need an 'observation' key; got keys {sorted(obs)}")
    parts = [np.asarray(obs["observation"], dtype=np.float32)]
    if "achieved_goal" in obs:
        position = np.asarray(obs["achieved_goal"], dtype=np.float32)
        if not np.allclose(parts[0][..., : position.shape[-1]], position):
            parts.insert(0, position)
    if goal_conditioned and "desired_goal" in obs:
        parts.append(np.asarray(obs["desired_goal"], dtype=np.float32))
    return np.concatenate(parts, -1)


def load_minari(dataset_or_id, goal_conditioned: bool = True, terminate_on_success: bool = False,
                device: str | torch.device = "cpu", verbose: bool = True) -> Transitions:
    """Transitions from a local Minari dataset (an id or a loaded MinariDataset), Box or dict observations.

    goal_conditioned: input = [position] + observation + desired_goal for dict observations (goals differ per
    episode); see flatten_observations for when the position is added.
    terminate_on_success: the first step with reward > 0 becomes terminal and the rest of the episode is
    dropped (Minari's maze tasks are continuing: the agent sits at the goal collecting reward until time-out).
    Time-outs (truncations) end episodes but are never terminal.
    """
    dataset = open_minari(dataset_or_id) if isinstance(dataset_or_id, str) else dataset_or_id
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "end")}
    total, successes = 0, 0
    for ep in dataset.iterate_episodes():
        obs = flatten_observations(ep.observations, goal_conditioned)
        rew = np.asarray(ep.rewards, dtype=np.float32)
        term = np.asarray(ep.terminations, dtype=np.float32)
        n = len(rew)
        total += n
        if terminate_on_success and np.any(rew > 0):
            n = int(np.argmax(rew > 0)) + 1
            term = term.copy()
            term[n - 1] = 1.0
            successes += 1
        end = np.zeros(n, dtype=np.float32)
        end[-1] = 1.0
        for key, value in zip(parts, (obs[:n], ep.actions[:n], rew[:n], obs[1:n + 1], term[:n], end)):
            parts[key].append(np.asarray(value, dtype=np.float32))
    if not parts["obs"]:
        raise ValueError("the dataset has no episodes")
    data = Transitions.from_arrays(*(np.concatenate(parts[k]) for k in parts), device=device)
    if verbose:
        note = f", {successes} episodes cut at their first success" if terminate_on_success else ""
        print(f"loaded {len(data):,} of {total:,} transitions from {getattr(dataset, 'id', dataset_or_id)} "
              f"({int(data.episode_ends.sum())} episodes, obs dim {data.obs_dim}, act dim {data.act_dim}{note})")
    return data
