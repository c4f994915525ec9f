"""Policy extraction after value learning: AWR steps of the actor alone against frozen Q and V (post hoc), and a
study of concurrent vs post-hoc extraction over beta, one critic per seed (notebook 05)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import torch
from tqdm.auto import tqdm

from iqlkit.data import Transitions, prepare
from iqlkit.evaluate import evaluate
from iqlkit.iql import IQL, IQLConfig
from iqlkit.parallel import process_map
from iqlkit.pointmaze import TASKS, make_env


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
    from iqlkit.train import fit

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
