"""Offline datasets as tensors on the training device: minibatches, the authors' preprocessing, checks of what comes
in, and a Minari loader (with a cache of the flattened arrays beside the dataset)."""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, Protocol, Sequence

import numpy as np
import torch

from iqlkit.envs.maze import first_success

ACTION_LIMIT = 1 - 1e-5  # the authors clip dataset actions to +-(1 - 1e-5): log pi(a|s) stays finite at the bounds


class Batch(NamedTuple):
    """A minibatch of transitions ([S, B, ...] for S agents, or [B, ...]); `terminals` are true ends, never time-outs."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor


def sample_indices(n: int, shape: tuple[int, ...], generators: Sequence[torch.Generator] | torch.Generator | None,
                   device: torch.device) -> torch.Tensor:
    """Uniform indices in [0, n) of `shape` = (S, B): row k from generators[k] when a list is given (so agent k draws
    what a run of its own would), else all from one generator (or torch's global one)."""
    if isinstance(generators, (list, tuple)):
        if len(generators) != shape[0]:
            raise ValueError(f"need one generator per agent ({shape[0]}); got {len(generators)}")
        return torch.stack([torch.randint(n, shape[1:], device=device, generator=g) for g in generators])
    return torch.randint(n, shape, device=device, generator=generators)


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
        """Check shapes and values (check_transitions) and move float32 copies to `device`; episode_ends defaults to
        the terminals."""
        arrays = dict(observations=observations, actions=actions, rewards=rewards,
                      next_observations=next_observations, terminals=terminals,
                      episode_ends=terminals if episode_ends is None else episode_ends)
        t = {k: torch.as_tensor(np.asarray(v, dtype=np.float32), device=device) for k, v in arrays.items()}
        check_transitions(t)
        return Transitions(**t)

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    @property
    def device(self) -> torch.device:
        return self.observations.device

    def to(self, device: str | torch.device) -> "Transitions":
        """The same data on another device."""
        return Transitions(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @cached_property
    def packed(self) -> torch.Tensor:
        """Each step as one row [s, a, r, s', terminal]: a minibatch is one gather (built once, on first use)."""
        return torch.cat([self.observations, self.actions, self.rewards[:, None], self.next_observations,
                          self.terminals[:, None]], 1)

    def batch(self, idx: torch.Tensor) -> Batch:
        """The steps at indices `idx` (any shape), gathered at once from the packed rows."""
        rows, o, a = self.packed[idx], self.obs_dim, self.act_dim
        return Batch(rows[..., :o], rows[..., o: o + a], rows[..., o + a], rows[..., o + a + 1: -1], rows[..., -1])

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """A uniform minibatch [B, ...]; indices are drawn on the data's device (no host round trip)."""
        return self.batch(torch.randint(len(self), (batch_size,), device=self.device, generator=generator))

    def sample_agents(self, n_agents: int, batch_size: int,
                      generators: Sequence[torch.Generator] | torch.Generator | None = None) -> Batch:
        """One uniform minibatch per agent: [S, B, ...] (see sample_indices)."""
        return self.batch(sample_indices(len(self), (n_agents, batch_size), generators, self.device))

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

    def fingerprint(self) -> dict:
        """What identifies the data a run trained on: size, dims and a hash of every 997th row (cheap, on the CPU)."""
        rows = self.packed[:: max(1, len(self) // 997)].detach().to("cpu", torch.float64).numpy()
        return {"steps": len(self), "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "sha1": hashlib.sha1(np.round(rows, 5).tobytes()).hexdigest()[:16]}


def check_transitions(t: dict[str, torch.Tensor], where: str = "the data") -> None:
    """Shapes agree, no NaN or inf, and at least one step: else a ValueError that says which field and where."""
    n = len(t["observations"])
    if n == 0:
        raise ValueError(f"{where} has no steps: check the dataset id, or the cut at the first success "
                         "(terminate_on_success) that may have removed everything")
    for k, v in t.items():
        if len(v) != n:
            raise ValueError(f"{k} has {len(v)} rows but observations has {n}")
    if t["observations"].ndim != 2 or t["actions"].ndim != 2:
        raise ValueError(f"observations and actions must be 2-D [N, dim]; got {tuple(t['observations'].shape)} and "
                         f"{tuple(t['actions'].shape)} (flatten dict observations first; IQL needs continuous "
                         "actions as float vectors)")
    if t["next_observations"].shape != t["observations"].shape:
        raise ValueError(f"next_observations {tuple(t['next_observations'].shape)} must match observations "
                         f"{tuple(t['observations'].shape)}")
    for k in ("rewards", "terminals", "episode_ends"):
        if t[k].ndim != 1:
            raise ValueError(f"{k} must be 1-D [N]; got shape {tuple(t[k].shape)}")
    for k, v in t.items():
        bad = ~torch.isfinite(v)
        if bad.any():
            row = int(torch.nonzero(bad)[0, 0])
            episode = int(t["episode_ends"][:row].sum())
            raise ValueError(f"{where}: {k} has {int(bad.sum())} NaN or infinite values (first at step {row}, in "
                             f"episode {episode}); remove or repair those steps before training")


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


def clip_actions(data: Transitions, limit: float = ACTION_LIMIT) -> Transitions:
    """a <- clip(a, -limit, limit), so log pi(a|s) stays finite at the action bounds (authors' code); actions
    outside [-1, 1] are refused: the policy's mean is a tanh, so it could never reach them."""
    worst = float(data.actions.abs().max())
    if worst > 1 + 1e-4:
        raise ValueError(f"the data's actions reach {worst:.3g}, outside [-1, 1] (the policy's tanh mean cannot "
                         "produce them): rescale them to [-1, 1] first (e.g. a / max|a| for a symmetric box), and "
                         "rescale the policy's actions back when you run it")
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


class RewardChoice(Protocol):
    """What prepare reads of a config (an iqlkit.engine.iql.IQLConfig)."""

    reward: str


def prepare(data: Transitions, config: RewardChoice) -> Transitions:
    """The authors' preprocessing a config implies: actions clipped to +-(1 - 1e-5), then its reward choice."""
    return preprocess_rewards(clip_actions(data), config.reward)


def minari_root() -> str:
    """Where Minari keeps datasets: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return os.environ.get("MINARI_DATASETS_PATH", os.path.join(os.path.expanduser("~"), ".minari", "datasets"))


WRITING = ".iqlkit-writing-"  # the prefix of a dataset being written, beside the datasets folder


def write_minari(dataset_id: str, buffers: list, **kwargs):
    """minari.create_dataset_from_buffers(dataset_id, buffers, **kwargs), written into a folder of its own beside
    the datasets folder and moved into place only when complete: a write interrupted at any moment leaves no half
    dataset that loads, and an older dataset of that id stays until the new one is whole. Returns the dataset."""
    import shutil
    import tempfile

    import minari

    root = Path(minari_root())
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.parent.glob(f"{WRITING}*"):  # folders of writes that were killed (their process is gone)
        pid = stale.name.removeprefix(WRITING).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{WRITING}{os.getpid()}-", dir=root.parent))
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp)
    try:
        minari.create_dataset_from_buffers(dataset_id, buffers, **kwargs)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = before
    final = root / dataset_id
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = tmp / "replaced"
        os.replace(final, old)  # the old dataset leaves in one step, then the new one arrives in one step
    os.replace(tmp / dataset_id, final)
    shutil.rmtree(tmp, ignore_errors=True)
    return minari.load_dataset(dataset_id)


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


CACHE_VERSION = 1  # bump when load_minari's output for the same dataset and options changes


def _cache_file(dataset, goal_conditioned: bool, terminate_on_success: bool) -> Path | None:
    """Where load_minari keeps the flattened arrays of a dataset on disk: <dataset>/iqlkit_cache/<key>.npz, the key
    naming the options and the size and time of every data file (a changed dataset gets a new key)."""
    data_path = getattr(getattr(dataset, "storage", None), "data_path", None)
    if data_path is None or not Path(data_path).is_dir():
        return None
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(Path(data_path).iterdir())]
    key = hashlib.sha1(repr((CACHE_VERSION, stamp, goal_conditioned, terminate_on_success)).encode()).hexdigest()
    return Path(data_path).parent / "iqlkit_cache" / f"{key[:16]}.npz"


def _read_episodes(dataset, goal_conditioned: bool, terminate_on_success: bool) -> dict[str, np.ndarray]:
    """Every episode flattened and concatenated: obs, act, rew, next, term, end (float32), plus the raw step count
    and the number of episodes cut at their first success."""
    from gymnasium.spaces import Box

    if not isinstance(dataset.action_space, Box):
        raise ValueError(f"IQL in this kit needs continuous actions (a Box action space); "
                         f"{getattr(dataset, 'id', 'the dataset')} has {dataset.action_space}")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "end")}
    total, successes = 0, 0
    for ep in dataset.iterate_episodes():
        obs = flatten_observations(ep.observations, goal_conditioned)
        rew = np.asarray(ep.rewards, dtype=np.float32)
        term = np.asarray(ep.terminations, dtype=np.float32)
        n = len(rew)
        total += n
        first = first_success(rew)
        if terminate_on_success and first >= 0:
            n = first + 1
            term = term.copy()
            term[n - 1] = 1.0
            successes += 1
        end = np.zeros(n, dtype=np.float32)
        end[-1] = 1.0
        for key, value in zip(parts, (obs[:n], ep.actions[:n], rew[:n], obs[1:n + 1], term[:n], end)):
            parts[key].append(np.asarray(value, dtype=np.float32))
    if not parts["obs"]:
        raise ValueError(f"{getattr(dataset, 'id', 'the dataset')} has no episodes")
    return {**{k: np.concatenate(v) for k, v in parts.items()}, "total": np.array(total),
            "successes": np.array(successes)}


def load_minari(dataset_or_id, goal_conditioned: bool = True, terminate_on_success: bool = False,
                device: str | torch.device = "cpu", verbose: bool = True, cache: bool = True) -> Transitions:
    """Transitions from a local Minari dataset (an id or a loaded MinariDataset), Box or dict observations.

    goal_conditioned: input = [position] + observation + desired_goal for dict observations (goals differ per
    episode); see flatten_observations for when the position is added.
    terminate_on_success: the first step with reward > 0 becomes terminal and the rest of the episode is
    dropped (Minari's maze tasks are continuing: the agent sits at the goal collecting reward until time-out).
    Time-outs (truncations) end episodes but are never terminal.
    cache: keep the flattened arrays beside the dataset (<dataset>/iqlkit_cache/), so the next load skips the
    per-episode reading (minutes for thousands of episodes on a busy laptop); a changed dataset is read afresh.
    """
    dataset = open_minari(dataset_or_id) if isinstance(dataset_or_id, str) else dataset_or_id
    name = getattr(dataset, "id", dataset_or_id)
    path = _cache_file(dataset, goal_conditioned, terminate_on_success) if cache else None
    arrays = None
    if path is not None and path.exists():
        try:
            with np.load(path) as f:
                arrays = dict(f)
        except (OSError, ValueError, EOFError):  # a broken cache is read afresh and rewritten
            arrays = None
    if arrays is None:
        arrays = _read_episodes(dataset, goal_conditioned, terminate_on_success)
        if path is not None:
            try:
                path.parent.mkdir(exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, **arrays)
                tmp.replace(path)
            except OSError as e:  # a read-only dataset folder: no cache, same data
                warnings.warn(f"could not cache {name}'s arrays in {path.parent}: {e}", stacklevel=2)
    t = {k: torch.as_tensor(arrays[key], device=device) for k, key in
         zip(("observations", "actions", "rewards", "next_observations", "terminals", "episode_ends"),
             ("obs", "act", "rew", "next", "term", "end"))}
    check_transitions(t, where=str(name))
    data = Transitions(**t)
    if verbose:
        note = f", {int(arrays['successes'])} episodes cut at their first success" if terminate_on_success else ""
        print(f"loaded {len(data):,} of {int(arrays['total']):,} transitions from {name} "
              f"({int(data.episode_ends.sum())} episodes, obs dim {data.obs_dim}, act dim {data.act_dim}{note})")
    return data
