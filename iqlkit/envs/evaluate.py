"""Roll a policy out in vectorised gymnasium envs: returns, success rate, and a normalised score where references exist."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from iqlkit.envs.data import flatten_observations


@dataclass(frozen=True)
class EvalResult:
    """Per-episode returns and successes (an episode succeeds if any step reports info['success'])."""

    returns: np.ndarray
    successes: np.ndarray
    normalized: np.ndarray | None = None

    @property
    def success_rate(self) -> float:
        return float(self.successes.mean())

    def summary(self) -> dict[str, float]:
        """Means for logging: success rate, mean return, mean normalised score (when references exist)."""
        out = {"success_rate": self.success_rate, "return": float(self.returns.mean())}
        if self.normalized is not None:
            out["normalized_score"] = float(self.normalized.mean())
        return out


def normalized_score(returns: np.ndarray, ref_min: float, ref_max: float) -> np.ndarray:
    """100 (R - R_min) / (R_max - R_min), Minari's and D4RL's normalisation."""
    return 100.0 * (np.asarray(returns) - ref_min) / (ref_max - ref_min)


def reference_scores(dataset) -> tuple[float, float] | None:
    """(ref_min_score, ref_max_score) from a Minari dataset's metadata, or None where it has none."""
    meta = dataset.storage.metadata
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    return None if lo is None or hi is None else (float(lo), float(hi))


def evaluate(act: Callable[[np.ndarray], np.ndarray], make_env: Callable[[], object], n_episodes: int = 100,
             n_envs: int = 8, seed: int = 0, obs_fn: Callable = flatten_observations,
             references: tuple[float, float] | None = None, vector: str = "sync") -> EvalResult:
    """Run n_episodes in waves of n_envs envs stepped together; one batched act(obs) call per step.

    act: batch of flat observations -> batch of actions (e.g. agent.act); obs_fn flattens (and normalises) the
    env's observations exactly as training did. vector: 'sync' (one process) or 'async' (one process per env).
    """
    import gymnasium as gym

    if n_episodes < 1 or n_envs < 1:
        raise ValueError(f"n_episodes and n_envs must be >= 1; got {n_episodes}, {n_envs}")
    n_envs = min(n_envs, n_episodes)
    Vector = gym.vector.AsyncVectorEnv if vector == "async" else gym.vector.SyncVectorEnv
    envs = Vector([make_env] * n_envs)  # a finished env auto-resets on its next step; we ignore it until the wave ends
    returns, successes = [], []
    try:
        for wave in range(0, n_episodes, n_envs):
            obs, _ = envs.reset(seed=seed + wave)
            live = np.ones(n_envs, dtype=bool)
            total, success = np.zeros(n_envs), np.zeros(n_envs, dtype=bool)
            while live.any():
                obs, reward, terminated, truncated, info = envs.step(act(obs_fn(obs)))
                total += np.where(live, reward, 0.0)
                if "success" in info:
                    success |= live & np.asarray(info["success"], dtype=bool)
                live &= ~(terminated | truncated)
            keep = min(n_envs, n_episodes - wave)
            returns.append(total[:keep])
            successes.append(success[:keep])
    finally:
        envs.close()
    returns = np.concatenate(returns)
    norm = normalized_score(returns, *references) if references is not None else None
    return EvalResult(returns, np.concatenate(successes), norm)
