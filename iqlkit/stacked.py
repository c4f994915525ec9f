"""Many IQL agents in one set of tensors: the same update as iqlkit.iql, with a leading agent dimension S.

Every network is an ensemble (critic: 2 heads per agent), every batch is [S, B, ...] (each agent draws its own
indices); tau, beta, the actor's dropout and a learning-rate factor may differ per agent. Adam works elementwise, so
one Adam over stacked parameters is S independent Adams (and its step is linear in the rate, so agent k's rate is
applied exactly by scaling its step): agent k follows exactly the algorithm of IQL(its config), and a test checks
that it matches separately trained agents. One call of update() launches each kernel once for all S agents.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from iqlkit.data import Transitions
from iqlkit.expectile import check_tau, expectile_loss
from iqlkit.iql import IQL, Batch, IQLConfig, cosine_factor, optimizer_step
from iqlkit.nets import HALF_LOG_2PI, ensemble_mlp


class StackedPolicy(nn.Module):
    """S Gaussian policies N(tanh(MLP_k(s)), exp(log_std_k)^2), log-std state-independent and clipped to [-5, 2]."""

    def __init__(self, n: int, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 dropout: float | Sequence[float]) -> None:
        super().__init__()
        self.net = ensemble_mlp(n, obs_dim, act_dim, hidden, dropout)
        self.log_std = nn.Parameter(torch.zeros(n, 1, act_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tanh(self.net(obs))
        return mean, self.log_std.clamp(-5.0, 2.0).expand_as(mean)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi_k(a|s) summed over action dimensions: [S, B]."""
        mean, log_std = self(obs)
        z = (act - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(-1)


def _per_agent(name: str, values: Sequence[float] | None, default: float, n: int) -> list[float]:
    """One value per agent: `default` for all when values is None, else the n given values."""
    values = [default] * n if values is None else [float(v) for v in values]
    if len(values) != n:
        raise ValueError(f"need {n} {name} (one per agent); got {len(values)}")
    return values


def _linears(net: nn.Module) -> list[nn.Module]:
    """The layers of a Sequential that hold weights (dropout and ReLU layers do not)."""
    return [layer for layer in net if hasattr(layer, "weight")]


def stack_key(config: IQLConfig) -> tuple:
    """Configs with equal keys can train in one StackedIQL: they agree on every field but tau, beta, the actor's
    dropout and a common factor of the three learning rates."""
    lr = config.actor_lr
    rest = replace(config, tau=0.5, beta=0.0, dropout=0.0, actor_lr=1.0, critic_lr=round(config.critic_lr / lr, 12),
                   value_lr=round(config.value_lr / lr, 12))
    return tuple(sorted(rest.to_dict().items()))


class StackedIQL:
    """S IQL agents that share a config but for tau, beta, actor dropout and a learning-rate factor (one each)."""

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig, n_agents: int,
                 taus: Sequence[float] | None = None, betas: Sequence[float] | None = None, device: str = "cpu",
                 dropouts: Sequence[float] | None = None, lr_scales: Sequence[float] | None = None) -> None:
        if config.state_dependent_std or config.update_order != "authors":
            raise ValueError("the stacked path implements the authors' update with state-independent std only")
        c, S, dev = config, n_agents, torch.device(device)
        taus = [check_tau(t) for t in _per_agent("taus", taus, c.tau, S)]
        betas = _per_agent("betas", betas, c.beta, S)
        self.dropouts = _per_agent("dropouts", dropouts, c.dropout, S)
        self.lr_scales = _per_agent("lr_scales", lr_scales, 1.0, S)
        if min(betas) < 0 or min(self.lr_scales) <= 0:
            raise ValueError(f"betas must be >= 0 and lr_scales > 0; got betas {betas}, lr_scales {self.lr_scales}")
        self.config, self.n_agents, self.device, self.obs_dim, self.act_dim = c, S, dev, obs_dim, act_dim
        self.tau = torch.tensor(taus, device=dev).view(S, 1)
        self.beta = torch.tensor(betas, device=dev).view(S, 1)
        self.critic = ensemble_mlp(2 * S, obs_dim + act_dim, 1, c.hidden).to(dev)  # heads 2k, 2k+1: agent k
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value_net = ensemble_mlp(S, obs_dim, 1, c.hidden).to(dev)
        self.actor = StackedPolicy(S, obs_dim, act_dim, c.hidden, self.dropouts).to(dev)
        fused = dev.type == "cuda"
        self.q_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, fused=fused)
        self.v_opt = torch.optim.Adam(self.value_net.parameters(), lr=c.value_lr, fused=fused)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, fused=fused)
        scale = torch.tensor(self.lr_scales, device=dev).view(S, 1, 1)
        self._scale = None if all(s == 1.0 for s in self.lr_scales) else {
            self.q_opt: scale.repeat_interleave(2, 0), self.v_opt: scale, self.actor_opt: scale}
        self.steps = 0

    def config_of(self, k: int) -> IQLConfig:
        """The IQLConfig agent k follows."""
        c, s = self.config, self.lr_scales[k]
        return replace(c, tau=float(self.tau[k]), beta=float(self.beta[k]), dropout=self.dropouts[k],
                       actor_lr=c.actor_lr * s, critic_lr=c.critic_lr * s, value_lr=c.value_lr * s)

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """Adam step; with per-agent rates theta_k <- theta_k + s_k (Adam(theta)_k - theta_k) (Adam is linear in lr)."""
        if self._scale is None:
            return optimizer_step(opt, loss)
        params = [p for group in opt.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        optimizer_step(opt, loss)
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(torch.lerp(old, p, self._scale[opt]))

    def _q(self, net: nn.Module, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """[S, B] obs/act -> [S, 2, B]: both heads of each agent on that agent's batch."""
        x = torch.cat([obs, act], -1).repeat_interleave(2, 0)
        return net(x).view(self.n_agents, 2, -1)

    def sample(self, data: Transitions, generators: Sequence[torch.Generator] | torch.Generator | None = None) -> Batch:
        """[S, B] indices drawn on the data's device: every agent its own minibatch.

        One generator draws all indices in one call (fast); a list of S generators draws agent k's indices from
        generators[k], exactly as fit(seed=k's seed) would (reproducible against separate runs).
        """
        shape, dev = (self.n_agents, self.config.batch_size), data.observations.device
        if isinstance(generators, (list, tuple)):
            idx = torch.stack([torch.randint(len(data), shape[1:], device=dev, generator=g) for g in generators])
        else:
            idx = torch.randint(len(data), shape, device=dev, generator=generators)
        return Batch(data.observations[idx], data.actions[idx], data.rewards[idx], data.next_observations[idx],
                     data.terminals[idx])

    def _actor_lr(self) -> float:
        """Cosine decay 0.5 (1 + cos(pi t / T)) of the actor's learning rate, as in IQL."""
        c = self.config
        return c.actor_lr * (cosine_factor(self.steps, c.max_steps) if c.cosine_actor_lr else 1.0)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One IQL step for every agent (Eqs. 5-7, authors' order); returns per-agent stats of shape [S]."""
        c = self.config
        s, a = batch.observations, batch.actions
        with torch.no_grad():
            q_both = self._q(self.critic_target, s, a)
            q_target = q_both.min(1).values if c.clipped_double_q else q_both[:, 0]
        v_loss = expectile_loss(q_target - self.value_net(s).squeeze(-1), self.tau).mean(1)  # Eq. 5, [S]
        self._step(self.v_opt, v_loss.sum())
        with torch.no_grad():
            v = self.value_net(s).squeeze(-1)
            next_v = self.value_net(batch.next_observations).squeeze(-1)
            weight = torch.exp(self.beta * (q_target - v)).clamp(max=c.adv_clip)
        actor_loss = -(weight * self.actor.log_prob(s, a)).mean(1)  # Eq. 7
        for group in self.actor_opt.param_groups:
            group["lr"] = self._actor_lr()
        self._step(self.actor_opt, actor_loss.sum())
        target = batch.rewards + c.discount * (1.0 - batch.terminals) * next_v
        q_loss = (self._q(self.critic, s, a) - target.unsqueeze(1)).square().mean(2).sum(1)  # Eq. 6
        self._step(self.q_opt, q_loss.sum())
        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), c.polyak)
        self.steps += 1
        return {"v_loss": v_loss.detach(), "actor_loss": actor_loss.detach(), "q_loss": q_loss.detach(),
                "q_mean": q_target.mean(1), "v_mean": v.mean(1)}

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Mean actions of every agent, clipped to [-1, 1]: obs [S, n, obs_dim] (or [n, obs_dim]) -> [S, n, act]."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if obs.dim() == 2:
            obs = obs.expand(self.n_agents, *obs.shape)
        self.actor.eval()
        mean, _ = self.actor(obs)
        self.actor.train()
        return mean.clamp(-1.0, 1.0).cpu().numpy()

    @staticmethod
    def from_agents(agents: Sequence[IQL]) -> "StackedIQL":
        """Stack separately built agents with their current weights; their configs may differ only in tau, beta,
        dropout and a common factor of the three learning rates (relative to the first agent's)."""
        first = agents[0]
        base = first.config
        for a in agents:
            if stack_key(a.config) != stack_key(base):
                raise ValueError(f"cannot stack {a.config} with {base}: only tau, beta, dropout and a common "
                                 f"learning-rate factor may differ (train the others in separate groups)")
        scales = [a.config.actor_lr / base.actor_lr for a in agents]
        stacked = StackedIQL(first.obs_dim, first.act_dim, base, len(agents), [a.config.tau for a in agents],
                             [a.config.beta for a in agents], str(first.device),
                             [a.config.dropout for a in agents], scales)
        with torch.no_grad():
            for name, nets in (("critic", [a.critic.net for a in agents]),
                               ("critic_target", [a.critic_target.net for a in agents])):
                for layer, parts in zip(_linears(getattr(stacked, name)), zip(*map(_linears, nets))):
                    layer.weight.copy_(torch.cat([p.weight for p in parts]))
                    layer.bias.copy_(torch.cat([p.bias for p in parts]))
            for target, sources in ((stacked.value_net, [a.value_net.net for a in agents]),
                                    (stacked.actor.net, [a.actor.net for a in agents])):
                for layer, parts in zip(_linears(target), zip(*map(_linears, sources))):
                    # nn.Linear keeps W as [out, in]; EnsembleLinear as [n, in, out]
                    layer.weight.copy_(torch.stack([p.weight.T for p in parts]))
                    layer.bias.copy_(torch.stack([p.bias for p in parts]).unsqueeze(1))
            stacked.actor.log_std.copy_(torch.stack([a.actor.log_std for a in agents]).unsqueeze(1))
        return stacked


def fit_many(data: Transitions, config: IQLConfig | Sequence[IQLConfig], seeds: Sequence[int],
             taus: Sequence[float] | None = None, betas: Sequence[float] | None = None, steps: int | None = None,
             device: str = "auto", eval_fn=None, eval_every: int = 10_000, log_every: int = 1_000,
             progress: bool = True, probe=None) -> tuple[StackedIQL, list[dict]]:
    """Train len(seeds) agents at once; agent k starts and samples as fit(data, config_k, seed=seeds[k]) would.

    config: one config (taus/betas then set agent k's tau and beta) or one per agent, differing only in what
    StackedIQL.from_agents can stack. eval_fn(act_k) -> dict is called for each agent k every eval_every steps with
    act_k(obs) = agent k's mean action; probe(stack) -> dict of [S] tensors (e.g. iqlkit.taustudy.Probe) adds
    diagnostics at every log point. Returns the stack and log rows (one per agent and log point: step, agent,
    seed, tau, beta, stats).
    """
    from tqdm.auto import tqdm

    from iqlkit.train import prepare, resolve_device

    S = len(seeds)
    if isinstance(config, IQLConfig):
        taus, betas = _per_agent("taus", taus, config.tau, S), _per_agent("betas", betas, config.beta, S)
        configs = [replace(config, tau=tau, beta=beta) for tau, beta in zip(taus, betas)]
    elif len(config) != S or taus is not None or betas is not None:
        raise ValueError(f"give one config per seed ({S}; got {len(config)}) and no separate taus/betas")
    else:
        configs = list(config)
    steps = configs[0].max_steps if steps is None else steps
    dev = resolve_device(device)
    data = prepare(data, configs[0]).to(dev)
    agents = []
    for seed, cfg in zip(seeds, configs):
        torch.manual_seed(seed)
        agents.append(IQL(data.obs_dim, data.act_dim, cfg, str(dev)))
    stacked = StackedIQL.from_agents(agents)
    taus, betas = [c.tau for c in configs], [c.beta for c in configs]
    generators = [torch.Generator(device=dev).manual_seed(seed) for seed in seeds]
    rows: list[dict] = []
    sums, count = None, 0
    for _ in tqdm(range(steps), disable=not progress, desc=f"IQL x{S}", unit="step"):
        stats = stacked.update(stacked.sample(data, generators))
        block = torch.stack(list(stats.values()))  # [n_stats, S]
        sums = block if sums is None else sums + block
        count += 1
        if stacked.steps % log_every == 0 or stacked.steps % eval_every == 0 or stacked.steps == steps:
            names, means = list(stats), sums / count
            if probe is not None:  # diagnostics of the current agents, logged with the interval's mean losses
                extra = probe(stacked)
                names, means = names + list(extra), torch.cat([means, torch.stack(list(extra.values()))])
            means = means.T.tolist()  # one host sync per log interval
            sums, count = None, 0
            for k in range(S):
                row = {"step": stacked.steps, "agent": k, "seed": seeds[k], "tau": taus[k], "beta": betas[k],
                       **dict(zip(names, means[k]))}
                if eval_fn is not None and (stacked.steps % eval_every == 0 or stacked.steps == steps):
                    row.update(eval_fn(lambda obs, k=k: stacked.act(obs)[k]))
                rows.append(row)
    return stacked, rows
