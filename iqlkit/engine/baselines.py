"""The baselines, run through the same IQL engine so that only the named difference changes: one-step RL and BC are
IQL with another tau or beta (method_setup), the AWAC-like baseline of fine-tuning is a subclass (AWACLike)."""
from __future__ import annotations

from dataclasses import replace

import torch

from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.envs.data import Batch, Transitions, top_fraction

METHODS = {
    "iql": "IQL as configured",
    "one-step": "tau = 0.5: V and Q evaluate the behaviour policy (SARSA), then AWR: one policy-improvement step",
    "bc": "beta = 0: every AWR weight is exp(0) = 1, so the actor loss is behaviour cloning",
    "top10-bc": "behaviour cloning on the 10% of episodes with the highest returns",
}


def method_setup(method: str, data: Transitions, config: IQLConfig) -> tuple[Transitions, IQLConfig]:
    """(data, config) for one of METHODS, derived from the IQL data and config."""
    if method == "iql":
        return data, config
    if method == "one-step":
        return data, replace(config, tau=0.5)
    if method == "bc":
        return data, replace(config, beta=0.0)
    if method == "top10-bc":
        return top_fraction(data, 0.1), replace(config, beta=0.0)
    raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")


class AWACLike(IQL):
    """Fine-tuning's baseline (c): the same AWR actor loss, but against a Q of the current policy (AWAC-like),
    behaviour cloning until step `bc_until`. Q's target r + gamma (1 - d) min Q_target(s', a'), a' ~ pi(s'), and
    the advantage Q_target(s, a) - Q_target(s, a_pi), a_pi ~ pi(s), replace IQL's V(s') and V(s); V is still
    fitted, unread."""

    bc_until = 0

    def policy_sample(self, obs: torch.Tensor) -> torch.Tensor:
        """a ~ pi(.|s) for stacked observations [S, n, obs_dim], clipped to [-1, 1] (torch's global generator)."""
        mean, log_std = self.actor(obs)
        return (mean + log_std.exp() * torch.randn_like(mean)).clamp(-1.0, 1.0)

    def state_values(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The current policy's state values Q_target(s, a_pi) and Q_target(s', a'_pi) (min over the twin heads),
        no gradient: where IQL reads V."""
        with torch.no_grad():
            both = torch.cat([obs, next_obs], -2)
            q = self.target_q(both, self.policy_sample(both))
            return q[..., : obs.shape[-2]], q[..., obs.shape[-2]:]

    def actor_loss(self, batch: Batch, q_target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """AWR (Eq. 7) with the baseline Q_target(s, a_pi); before bc_until the baseline is Q_target(s, a) itself,
        so every weight is exp(0) = 1: behaviour cloning."""
        return super().actor_loss(batch, q_target, v if self.steps >= self.bc_until else q_target)
