"""Many IQL agents in one set of tensors: the same update as iqlkit.iql, with a leading agent dimension S.

Every network is an ensemble (critic: 2 heads per agent), every batch is [S, B, ...] (each agent draws its own
indices); tau, beta, the actor's dropout and a learning-rate factor may differ per agent. Adam works elementwise, so
one Adam over stacked parameters is S independent Adams (and its step is linear in the rate, so agent k's rate is
applied exactly by scaling its step): agent k follows exactly the algorithm of IQL(its config), and a test checks
that it matches separately trained agents. One call of update() launches each kernel once for all S agents.
"""
from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from iqlkit.data import Transitions
from iqlkit.expectile import check_tau, expectile_loss
from iqlkit.iql import IQL, STATS, Batch, IQLConfig, optimizer_step
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
        self.taus, self.betas = taus, betas
        self.tau = torch.tensor(taus, device=dev).view(S, 1)
        self.beta = torch.tensor(betas, device=dev).view(S, 1)
        self.critic = ensemble_mlp(2 * S, obs_dim + act_dim, 1, c.hidden).to(dev)  # heads 2k, 2k+1: agent k
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value_net = ensemble_mlp(S, obs_dim, 1, c.hidden).to(dev)
        self.actor = StackedPolicy(S, obs_dim, act_dim, c.hidden, self.dropouts).to(dev)
        self.steps = 0
        self.step_t = torch.zeros((), dtype=torch.float64, device=dev)  # the same count, on the device
        self._make_optimizers(capturable=False)

    def _make_optimizers(self, capturable: bool) -> None:
        """One Adam per network over the stacked weights (fused on CUDA; capturable: safe inside a CUDA graph).

        The actor's rate is a tensor, so its cosine schedule is computed on the device from step_t.
        """
        c, dev, S = self.config, self.device, self.n_agents
        fused = dev.type == "cuda"
        self.q_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, fused=fused, capturable=capturable)
        self.v_opt = torch.optim.Adam(self.value_net.parameters(), lr=c.value_lr, fused=fused, capturable=capturable)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=torch.tensor(c.actor_lr, device=dev),
                                          fused=fused, capturable=capturable)
        scale = torch.tensor(self.lr_scales, device=dev).view(S, 1, 1)
        self._scale = None if all(s == 1.0 for s in self.lr_scales) else {
            self.q_opt: scale.repeat_interleave(2, 0), self.v_opt: scale, self.actor_opt: scale}

    def config_of(self, k: int) -> IQLConfig:
        """The IQLConfig agent k follows."""
        c, s = self.config, self.lr_scales[k]
        return replace(c, tau=self.taus[k], beta=self.betas[k], dropout=self.dropouts[k],
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

    def _set_actor_lr(self) -> None:
        """Cosine decay of the actor's rate, lr_0 0.5 (1 + cos(pi min(t, T) / T)) at step t, computed on the device."""
        c = self.config
        if c.cosine_actor_lr:
            t = self.step_t.clamp(max=c.max_steps)
            self.actor_opt.param_groups[0]["lr"].copy_(c.actor_lr * 0.5 * (1 + torch.cos(math.pi * t / c.max_steps)))

    def target_q(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """min(Q1_target, Q2_target)(s, a) per agent (Q1_target alone without clipped double Q): [S, B]."""
        with torch.no_grad():
            q_both = self._q(self.critic_target, s, a)
            return q_both.min(1).values if self.config.clipped_double_q else q_both[:, 0]

    def value_loss(self, s: torch.Tensor, q_target: torch.Tensor) -> torch.Tensor:
        """Eq. 5 per agent: L_V = E[L_tau(Q_target(s, a) - V(s))], tau of agent k: [S]."""
        return expectile_loss(q_target - self.value_net(s).squeeze(-1), self.tau).mean(1)

    def values(self, s: torch.Tensor, s_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V(s) and V(s') from the value net just updated (no gradient): [S, B] each."""
        with torch.no_grad():
            return self.value_net(s).squeeze(-1), self.value_net(s_next).squeeze(-1)

    def actor_loss(self, s: torch.Tensor, a: torch.Tensor, q_target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Eq. 7 per agent: L_pi = -E[min(exp(beta_k (Q_target - V)), 100) log pi_k(a|s)]: [S]."""
        weight = torch.exp(self.beta * (q_target - v)).clamp(max=self.config.adv_clip)
        return -(weight * self.actor.log_prob(s, a)).mean(1)

    def q_loss(self, batch: Batch, next_v: torch.Tensor) -> torch.Tensor:
        """Eq. 6 per agent: sum over the twin heads of E[(r + gamma (1 - terminal) V(s') - Q_i(s, a))^2]: [S]."""
        target = batch.rewards + self.config.discount * (1.0 - batch.terminals) * next_v
        return (self._q(self.critic, batch.observations, batch.actions) - target.unsqueeze(1)).square().mean(2).sum(1)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One IQL step for every agent (Eqs. 5-7, authors' order); returns per-agent stats of shape [S]."""
        s, a = batch.observations, batch.actions
        q_target = self.target_q(s, a)
        v_loss = self.value_loss(s, q_target)
        self._step(self.v_opt, v_loss.sum())
        v, next_v = self.values(s, batch.next_observations)
        self._set_actor_lr()
        actor_loss = self.actor_loss(s, a, q_target, v)
        self._step(self.actor_opt, actor_loss.sum())
        q_loss = self.q_loss(batch, next_v)
        self._step(self.q_opt, q_loss.sum())
        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()),
                                 self.config.polyak)
        self.steps += 1
        self.step_t += 1
        return {"v_loss": v_loss.detach(), "actor_loss": actor_loss.detach(), "q_loss": q_loss.detach(),
                "q_mean": q_target.mean(1), "v_mean": v.mean(1)}

    def run(self, data: Transitions, n: int,
            generators: Sequence[torch.Generator] | torch.Generator | None = None) -> torch.Tensor:
        """n updates on fresh minibatches; the per-agent stats summed over them: [n_stats, S], no host sync."""
        total = torch.zeros(len(STATS), self.n_agents, device=self.device)
        for _ in range(n):
            stats = self.update(self.sample(data, generators))
            total += torch.stack([stats[k] for k in STATS])
        return total

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

    @classmethod
    def from_agents(cls, agents: Sequence[IQL], **options) -> "StackedIQL":
        """Stack separately built agents with their current weights, Adam moments and step count; their configs may
        differ only in tau, beta, dropout and a common factor of the three learning rates (relative to the first
        agent's). options go to the constructor (e.g. FastIQL's)."""
        first = agents[0]
        base = first.config
        for a in agents:
            if stack_key(a.config) != stack_key(base):
                raise ValueError(f"cannot stack {a.config} with {base}: only tau, beta, dropout and a common "
                                 f"learning-rate factor may differ (train the others in separate groups)")
            if a.steps != first.steps:
                raise ValueError(f"cannot stack agents at different steps ({a.steps} and {first.steps})")
        stacked = cls(first.obs_dim, first.act_dim, base, len(agents), [a.config.tau for a in agents],
                      [a.config.beta for a in agents], str(first.device), [a.config.dropout for a in agents],
                      [a.config.actor_lr / base.actor_lr for a in agents], **options)
        with torch.no_grad():
            for ours, opt, theirs, their_opts, layout in _weights(stacked, agents):
                ours.copy_(_stack(layout, theirs))
                states = [o.state.get(p) for o, p in zip(their_opts, theirs)] if opt is not None else [None]
                if all(st is not None for st in states):
                    opt.state[ours] = _adam_state(opt, ours, float(states[0]["step"]),
                                                  _stack(layout, [st["exp_avg"] for st in states]),
                                                  _stack(layout, [st["exp_avg_sq"] for st in states]))
        stacked.steps = first.steps
        stacked.step_t.fill_(first.steps)
        return stacked

    def agent(self, k: int) -> IQL:
        """Agent k as a separate IQL with its weights, Adam moments, schedule and step count (the inverse of
        from_agents): what fit evaluates and checkpoints, so a run can resume on either path."""
        agent = IQL(self.obs_dim, self.act_dim, self.config_of(k), str(self.device))
        with torch.no_grad():
            # the new agent stands at every index of the stack; only index k is written
            for ours, opt, theirs, their_opts, layout in _weights(self, [agent] * self.n_agents):
                theirs[k].copy_(_part(layout, ours, k))
                if opt is not None and ours in opt.state:
                    st = opt.state[ours]
                    their_opts[k].state[theirs[k]] = _adam_state(their_opts[k], theirs[k], float(st["step"]),
                                                                 _part(layout, st["exp_avg"], k).clone(),
                                                                 _part(layout, st["exp_avg_sq"], k).clone())
        agent.steps = agent.actor_sched.last_epoch = self.steps
        agent.actor_sched._last_lr = [base * agent._actor_lr_factor(self.steps) for base in agent.actor_sched.base_lrs]
        for group, lr in zip(agent.actor_opt.param_groups, agent.actor_sched._last_lr):
            group["lr"] = lr
        return agent


# How an agent's weight sits in the stack: "pair" = the twin critic's ensemble (agent k's heads are 2k and 2k + 1),
# "weight" = nn.Linear's [out, in] is EnsembleLinear's [in, out] at index k, "row" = a vector is row [k, 0].
def _stack(layout: str, parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """The agents' tensors in the stack's layout."""
    if layout == "pair":
        return torch.cat(list(parts))
    if layout == "weight":
        return torch.stack([p.T for p in parts])
    return torch.stack(list(parts)).unsqueeze(1)


def _part(layout: str, stacked: torch.Tensor, k: int) -> torch.Tensor:
    """Agent k's tensor out of the stack (a view)."""
    return stacked[2 * k: 2 * k + 2] if layout == "pair" else stacked[k].T if layout == "weight" else stacked[k, 0]


def _weights(stacked: StackedIQL, agents: Sequence[IQL]):
    """(stacked weight, its Adam, the agents' weights, their Adams, layout) for every weight of the four networks."""
    for net, opt in (("critic", "q_opt"), ("critic_target", None), ("value_net", "v_opt"), ("actor", "actor_opt")):
        theirs = [list(getattr(a, net).parameters()) for a in agents]
        for j, ours in enumerate(getattr(stacked, net).parameters()):
            parts = [t[j] for t in theirs]
            layout = "pair" if net.startswith("critic") else "weight" if parts[0].dim() == 2 else "row"
            yield (ours, getattr(stacked, opt) if opt else None, parts,
                   [getattr(a, opt) for a in agents] if opt else None, layout)


def _adam_state(opt: torch.optim.Optimizer, param: torch.Tensor, step: float, exp_avg: torch.Tensor,
                exp_avg_sq: torch.Tensor) -> dict:
    """Adam's per-weight state as `opt` keeps it: the step count on the weight's device when fused or capturable."""
    group = opt.param_groups[0]
    on_device = group.get("fused") or group.get("capturable")
    step_t = torch.tensor(step, dtype=torch.float32, device=param.device if on_device else "cpu")
    return {"step": step_t, "exp_avg": exp_avg.contiguous(), "exp_avg_sq": exp_avg_sq.contiguous()}


def fit_many(data: Transitions, config: IQLConfig | Sequence[IQLConfig], seeds: Sequence[int],
             taus: Sequence[float] | None = None, betas: Sequence[float] | None = None, steps: int | None = None,
             device: str = "auto", eval_fn=None, eval_every: int = 10_000, log_every: int = 1_000,
             progress: bool = True, probe=None, fast: bool | None = None,
             compile: bool = False) -> tuple[StackedIQL, list[dict]]:
    """Train len(seeds) agents at once; agent k starts and samples as fit(data, config_k, seed=seeds[k]) would.

    config: one config (taus/betas then set agent k's tau and beta) or one per agent, differing only in what
    StackedIQL.from_agents can stack. eval_fn(act_k) -> dict is called for each agent k every eval_every steps with
    act_k(obs) = agent k's mean action; probe(stack) -> dict of [S] tensors (e.g. iqlkit.taustudy.Probe) adds
    diagnostics at every log point. fast: train through iqlkit.fast.FastIQL (None = on CUDA only; compile adds
    torch.compile). Returns the stack and log rows (one per agent and log point: step, agent, seed, tau, beta,
    stats).
    """
    from tqdm.auto import tqdm

    from iqlkit.fast import FastIQL
    from iqlkit.train import next_interval, prepare, resolve_device

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
    fast = dev.type == "cuda" if fast is None else fast
    stacked = FastIQL.from_agents(agents, compile=compile) if fast else StackedIQL.from_agents(agents)
    taus, betas = [c.tau for c in configs], [c.beta for c in configs]
    generators = [torch.Generator(device=dev).manual_seed(seed) for seed in seeds]
    rows: list[dict] = []
    bar = tqdm(total=steps, disable=not progress, desc=f"IQL x{S}", unit="step")
    while stacked.steps < steps:
        done = stacked.steps
        n = next_interval(done, steps, log_every, eval_every)
        names, means = list(STATS), stacked.run(data, n, generators) / n  # [n_stats, S]
        bar.update(n)
        if probe is not None:  # diagnostics of the current agents, logged with the interval's mean losses
            extra = probe(stacked)
            names, means = names + list(extra), torch.cat([means, torch.stack(list(extra.values()))])
        means = means.T.tolist()  # one host sync per log interval
        for k in range(S):
            row = {"step": stacked.steps, "agent": k, "seed": seeds[k], "tau": taus[k], "beta": betas[k],
                   **dict(zip(names, means[k]))}
            if eval_fn is not None and (stacked.steps % eval_every == 0 or stacked.steps == steps):
                row.update(eval_fn(lambda obs, k=k: stacked.act(obs)[k]))
            rows.append(row)
    bar.close()
    return stacked, rows
