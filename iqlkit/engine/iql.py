"""Implicit Q-Learning as the authors ran it: expectile V, TD Q with V(s'), AWR policy, Polyak target Q.

How one update runs, top to bottom in `IQL.update` (Algorithm 1, the authors' order):
  1. q_target = min(Q1_target, Q2_target)(s, a)                                    `target_q`
  2. a V step on the expectile loss L_tau(q_target - V(s)), Eq. 5                  `value_loss` (L_tau:
     iqlkit/theory/expectile.py)
  3. V(s) and V(s') from the V just updated                                        `state_values`
  4. an actor step on AWR, -min(exp(beta (q_target - V(s))), 100) log pi(a|s), Eq. 7 `actor_loss`, `awr_weight`
     (the Gaussian policy and the networks: iqlkit/engine/nets.py)
  5. a Q step on sum_i (r + gamma (1 - terminal) V(s') - Q_i(s, a))^2, Eq. 6       `q_loss`
  6. the Polyak step of the target Q. There is no target V.
Each step is `_adam_step`: one fused Adam over the stacked weights. Where the updates come from:
`python -m iqlkit train` (iqlkit/cli.py) calls `fit_many`, which calls `train`, the loop (both in
iqlkit/engine/train.py); between two log points the loop asks `update_n` here for n updates, and `update_n` draws
each minibatch from its source and calls `update`: 5 calls in 3 files from the command to a gradient step.
The networks are initialised as in the authors' code (orthogonal, gain sqrt(2), zero biases; IQLConfig.init='torch'
for PyTorch's default).

`IQL` holds S agents in one set of tensors (S = 1: one run): every weight has a leading agent dimension, every
batch is [S, B, ...], every loss is [S]; tau, beta, the actor's dropout and a learning-rate factor may differ per
agent. Adam works elementwise, so one Adam over stacked weights is S independent Adams. This one class is the
readable path, the many-seeds path and, through iqlkit.engine.fast (CUDA graphs), the fast path: the same lines run.

What a subclass overrides (the pattern of CS285's `IQLAgent(AWACAgent)`; train it with `fit(..., agent_cls=...)`):
`value_loss`, `actor_loss` and `q_loss` (each from the batch and the tensors the update computed), `state_values`
(what the advantage subtracts and Q's target bootstraps from) and `target_q`. The baselines show both ends: one-step
RL needs no subclass, only tau = 0.5 (the expectile becomes the mean, so V evaluates the behaviour policy:
iqlkit.engine.baselines.method_setup), while the AWAC-like baseline (iqlkit.engine.baselines.AWACLike) overrides
`state_values` to read Q at the policy's own actions and `actor_loss` to start as behaviour cloning.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from iqlkit.engine.nets import INITS, GaussianPolicy, TwinQ, ValueNet, agent_generators
from iqlkit.envs.data import Batch
from iqlkit.theory.expectile import check_tau, expectile_loss

STATS = ("v_loss", "actor_loss", "q_loss", "q_mean", "v_mean")  # what update() returns, in this order
REWARDS = ("none", "minus_one", "return_range")


@dataclass(frozen=True)
class IQLConfig:
    """Every hyperparameter of the authors' IQL (defaults: their locomotion settings), checked on creation."""

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
    init: str = "authors"  # "authors": orthogonal (gain sqrt 2), zero biases; "torch": nn.Linear's default

    def __post_init__(self) -> None:
        for f in fields(self):  # numbers given as strings or numpy scalars become what the field says, or fail
            value, kind = getattr(self, f.name), f.type
            try:
                if kind == "float":
                    value = float(value)
                elif kind == "int":
                    if float(value) != int(float(value)):
                        raise ValueError
                    value = int(float(value))
                elif kind == "bool":
                    if value not in (True, False, 0, 1):
                        raise ValueError
                    value = bool(value)
                elif kind == "tuple[int, ...]":
                    value = tuple(int(w) for w in value)
            except (TypeError, ValueError):
                raise ValueError(f"IQLConfig.{f.name} must be {kind}; got {value!r}") from None
            object.__setattr__(self, f.name, value)
        check_tau(self.tau)
        _check_range("beta", self.beta, 0, math.inf, "0 = behaviour cloning", closed_high=False)
        _check_range("discount", self.discount, 0, 1, "e.g. 0.99")
        _check_range("polyak", self.polyak, 0, 1, "the target's step towards Q, e.g. 0.005", closed_low=False)
        _check_range("dropout", self.dropout, 0, 1, "a probability of dropping a unit", closed_high=False)
        _check_range("adv_clip", self.adv_clip, 0, math.inf, "the clip of exp(beta A), e.g. 100", closed_low=False)
        for name in ("actor_lr", "critic_lr", "value_lr"):
            _check_range(name, getattr(self, name), 0, 1, "e.g. 3e-4", closed_low=False)
        for name in ("batch_size", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"IQLConfig.{name} must be >= 1; got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"IQLConfig.hidden needs at least one layer, each >= 1 wide; got {self.hidden}")
        for name, allowed in (("update_order", ("authors", "corl")), ("reward", REWARDS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"IQLConfig.{name} must be one of {allowed}; got {getattr(self, name)!r}")

    @staticmethod
    def preset(name: str, **overrides) -> "IQLConfig":
        """The authors' per-domain settings ('antmaze', 'locomotion', 'kitchen', 'adroit') and the kit's 'pointmaze'."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        """Plain dict, for logs and checkpoints."""
        return asdict(self)


def _check_range(name: str, value: float, low: float, high: float, hint: str, closed_low: bool = True,
                 closed_high: bool = True) -> None:
    """A ValueError naming the field and its allowed range unless low <=(<) value <=(<) high and value is a number."""
    ok = (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)
    if not ok or math.isnan(value):
        interval = f"{'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
        raise ValueError(f"IQLConfig.{name} must lie in {interval} ({hint}); got {value}")


PRESETS = {
    "locomotion": IQLConfig(tau=0.7, beta=3.0, reward="return_range"),
    "antmaze": IQLConfig(tau=0.9, beta=10.0, reward="minus_one"),
    "kitchen": IQLConfig(tau=0.7, beta=0.5, dropout=0.1),
    "adroit": IQLConfig(tau=0.7, beta=0.5, dropout=0.1),
    # the kit's CPU track (its own PointMaze data, r - 1 like AntMaze), measured on the medium stitching data:
    # tau 0.7 and beta 10 (tau 0.9 peaked near 15k steps then fell to 0 on 3 of 3 seeds; beta 3 was unstable),
    # 2 x 64 networks (4x the updates/s of 2 x 256 on 2 cores), 30k steps; PyTorch's initialisation, with which
    # all of the above was tuned: seeds 0-2 reached success [0.85, 1.0, 0.58] with it (40 episodes each) and
    # [0.75, 0.12, 0.98] with the authors' orthogonal one (100 episodes each; 2026-11-28, 2-core CPU)
    "pointmaze": IQLConfig(tau=0.7, beta=10.0, reward="minus_one", hidden=(64, 64), max_steps=30_000, init="torch"),
}


def stack_key(config: IQLConfig) -> tuple:
    """Configs with equal keys can train as agents of one IQL: they agree on every field but tau, beta, the actor's
    dropout and a common factor of the three learning rates."""
    lr, fields_ = config.actor_lr, config.to_dict()
    rest = {**fields_, "tau": None, "beta": None, "dropout": None, "actor_lr": None,
            "critic_lr": round(config.critic_lr / lr, 12), "value_lr": round(config.value_lr / lr, 12)}
    return tuple(sorted(rest.items()))


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, weights: torch.Tensor | None = None) -> None:
    """theta <- Adam step on grad(loss) (on grad(sum_k weights_k loss_k) for a loss per agent), gradients cleared
    first."""
    opt.zero_grad(set_to_none=True)
    loss.backward(weights)
    opt.step()


def cosine_factor(step: torch.Tensor | float, max_steps: int) -> torch.Tensor:
    """The actor's learning-rate factor 0.5 (1 + cos(pi min(t, T) / T)), from 1 at t = 0 to 0 at t = T."""
    t = torch.as_tensor(step, dtype=torch.float64).clamp(max=max_steps)
    return 0.5 * (1 + torch.cos(math.pi * t / max_steps))


def awr_weight(advantage: torch.Tensor | np.ndarray, beta: torch.Tensor | float, clip: float = 100.0) -> torch.Tensor:
    """AWR's weight of a dataset action, w = min(exp(beta A), clip) (Eq. 7 with the authors' clip); beta = 0 gives
    w = 1: behaviour cloning."""
    advantage = advantage if isinstance(advantage, torch.Tensor) else torch.as_tensor(advantage, dtype=torch.float32)
    return torch.exp(beta * advantage).clamp(max=clip)


def _per_agent(values: list[float], device: torch.device) -> torch.Tensor:
    """One hyperparameter per agent as a [S, 1] tensor (broadcasts against [S, B])."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1)


class IQL:
    """S IQL agents (S = 1: one run): twin Q (+ target), V, Gaussian policy and their Adam optimisers.

    config: one IQLConfig, or one per agent (they may differ in tau, beta, dropout and a common learning-rate
    factor: stack_key). seeds: agent k's weights are drawn from a generator seeded with seeds[k], so agent k equals
    IQL(config_k, seeds=[seeds[k]]); None draws them from torch's global generator.
    """

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig | Sequence[IQLConfig] = IQLConfig(),
                 device: str | torch.device = "cpu", seeds: Sequence[int] | None = None,
                 capturable: bool = False) -> None:
        configs = [config] if isinstance(config, IQLConfig) else list(config)
        if not configs:
            raise ValueError("need at least one config (one per agent)")
        for c in configs:
            if stack_key(c) != stack_key(configs[0]):
                raise ValueError(f"cannot train {c} with {configs[0]} as agents of one IQL: only tau, beta, dropout and "
                                 "a common learning-rate factor may differ (train the others separately)")
        if seeds is not None and len(seeds) != len(configs):
            raise ValueError(f"need one seed per agent ({len(configs)}); got {len(seeds)}")
        c, S, dev = configs[0], len(configs), torch.device(device)
        self.config, self.configs, self.n_agents, self.device = c, configs, S, dev
        self.seeds = None if seeds is None else [int(s) for s in seeds]
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.tau = _per_agent([cfg.tau for cfg in configs], dev)
        self.beta = _per_agent([cfg.beta for cfg in configs], dev)
        self.lr_scales = [cfg.actor_lr / c.actor_lr for cfg in configs]
        self._scales: dict[torch.Size, torch.Tensor] = {}
        self._ones = torch.ones(S, device=dev)
        generators = agent_generators(self.seeds, S)
        self.critic = TwinQ(obs_dim, act_dim, c.hidden, S)
        self.value_net = ValueNet(obs_dim, c.hidden, S)
        self.critic.initialise(c.init, generators)
        self.value_net.initialise(c.init, generators)
        self.critic, self.value_net = self.critic.to(dev), self.value_net.to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.steps = 0  # IQL updates done
        self.capturable = capturable  # Adam safe inside a CUDA graph (iqlkit.engine.fast asks for it)
        self.q_opt = self.adam(self.critic, c.critic_lr)
        self.v_opt = self.adam(self.value_net, c.value_lr)
        self.reset_actor(generators)

    def adam(self, net: nn.Module, lr: float) -> torch.optim.Adam:
        """Adam over a network's stacked weights, fused (one kernel per step, on CPU and GPU); its rate is a device
        tensor (the actor's follows the cosine schedule on the device); capturable when iqlkit.engine.fast records
        CUDA graphs."""
        return torch.optim.Adam(net.parameters(), lr=torch.tensor(lr, device=self.device),
                                fused=True, capturable=self.capturable)

    def reset_actor(self, generators: Sequence[torch.Generator | None] | None = None) -> None:
        """A fresh policy with its own Adam and cosine schedule (for extraction after value learning)."""
        c = self.config
        self.actor = GaussianPolicy(self.obs_dim, self.act_dim, c.hidden, self.n_agents,
                                    [cfg.dropout for cfg in self.configs], c.state_dependent_std)
        self.actor.initialise(c.init, generators or [None] * self.n_agents)
        self.actor = self.actor.to(self.device)
        self.actor_t = torch.zeros((), dtype=torch.long, device=self.device)  # the actor's steps: its schedule's clock
        self.actor_opt = self.adam(self.actor, c.actor_lr)
        self._lr_table = (c.actor_lr * cosine_factor(torch.arange(c.max_steps + 1), c.max_steps)).to(
            torch.float32).to(self.device) if c.cosine_actor_lr else None

    def member(self, k: int) -> "IQL | Member":
        """Agent k as evaluations and logs see it: this IQL when it holds one agent, else a Member view."""
        if not 0 <= k < self.n_agents:
            raise IndexError(f"agent {k} out of range: this IQL holds {self.n_agents}")
        return self if self.n_agents == 1 else Member(self, k)

    def set_beta(self, beta: float) -> None:
        """AWR's inverse temperature of every agent from now on (e.g. for post-hoc extraction)."""
        self.configs = [replace(c, beta=beta) for c in self.configs]
        self.config = self.configs[0]
        self.beta.fill_(self.config.beta)

    @property
    def seed(self) -> int | None:
        """The seed of a single agent's weights (None when drawn from the global generator)."""
        return None if self.seeds is None else self.seeds[0]

    # ---- the update: Eqs. 5-7, written once for all S agents -------------------------------------------------
    def target_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """min(Q1_target, Q2_target)(s, a) with clipped double Q, else Q1_target(s, a): [S, B], no gradient."""
        with torch.no_grad():
            q = self.critic_target(obs, act)
            return q.min(1).values if self.config.clipped_double_q else q[:, 0]

    def value_loss(self, batch: Batch, q_target: torch.Tensor) -> torch.Tensor:
        """Eq. 5: L_V = E[L_tau(Q_target(s, a) - V(s))], L_tau(u) = |tau - 1(u < 0)| u^2, tau of agent k: [S]."""
        return expectile_loss(q_target - self.value_net(batch.observations), self.tau).mean(-1)

    def state_values(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state values the update reads, V(s) for the advantage and V(s') for Q's target, in one pass of the
        value net, no gradient: [S, B] each."""
        with torch.no_grad():
            v = self.value_net(torch.cat([obs, next_obs], -2))
            return v[..., : obs.shape[-2]], v[..., obs.shape[-2]:]

    def actor_loss(self, batch: Batch, q_target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Eq. 7: L_pi = -E[min(exp(beta (Q_target(s, a) - V(s))), 100) log pi(a|s)], no gradient through the
        weight: [S]."""
        weight = awr_weight(q_target - v, self.beta, self.config.adv_clip)
        return -(weight * self.actor.log_prob(batch.observations, batch.actions)).mean(-1)

    def q_loss(self, batch: Batch, next_v: torch.Tensor) -> torch.Tensor:
        """Eq. 6: L_Q = sum_i E[(r + gamma (1 - terminal) V(s') - Q_i(s, a))^2], summed over the twin heads: [S]."""
        target = batch.rewards + self.config.discount * (1.0 - batch.terminals) * next_v
        return (self.critic(batch.observations, batch.actions) - target.unsqueeze(1)).square().mean(-1).sum(-1)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One IQL step (Algorithm 1) for every agent; per-agent stats of shape [S] (tensors: no host sync).

        A batch without the agent dimension ([B, ...]) is accepted when S = 1.
        """
        batch = self.agent_batch(batch)
        s, a, s_next = batch.observations, batch.actions, batch.next_observations
        q_target = self.target_q(s, a)
        if self.config.update_order == "corl":  # actor and Q see V before its step
            v, next_v = self.state_values(s, s_next)
        v_loss = self.value_loss(batch, q_target)  # Eq. 5
        self._adam_step(self.v_opt, v_loss)
        if self.config.update_order == "authors":  # actor and Q see the V just updated
            v, next_v = self.state_values(s, s_next)
        actor_loss = self._actor_step(batch, q_target, v)  # Eq. 7
        q_loss = self.q_loss(batch, next_v)  # Eq. 6
        self._adam_step(self.q_opt, q_loss)
        with torch.no_grad():  # Polyak: theta_target <- theta_target + polyak (theta - theta_target)
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()),
                                 self.config.polyak)
        self.steps += 1
        S = self.n_agents
        return {"v_loss": v_loss.detach().reshape(S), "actor_loss": actor_loss.detach().reshape(S),
                "q_loss": q_loss.detach().reshape(S), "q_mean": q_target.mean(-1), "v_mean": v.mean(-1)}

    def _actor_step(self, batch: Batch, q_target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The AWR step of the actor (Eq. 7) at its scheduled rate; returns its loss [S]."""
        actor_loss = self.actor_loss(batch, q_target, v)
        self._adam_step(self.actor_opt, actor_loss, self._actor_lr())
        self.actor_t += 1
        return actor_loss

    def _actor_lr(self) -> torch.Tensor | None:
        """The actor's rate for its step t, lr_0 cosine_factor(t, T), looked up on the device (no host sync; None
        without the cosine schedule)."""
        if self._lr_table is None:
            return None
        return self._lr_table[self.actor_t.clamp(max=self.config.max_steps)]

    def _adam_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, lr: torch.Tensor | None = None) -> None:
        """Adam step on the sum of the agents' losses (their weights are disjoint, so each gets its own gradient);
        with per-agent rates theta_k <- theta_k + s_k (Adam(theta)_k - theta_k) (Adam's step is linear in lr)."""
        if lr is not None:
            opt.param_groups[0]["lr"].copy_(lr)
        ones = self._ones[: loss.numel()].view(loss.shape)  # d(sum of the agents' losses) / d(loss_k) = 1
        if all(s == 1.0 for s in self.lr_scales):
            return optimizer_step(opt, loss, ones)
        params = [p for group in opt.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        optimizer_step(opt, loss, ones)
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(torch.lerp(old, p, self._lr_scale(p.shape)))

    def _lr_scale(self, shape: torch.Size) -> torch.Tensor:
        """The per-agent rate factors shaped to broadcast against a stacked weight (critic: two heads per agent)."""
        if shape not in self._scales:
            scale = torch.tensor(self.lr_scales, dtype=torch.float32, device=self.device)
            if shape[0] == 2 * self.n_agents:
                scale = scale.repeat_interleave(2)
            self._scales[shape] = scale.view(-1, *[1] * (len(shape) - 1))
        return self._scales[shape]

    def update_n(self, source, n: int) -> torch.Tensor:
        """n updates, each on a fresh minibatch source.sample_agents(S, B) (iqlkit.engine.train's OfflineSource of
        a dataset, or fine-tuning's OnlineSource); the per-agent stats summed over them: [n_stats, S], no host
        sync."""
        total = torch.zeros(len(STATS), self.n_agents, device=self.device)
        for _ in range(n):
            stats = self.update(source.sample_agents(self.n_agents, self.config.batch_size))
            total += torch.stack([stats[k] for k in STATS])
        return total

    def update_actor(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Only the AWR step (Eq. 7) against frozen Q and V: policy extraction after value learning."""
        batch = self.agent_batch(batch)
        q_target = self.target_q(batch.observations, batch.actions)
        with torch.no_grad():
            v = self.value_net(batch.observations)
        return {"actor_loss": self._actor_step(batch, q_target, v).detach()}

    def agent_batch(self, batch: Batch) -> Batch:
        """[B, ...] -> [1, B, ...] for a single agent; a stacked batch as it is."""
        if batch.observations.dim() == 3:
            return batch
        if self.n_agents != 1:
            raise ValueError(f"a batch for {self.n_agents} agents needs a leading agent dimension ([S, B, ...])")
        return Batch(*(None if x is None else x.unsqueeze(0) for x in batch))

    # ---- using the agents ------------------------------------------------------------------------------------
    def as_inputs(self, *arrays: np.ndarray | torch.Tensor) -> tuple[list[torch.Tensor], bool]:
        """Float32 tensors on the device with the agent dimension: [n, d] inputs go to every agent; also whether
        the outputs drop that dimension again (one agent and inputs without it)."""
        tensors = [torch.as_tensor(x, dtype=torch.float32, device=self.device) for x in arrays]
        if tensors[0].shape[-1] != self.obs_dim:
            raise ValueError(f"observations must have {self.obs_dim} features; got shape {tuple(tensors[0].shape)}")
        single = tensors[0].dim() == 1
        tensors = [t.reshape(1, -1) if single else t for t in tensors]
        squeeze = tensors[0].dim() == 2 and self.n_agents == 1
        return [t.expand(self.n_agents, *t.shape) if t.dim() == 2 else t for t in tensors], squeeze

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Actions for observations [obs_dim], [n, obs_dim] (every agent) or [S, n, obs_dim]: the mean (dropout off),
        or a sample of pi(a|s) when not deterministic; clipped to [-1, 1]. One agent: [act_dim] / [n, act_dim]."""
        (x,), squeeze = self.as_inputs(obs)
        self.actor.eval()
        mean, log_std = self.actor(x)
        self.actor.train()
        if not deterministic:
            mean = mean + log_std.exp() * torch.randn(mean.shape, device=mean.device, generator=generator)
        out = mean.clamp(-1.0, 1.0)
        out = out[0] if squeeze else out
        return (out[..., 0, :] if torch.as_tensor(obs).dim() == 1 else out).cpu().numpy()

    __call__ = act  # a policy: obs -> actions, as evaluations call it (like Member)

    @torch.no_grad()
    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """V(s) for observations [n, obs_dim] ([S, n] for S > 1 agents, [n] for one)."""
        (x,), squeeze = self.as_inputs(obs)
        out = self.value_net(x)
        return (out[0] if squeeze else out).cpu().numpy()

    @torch.no_grad()
    def advantage(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A(s, a) = Q_target(s, a) - V(s), as the actor loss weighs the data's (s, a): a tensor on the device, [n]
        for one agent and inputs [n, d], else [S, n]."""
        (x, a), squeeze = self.as_inputs(obs, act)
        adv = self.target_q(x, a) - self.value_net(x)
        return adv[0] if squeeze else adv

    @torch.no_grad()
    def q(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor) -> np.ndarray:
        """min(Q1, Q2)(s, a) (or Q1 without clipped double Q) from the online critic: [n] or [S, n]."""
        (x, a), squeeze = self.as_inputs(obs, act)
        q = self.critic(x, a)
        out = q.min(1).values if self.config.clipped_double_q else q[:, 0]
        return (out[0] if squeeze else out).cpu().numpy()

    # ---- checkpoints -----------------------------------------------------------------------------------------
    _PARTS = ("critic", "critic_target", "value_net", "actor", "q_opt", "v_opt", "actor_opt")

    def state_dict(self) -> dict:
        """Everything needed to resume: networks, target, optimisers, step counts, configs and seeds (tensors,
        numbers and strings only: loadable with torch.load(weights_only=True)). A snapshot: further training
        changes neither it nor, after load_state_dict, the dict it was loaded from."""
        return copy.deepcopy({"configs": [c.to_dict() for c in self.configs], "seeds": self.seeds,
                              "steps": self.steps, "actor_t": self.actor_t.cpu(), "obs_dim": self.obs_dim,
                              "act_dim": self.act_dim, **{k: getattr(self, k).state_dict() for k in self._PARTS}})

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> "IQL":
        """The agents of a state_dict (its configs, seeds and weights), on `device`."""
        learner = cls(state["obs_dim"], state["act_dim"], [IQLConfig(**c) for c in state["configs"]], device,
                      state["seeds"])
        learner.load_state_dict(state)
        return learner

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict() (saved on any device or path); dimensions and agent count must match."""
        if (state["obs_dim"], state["act_dim"], len(state["configs"])) != (self.obs_dim, self.act_dim, self.n_agents):
            raise ValueError(f"checkpoint is for obs/act dims {(state['obs_dim'], state['act_dim'])} and "
                             f"{len(state['configs'])} agents; this IQL has {(self.obs_dim, self.act_dim)} and "
                             f"{self.n_agents}")
        for k in self._PARTS:  # optimisers keep the tensors they are given: hand them copies
            getattr(self, k).load_state_dict(copy.deepcopy(state[k]) if k.endswith("_opt") else state[k])
        self.steps = int(state["steps"])
        self.actor_t.copy_(state["actor_t"])

    def nonfinite_agents(self) -> list[int]:
        """The agents whose weights or Adam moments hold a NaN or an infinity (empty when all are finite)."""
        bad = torch.zeros(self.n_agents, dtype=torch.bool, device=self.device)
        for part in ("critic", "critic_target", "value_net", "actor"):
            for p in getattr(self, part).parameters():
                bad |= self._per_agent_any(~torch.isfinite(p))
        for opt in (self.q_opt, self.v_opt, self.actor_opt):
            for p, st in opt.state.items():
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in st:
                        bad |= self._per_agent_any(~torch.isfinite(st[key]))
        return torch.nonzero(bad).flatten().tolist()

    def _per_agent_any(self, mask: torch.Tensor) -> torch.Tensor:
        """Any True per agent in a stacked tensor's mask (critic tensors hold two heads per agent)."""
        if mask.shape[0] == 2 * self.n_agents:
            mask = mask.reshape(self.n_agents, -1)
        return mask.reshape(self.n_agents, -1).any(1)


class Member:
    """Agent k of a many-agent IQL, as evaluations see it: its actions, values, Q, config and seed."""

    def __init__(self, learner: IQL, k: int) -> None:
        self.learner, self.index = learner, k

    @property
    def config(self) -> IQLConfig:
        return self.learner.configs[self.index]

    @property
    def seed(self) -> int | None:
        return None if self.learner.seeds is None else self.learner.seeds[self.index]

    @property
    def steps(self) -> int:
        return self.learner.steps

    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = True) -> np.ndarray:
        """Agent k's actions for observations [n, obs_dim] (or one [obs_dim])."""
        return self.learner.act(obs, deterministic)[self.index]

    __call__ = act

    def value(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Agent k's V(s): [n]."""
        return self.learner.value(obs)[self.index]

    def q(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor) -> np.ndarray:
        """Agent k's min(Q1, Q2)(s, a): [n]."""
        return self.learner.q(obs, act)[self.index]
