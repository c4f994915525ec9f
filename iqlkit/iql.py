"""Implicit Q-Learning as the authors ran it: expectile V, TD Q with V(s'), AWR policy, Polyak target Q.

One update (Algorithm 1, authors' order): V first, then the actor with the new V, then Q with the new V(s'),
then the Polyak step of the target Q. There is no target V.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from iqlkit.expectile import check_tau, expectile_loss
from iqlkit.nets import GaussianPolicy, TwinQ, ValueNet

if TYPE_CHECKING:  # iqlkit.data imports Batch from here
    from iqlkit.data import Transitions


STATS = ("v_loss", "actor_loss", "q_loss", "q_mean", "v_mean")  # what update() returns, in this order


class Batch(NamedTuple):
    """A minibatch of transitions; mask-worthy `terminals` are true ends, never time-outs."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor


@dataclass(frozen=True)
class IQLConfig:
    """Every hyperparameter of the authors' IQL (defaults: their locomotion settings)."""

    tau: float = 0.7  # expectile of V
    beta: float = 3.0  # AWR inverse temperature (0 = behaviour cloning)
    discount: float = 0.99
    polyak: float = 0.005  # target-Q rate
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.0  # actor only
    max_steps: int = 1_000_000  # horizon of the actor's cosine schedule
    cosine_actor_lr: bool = True
    adv_clip: float = 100.0  # clip of exp(beta * A)
    clipped_double_q: bool = True  # min over the twin Q; off = Q1 alone, a single critic
    state_dependent_std: bool = False
    update_order: str = "authors"  # "authors": actor and Q use the new V; "corl": both use V before its step
    reward: str = "none"  # preprocessing the preset implies: "none", "minus_one", "return_range"

    def __post_init__(self) -> None:
        check_tau(self.tau)
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0 (0 = behaviour cloning); got {self.beta}")
        if self.update_order not in ("authors", "corl"):
            raise ValueError(f"update_order must be 'authors' or 'corl'; got {self.update_order!r}")
        if self.reward not in ("none", "minus_one", "return_range"):
            raise ValueError(f"reward must be 'none', 'minus_one' or 'return_range'; got {self.reward!r}")

    @staticmethod
    def preset(name: str, **overrides) -> "IQLConfig":
        """The authors' per-domain settings ('antmaze', 'locomotion', 'kitchen', 'adroit') and the kit's 'pointmaze'."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        """Plain dict, for logs and checkpoints."""
        return asdict(self)


PRESETS = {
    "locomotion": IQLConfig(tau=0.7, beta=3.0, reward="return_range"),
    "antmaze": IQLConfig(tau=0.9, beta=10.0, reward="minus_one"),
    "kitchen": IQLConfig(tau=0.7, beta=0.5, dropout=0.1),
    "adroit": IQLConfig(tau=0.7, beta=0.5, dropout=0.1),
    # the kit's CPU track (its own PointMaze data, r - 1 like AntMaze), measured on the medium stitching data:
    # tau 0.7 and beta 10 (tau 0.9 peaked near 15k steps then fell to 0 on 3 of 3 seeds; beta 3 was unstable),
    # 2 x 64 networks (4x the updates/s of 2 x 256 on 2 cores), 30k steps
    "pointmaze": IQLConfig(tau=0.7, beta=10.0, reward="minus_one", hidden=(64, 64), max_steps=30_000),
}


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """theta <- Adam step on grad(loss), gradients cleared first."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def cosine_factor(step: int, max_steps: int) -> float:
    """The actor's learning-rate factor 0.5 (1 + cos(pi t / T)), from 1 at t = 0 to 0 at t = T."""
    return 0.5 * (1 + math.cos(math.pi * min(step, max_steps) / max_steps))


