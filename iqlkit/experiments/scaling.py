"""Return scaling on the paper's locomotion rows (notebook 09): what IQL's r <- r 1000 / (max R - min R) does to V, to
the advantages and to the AWR weights min(exp(beta A), 100).

The preprocessing, the update, the advantage and the weight are the engine's (iqlkit.envs.data.preprocess_rewards,
iqlkit.engine.train.fit_many, IQL.advantage, iqlkit.engine.iql.awr_weight); this module trains two critics that differ
only in the reward choice and reads V and A off them. Scores move between two reference scales (the kit's own random
and expert returns, and D4RL's) through iqlkit.envs.evaluate.normalized_score.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from iqlkit.engine.iql import IQLConfig, awr_weight
from iqlkit.engine.train import fit_many
from iqlkit.envs.data import Transitions, prepare, preprocess_rewards
from iqlkit.envs.evaluate import normalized_score
from iqlkit.experiments.extraction import clip_fraction
from iqlkit.parallel import process_map

REWARDS = ("none", "return_range")  # the two critics of the study: raw rewards, and the locomotion preset's scaling


def return_range(data: Transitions) -> float:
    """max R - min R over the data's episode returns R (undiscounted): what the locomotion preprocessing divides by."""
    returns = data.episode_returns()
    return float(returns.max() - returns.min())


def reward_factor(data: Transitions, how: str) -> float:
    """c in r <- c r as preprocess_rewards applies the reward choice `how` ('none': 1, 'return_range': 1000 / (max R -
    min R)), read off its output: the ratio of the return ranges after and before."""
    if how not in REWARDS:
        raise ValueError(f"the study compares {REWARDS}; got {how!r}")
    return return_range(preprocess_rewards(data, how)) / return_range(data)


def clipped_share(advantages: np.ndarray | torch.Tensor, beta: float, clip: float = 100.0) -> float:
    """Share of AWR weights at the clip: mean(min(exp(beta A), clip) >= clip) (Eq. 7 with the authors' clip)."""
    return clip_fraction(awr_weight(advantages, beta, clip), clip)


def clipped_shares(advantages: np.ndarray | torch.Tensor, factors: Sequence[float], beta: float,
                   clip: float = 100.0) -> np.ndarray:
    """clipped_share of the advantages c A for each factor c: a critic trained on rewards c r has advantages c A
    (Q and V are linear in the rewards at their fixed point), so this is the clipped share at beta c."""
    advantages = torch.as_tensor(advantages, dtype=torch.float32)
    return np.array([clipped_share(c * advantages, beta, clip) for c in factors])


def rescale_score(score: np.ndarray | float, refs: tuple[float, float], to: tuple[float, float]) -> np.ndarray:
    """A normalised score on the scale of `refs` (random, expert returns) as the score of the same return on the
    scale `to`: R = R_min + score (R_max - R_min) / 100, then 100 (R - R'_min) / (R'_max - R'_min)."""
    returns = refs[0] + np.asarray(score, dtype=float) * (refs[1] - refs[0]) / 100.0
    return normalized_score(returns, *to)


@dataclass(frozen=True)
class Critic:
    """One critic of the study: its reward choice and factor c, V(s) and A(s, a) = Q_target(s, a) - V(s) at the
    data's (s, a) (on the scale it was trained on), the mean V of the batches over training, and its wall time."""

    reward: str
    factor: float
    values: np.ndarray
    advantages: np.ndarray
    v_mean: np.ndarray  # [log points, 2]: update step, mean V of the minibatches since the last log point
    seconds: float


def train_critic(data: Transitions, reward: str, steps: int, seed: int = 0, config: IQLConfig | None = None,
                 log_every: int = 250) -> Critic:
    """IQL (config, default the locomotion preset) trained `steps` updates on `data` with the reward choice `reward`
    ('none' or 'return_range'), then V and A read at every (s, a) of the data (actions clipped as in training)."""
    torch.set_num_threads(1)
    run = replace(config or IQLConfig.preset("locomotion"), reward=reward)
    start = time.perf_counter()
    agent, rows = fit_many(data, run, [seed], progress=False, steps=steps, log_every=min(log_every, steps),
                           agent_columns=False)
    seconds = time.perf_counter() - start
    seen = prepare(data, run)
    return Critic(reward, reward_factor(data, reward), agent.value(seen.observations),
                  agent.advantage(seen.observations, seen.actions).cpu().numpy(),
                  np.array([[r["step"], r["v_mean"]] for r in rows]), seconds)


def scaling_study(data: Transitions, steps: int, seed: int = 0, config: IQLConfig | None = None,
                  workers: int | None = 1) -> dict[str, Critic]:
    """The two critics, reward 'none' and 'return_range', otherwise the same (config, seed, minibatches), each
    trained `steps` updates; side by side in `workers` processes."""
    critics = process_map(train_critic, [(data, reward, steps, seed, config) for reward in REWARDS], workers)
    return dict(zip(REWARDS, critics))
