"""Policy extraction by AWR (paper Eq. 7) as weighted behaviour cloning: the weights, their statistics, and a study
of beta, concurrent vs post-hoc extraction and the policy's std, all on one critic per seed."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from iqlkit.compare import process_map
from iqlkit.data import Transitions
from iqlkit.evaluate import evaluate
from iqlkit.iql import IQL, Batch, IQLConfig
from iqlkit.pointmaze import TASKS, make_env


@torch.no_grad()
def advantages(agent: IQL, batch: Batch) -> torch.Tensor:
    """A(s, a) = Q_target(s, a) - V(s) on the batch's real (s, a) pairs, as the actor loss sees them."""
    return agent._target_q(batch.observations, batch.actions) - agent.value_net(batch.observations)


def clipped_weights(adv: torch.Tensor | np.ndarray, beta: float, clip: float = 100.0) -> torch.Tensor:
    """w = min(exp(beta A), clip) (Eq. 7 with the authors' clip); beta = 0 gives w = 1 (behaviour cloning)."""
    return torch.exp(beta * torch.as_tensor(adv, dtype=torch.float32)).clamp(max=clip)


def awr_weights(agent: IQL, batch: Batch, beta: float, clip: float = 100.0) -> torch.Tensor:
    """w = min(exp(beta (Q_target(s, a) - V(s))), clip) on the batch: the per-sample weights of the AWR loss."""
    return clipped_weights(advantages(agent, batch), beta, clip)


def clip_fraction(weights: torch.Tensor, clip: float = 100.0) -> float:
    """Fraction of samples whose weight sits at the clip: mean(w >= clip)."""
    return float((weights >= clip).float().mean())


def effective_sample_size(weights: torch.Tensor) -> float:
    """Normalised effective sample size (sum w)^2 / (N sum w^2): 1 for equal weights, 1/N when one dominates."""
    w = weights.double()
    return float(w.sum() ** 2 / (len(w) * w.square().sum()))


@torch.no_grad()
def policy_std(agent: IQL, obs: np.ndarray | torch.Tensor) -> np.ndarray:
    """sigma(s) = exp(log_std(s)) of the Gaussian policy, [n, act_dim]."""
    _, log_std = agent.actor(agent._tensor(obs))
    return log_std.exp().cpu().numpy()


@dataclass
class ExtractionRun:
    """One critic (one seed): the success of its concurrently trained actor, and of fresh actors extracted post hoc."""

    seed: int
    config: IQLConfig
    concurrent: float  # success rate of the actor trained alongside Q and V (the normal fit)
    posthoc: dict[float, float]  # beta -> success rate of a fresh actor trained on the final, frozen Q and V
    agent: IQL  # the fitted agent with its concurrent actor


def run_extraction(config: IQLConfig, seed: int, betas: tuple[float, ...], data: Transitions, task: str,
                   eval_episodes: int) -> ExtractionRun:
    """fit(data, config, seed) and evaluate; then per beta: reset_actor + extract_policy for max_steps, evaluate."""
    from iqlkit.train import extract_policy, fit

    torch.set_num_threads(1)
    make = partial(make_env, TASKS[task], True)

    def success(agent: IQL) -> float:
        return evaluate(agent.act, make, n_episodes=eval_episodes, n_envs=10, seed=seed).success_rate

    agent = fit(data, config, seed=seed, progress=False)
    posthoc = {}
    for beta in betas:
        fresh = copy.deepcopy(agent)
        torch.manual_seed(seed)
        fresh.reset_actor()
        posthoc[beta] = success(extract_policy(fresh, data, config.max_steps, seed=seed, beta=beta, progress=False))
    return ExtractionRun(seed, config, success(agent), posthoc, agent)


def extraction_study(data: Transitions, jobs: list[tuple[IQLConfig, int, tuple[float, ...]]], task: str,
                     eval_episodes: int = 50, workers: int | None = None) -> list[ExtractionRun]:
    """run_extraction for every (config, seed, post-hoc betas) job, in `workers` processes (default: one per core)."""
    job = partial(run_extraction, data=data.to("cpu"), task=task, eval_episodes=eval_episodes)
    return process_map(job, jobs, workers)