class IQL:
    """The IQL agent: twin Q (+ target), V, Gaussian policy, and their Adam optimisers."""

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig = IQLConfig(), device: str = "cpu") -> None:
        self.config, self.device = config, torch.device(device)
        c = config
        self.critic = TwinQ(obs_dim, act_dim, c.hidden).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value_net = ValueNet(obs_dim, c.hidden).to(self.device)
        fused = self.device.type == "cuda"
        self.q_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, fused=fused)
        self.v_opt = torch.optim.Adam(self.value_net.parameters(), lr=c.value_lr, fused=fused)
        self.obs_dim, self.act_dim, self.steps = obs_dim, act_dim, 0
        self.reset_actor()

    def reset_actor(self) -> None:
        """A fresh policy with its own Adam and cosine schedule (for extraction after value learning)."""
        c = self.config
        self.actor = GaussianPolicy(self.obs_dim, self.act_dim, c.hidden, c.dropout, c.state_dependent_std).to(self.device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, fused=self.device.type == "cuda")
        self.actor_sched = torch.optim.lr_scheduler.LambdaLR(self.actor_opt, self._actor_lr_factor)

    def _actor_lr_factor(self, step: int) -> float:
        """Cosine decay of the actor's learning rate to 0 over max_steps: 0.5 (1 + cos(pi t / T))."""
        return cosine_factor(step, self.config.max_steps) if self.config.cosine_actor_lr else 1.0

    def _target_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """min(Q1_target, Q2_target)(s, a) with clipped double Q, else Q1_target (s, a)."""
        q = self.critic_target(obs, act)
        return q.min(0).values if self.config.clipped_double_q else q[0]

    def value_loss(self, batch: Batch, q_target: torch.Tensor) -> torch.Tensor:
        """Eq. 5: L_V = E[L_tau(min_i Q_target_i(s, a) - V(s))]."""
        return expectile_loss(q_target - self.value_net(batch.observations), self.config.tau).mean()

    def actor_loss(self, batch: Batch, q_target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Eq. 7: L_pi = -E[min(exp(beta (Q_target(s, a) - V(s))), 100) log pi(a|s)], no gradient through the weight."""
        weight = torch.exp(self.config.beta * (q_target - v)).clamp(max=self.config.adv_clip)
        return -(weight * self.actor.log_prob(batch.observations, batch.actions)).mean()

    def q_loss(self, batch: Batch, next_v: torch.Tensor) -> torch.Tensor:
        """Eq. 6: L_Q = sum_i E[(r + gamma (1 - terminal) V(s') - Q_i(s, a))^2], summed over the twin heads."""
        target = batch.rewards + self.config.discount * (1.0 - batch.terminals) * next_v
        return (self.critic(batch.observations, batch.actions) - target).square().mean(1).sum()

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One IQL step (Algorithm 1); returns the detached losses and mean Q_target, V (tensors: no host sync)."""
        with torch.no_grad():
            q_target = self._target_q(batch.observations, batch.actions)
            if self.config.update_order == "corl":  # actor and Q see V before its step
                v, next_v = self.value_net(batch.observations), self.value_net(batch.next_observations)
        v_loss = self.value_loss(batch, q_target)
        optimizer_step(self.v_opt, v_loss)
        if self.config.update_order == "authors":  # actor and Q see the V just updated
            with torch.no_grad():
                v, next_v = self.value_net(batch.observations), self.value_net(batch.next_observations)
        actor_loss = self.actor_loss(batch, q_target, v)
        optimizer_step(self.actor_opt, actor_loss)
        self.actor_sched.step()
        q_loss = self.q_loss(batch, next_v)
        optimizer_step(self.q_opt, q_loss)
        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()),
                                 self.config.polyak)
        self.steps += 1
        return {"v_loss": v_loss.detach(), "actor_loss": actor_loss.detach(), "q_loss": q_loss.detach(),
                "q_mean": q_target.mean(), "v_mean": v.mean()}

    def run(self, data: Transitions, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n updates on fresh minibatches of `data`; the stats summed over them: [n_stats], no host sync."""
        total = torch.zeros(len(STATS), device=self.device)
        for _ in range(n):
            stats = self.update(data.sample(self.config.batch_size, generator))
            total += torch.stack([stats[k] for k in STATS])
        return total

    def update_actor(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Only the AWR step (Eq. 7) against frozen Q and V: policy extraction after value learning."""
        with torch.no_grad():
            q_target = self._target_q(batch.observations, batch.actions)
            v = self.value_net(batch.observations)
        actor_loss = self.actor_loss(batch, q_target, v)
        optimizer_step(self.actor_opt, actor_loss)
        self.actor_sched.step()
        return {"actor_loss": actor_loss.detach()}

    def _tensor(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray:
        """Action(s) for one observation [obs_dim] or a batch [n, obs_dim]: the mean (dropout off), clipped to [-1, 1]."""
        obs = self._tensor(obs)
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observations must have {self.obs_dim} features; got shape {tuple(obs.shape)}")
        self.actor.eval()
        mean, log_std = self.actor(obs)
        self.actor.train()
        act = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return act.clamp(-1.0, 1.0).cpu().numpy()

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """V(s) for a batch of observations."""
        return self.value_net(self._tensor(obs)).cpu().numpy()

    @torch.no_grad()
    def q(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor) -> np.ndarray:
        """min(Q1, Q2)(s, a) (or Q1 without clipped double Q) from the online critic."""
        q = self.critic(self._tensor(obs), self._tensor(act))
        return (q.min(0).values if self.config.clipped_double_q else q[0]).cpu().numpy()

    def state_dict(self) -> dict:
        """Everything needed to resume: networks, target, optimisers, schedule, step count, config."""
        return {"config": self.config.to_dict(), "steps": self.steps, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                **{k: getattr(self, k).state_dict() for k in self._PARTS}}

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict(); the dimensions must match."""
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(f"checkpoint is for obs/act dims {(state['obs_dim'], state['act_dim'])}, "
                             f"this agent has {(self.obs_dim, self.act_dim)}")
        for k in self._PARTS:
            getattr(self, k).load_state_dict(state[k])
        self.steps = state["steps"]

    _PARTS = ("critic", "critic_target", "value_net", "actor", "q_opt", "v_opt", "actor_opt", "actor_sched")
