"""What changes as tau -> 1: diagnostics of the expectile V and the AWR weights, measured on a fixed probe batch.

Probe(data)(learner) returns, per agent, on the same probe states and actions (so agents compare directly):
  pos_frac   share of residuals u = Q_target(s, a) - V(s) above 0: the samples that carry weight tau (the rest 1 - tau)
  v_se       standard error of a minibatch's expectile, sqrt(E[w^2 u^2] / B) / E[w] with w = |tau - 1(u < 0)|
             (the M-estimator sandwich formula): how far one minibatch's V target wanders
  adv_mean, adv_std   mean and spread of the advantages A = u that the actor weighs
  ess        effective sample share of the AWR weights min(exp(beta A), clip): (sum w)^2 / (B sum w^2)
  clip_frac  share of AWR weights at the clip
  v_probe    mean V over the probe states (compare agents of one seed: V_tau - V_0.5 is how far V sits above the
             behaviour's value)
With quality(obs, act) -> [n] (how good each probe action is, e.g. iqlkit.envs.pointmaze.action_quality) also:
  awr_quality       the AWR-weighted mean quality sum(w q) / sum(w): the quality of what the policy imitates
  adv_quality_corr  correlation of the advantages with the quality: does A still rank actions?
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from iqlkit.engine.iql import IQL, awr_weight
from iqlkit.envs.data import Transitions
from iqlkit.experiments.extraction import effective_sample_size
from iqlkit.theory.tabular import (TabularData, empirical_mdp, expectile_value_iteration, greedy_policy,
                                   policy_evaluation, sampled_iql, support_optimal_q)
from toy_envs.tabular_mdp import TabularMDP


def _corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation along the last dimension."""
    x, y = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    return (x * y).sum(-1) / (x.square().sum(-1) * y.square().sum(-1)).sqrt().clamp(min=1e-12)


class Probe:
    """A fixed batch of n (s, a) pairs; calling it on an IQL of S agents gives the diagnostics above, [S] each."""

    def __init__(self, data: Transitions, n: int = 4096, seed: int = 0, quality=None) -> None:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(data), (n,), generator=g, device="cpu").to(data.observations.device)
        self.observations, self.actions = data.observations[idx].cpu(), data.actions[idx].cpu()
        self.quality = None if quality is None else torch.as_tensor(
            quality(self.observations.numpy(), self.actions.numpy()), dtype=torch.float32)

    @torch.no_grad()
    def __call__(self, learner: IQL) -> dict[str, torch.Tensor]:
        S, B, dev = learner.n_agents, learner.config.batch_size, learner.device
        obs = self.observations.to(dev).expand(S, -1, -1)
        act = self.actions.to(dev).expand(S, -1, -1)
        v = learner.value_net(obs)
        u = learner.advantage(obs, act)  # [S, n]
        w = torch.where(u < 0, 1 - learner.tau, learner.tau)  # |tau - 1(u < 0)|
        clip = learner.config.adv_clip
        awr = awr_weight(u, learner.beta, clip)  # Eq. 7's weights, beta per agent
        extra = {}
        if self.quality is not None:  # does the weighting prefer good actions? (quality: e.g. cos to the goal)
            q_ = self.quality.to(dev)
            extra = {"awr_quality": (awr * q_).sum(1) / awr.sum(1),
                     "adv_quality_corr": _corr(u, q_.expand_as(u))}
        return {**extra, "pos_frac": (u > 0).float().mean(1),
                "v_se": (w.square() * u.square()).mean(1).div(B).sqrt() / w.mean(1),
                "adv_mean": u.mean(1), "adv_std": u.std(1),
                "ess": awr.sum(1).square() / (u.shape[1] * awr.square().sum(1)),
                "clip_frac": (awr >= clip).float().mean(1), "v_probe": v.mean(1)}


def tabular_tau_study(mdp: TabularMDP, data: TabularData, taus: Sequence[float], beta: float = 10.0,
                      steps: int = 20_000, lr: float = 0.05, batch_size: int = 256, seeds: Sequence[int] = (0,),
                      tol: float = 0.02) -> list[dict]:
    """The same diagnostics, exact, on the empirical MDP of a tabular dataset; plus sampled IQL's convergence.

    Per tau: pos_frac, adv_std, ess (beta) over the data's (s, a); v_above = mean over data states of V_tau - V_0.5;
    gap = V_support_opt(start) - V_tau(start); ret = true return of greedy(Q_tau) from the start. Sampled IQL
    (minibatch, cosine step size) per seed: err = mean |V_t - V_tau| / max |V_tau| at the end, bias = mean of
    V_t - V_tau, converge = first logged step from which err stays <= tol (steps if never), ret_sampled = true
    return of its greedy policy.
    """
    n_s, n_a, gamma = mdp.n_states, mdp.n_actions, mdp.gamma
    P, R, behavior = empirical_mdp(data, n_s, n_a)
    support = behavior > 0
    s, a = np.asarray(data.states, int), np.asarray(data.actions, int)
    visited = np.unique(s)
    q_opt = support_optimal_q(P, R, behavior, gamma)
    v_opt = np.where(support, q_opt, -np.inf).max(1)
    _, v_beh = expectile_value_iteration(P, R, behavior, gamma, 0.5)

    def true_return(Q: np.ndarray) -> float:
        return float(policy_evaluation(mdp.P, mdp.R, greedy_policy(Q, support), gamma)[1][mdp.start])

    rows = []
    for tau in taus:
        Q, V = expectile_value_iteration(P, R, behavior, gamma, tau)
        u = Q[s, a] - V[s]
        row = {"tau": tau, "pos_frac": float((u > 1e-9).mean()), "adv_std": float(u.std()),
               "ess": effective_sample_size(awr_weight(u, beta)),
               "v_above": float((V - v_beh)[s].mean()), "gap": float(v_opt[mdp.start] - V[mdp.start]),
               "ret": true_return(Q)}
        scale = np.abs(V[visited]).max()
        runs = [sampled_iql(data, n_s, n_a, gamma, tau, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                            log_every=max(steps // 200, 1)) for seed in seeds]
        errs = np.array([np.abs(run.V_history[:, visited] - V[visited]).mean(1) / scale for run in runs])  # [seeds, T]
        bad = errs > tol
        last_bad = np.where(bad.any(1), bad.shape[1] - 1 - np.argmax(bad[:, ::-1], 1), -1)
        row.update({"err": float(errs[:, -1].mean()),
                    "bias": float(np.mean([(run.V - V)[visited].mean() for run in runs])),
                    "converge": float(np.mean([run.steps[i + 1] if i + 1 < len(run.steps) else steps
                                               for run, i in zip(runs, last_bad)])),
                    "ret_sampled": float(np.mean([true_return(run.Q) for run in runs]))})
        rows.append(row)
    return rows
