"""Policy extraction after value learning (notebook 05): the statistics of the AWR weights (paper Eq. 7, read as
weighted behaviour cloning) and of the policy's std, AWR steps of the actor alone against frozen Q and V (post
hoc), and a study of concurrent vs post-hoc extraction over beta, one critic per seed. The advantage and the weight
themselves are the engine's: IQL.advantage, iqlkit.engine.iql.awr_weight."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.envs.data import Transitions, prepare
from iqlkit.envs.evaluate import evaluate
from iqlkit.envs.pointmaze import TASKS, make_env
from iqlkit.parallel import process_map


def clip_fraction(weights: torch.Tensor, clip: float = 100.0) -> float:
    """Fraction of samples whose weight sits at the clip: mean(w >= clip)."""
    return float((weights >= clip).float().mean())


def effective_sample_size(weights: torch.Tensor) -> float:
    """Normalised effective sample size (sum w)^2 / (N sum w^2): 1 for equal weights, 1/N when one dominates."""
    w = weights.double()
    return float(w.sum() ** 2 / (len(w) * w.square().sum()))


@torch.no_grad()
def policy_std(agent: IQL, obs: np.ndarray | torch.Tensor) -> np.ndarray:
    """sigma(s) = exp(log_std(s)) of the Gaussian policy: [n, act_dim] for one agent, else [S, n, act_dim]."""
    (x,), squeeze = agent.as_inputs(obs)
    _, log_std = agent.actor(x)
    return (log_std[0] if squeeze else log_std).exp().cpu().numpy()


def extract_policy(agent: IQL, data: Transitions, steps: int, seed: int = 0, beta: float | None = None,
                   progress: bool = True) -> IQL:
    """Post-hoc extraction: `steps` AWR updates (Eq. 7) of the actor alone against the agent's frozen Q and V.

    beta, if given, replaces every agent's inverse temperature for these updates (and stays in agent.configs).
    """
    if beta is not None:
        agent.set_beta(beta)
    data = prepare(data, agent.config).to(agent.device)
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    for _ in tqdm(range(steps), disable=not progress, desc="AWR", unit="step"):
        agent.update_actor(data.sample_agents(agent.n_agents, agent.config.batch_size, generator))
    return agent


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
    from iqlkit.engine.train import fit

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
