"""What changes as tau -> 1: diagnostics of the expectile V and the AWR weights, measured on a fixed probe batch.

Probe(data)(stacked) returns, per agent, on the same probe states and actions (so agents compare directly):
  pos_frac   share of residuals u = Q_target(s, a) - V(s) above 0: the samples that carry weight tau (the rest 1 - tau)
  v_se       standard error of a minibatch's expectile, sqrt(E[w^2 u^2] / B) / E[w] with w = |tau - 1(u < 0)|
             (the M-estimator sandwich formula): how far one minibatch's V target wanders
  adv_mean, adv_std   mean and spread of the advantages A = u that the actor weighs
  ess        effective sample share of the AWR weights min(exp(beta A), clip): (sum w)^2 / (B sum w^2)
  clip_frac  share of AWR weights at the clip
  v_probe    mean V over the probe states (compare agents of one seed: V_tau - V_0.5 is how far V sits above the
             behaviour's value)
"""
from __future__ import annotations

import torch

from iqlkit.data import Transitions
from iqlkit.stacked import StackedIQL


class Probe:
    """A fixed batch of n (s, a) pairs; calling it on a StackedIQL gives the diagnostics above, one value per agent."""

    def __init__(self, data: Transitions, n: int = 4096, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(data), (n,), generator=g, device="cpu").to(data.observations.device)
        self.observations, self.actions = data.observations[idx].cpu(), data.actions[idx].cpu()

    @torch.no_grad()
    def __call__(self, stacked: StackedIQL) -> dict[str, torch.Tensor]:
        S, B, dev = stacked.n_agents, stacked.config.batch_size, stacked.device
        obs = self.observations.to(dev).expand(S, -1, -1)
        act = self.actions.to(dev).expand(S, -1, -1)
        q_both = stacked._q(stacked.critic_target, obs, act)
        q = q_both.min(1).values if stacked.config.clipped_double_q else q_both[:, 0]
        v = stacked.value_net(obs).squeeze(-1)
        u = q - v  # [S, n]
        w = torch.where(u < 0, 1 - stacked.tau, stacked.tau)  # |tau - 1(u < 0)|
        clip = stacked.config.adv_clip
        awr = torch.exp(stacked.beta * u).clamp(max=clip)  # Eq. 7's weights, beta per agent
        return {"pos_frac": (u > 0).float().mean(1),
                "v_se": (w.square() * u.square()).mean(1).div(B).sqrt() / w.mean(1),
                "adv_mean": u.mean(1), "adv_std": u.std(1),
                "ess": awr.sum(1).square() / (u.shape[1] * awr.square().sum(1)),
                "clip_frac": (awr >= clip).float().mean(1), "v_probe": v.mean(1)}
