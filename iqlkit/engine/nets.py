"""Networks of S agents in one set of tensors: every layer holds S independent weight matrices (S = 1: one agent).

Inputs and outputs carry a leading agent dimension: [S, B, in] -> [S, B, out], one batched matmul per layer. The
authors' initialisation (orthogonal weights with gain sqrt(2), zero biases; the state-dependent log-std layer with
gain 1e-3) is the default; init='torch' gives nn.Linear's uniform(-1/sqrt(in), 1/sqrt(in)) for weights and biases.
Each agent's weights are drawn from its own generator, so agent k of a stack equals an agent built alone with
the same seed.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the authors' clip of the policy's log-std
INITS = ("authors", "torch")


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.0) -> nn.Sequential:
    """x -> [Linear -> ReLU (-> Dropout)] * len(hidden) -> Linear: one plain network (regression, assignments)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """n independent linear layers in one batched matmul: y[k] = x[k] @ W[k] + b[k], x of shape [n, batch, in]."""

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))

    @torch.no_grad()
    def initialise(self, init: str, generators: Sequence[torch.Generator | None], gain: float = math.sqrt(2)) -> None:
        """Member k from generators[k]: 'authors' = orthogonal(gain) weights, zero biases; 'torch' = nn.Linear's
        uniform(-1/sqrt(in), 1/sqrt(in)) for both."""
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}")
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        for k, g in enumerate(generators):
            if init == "authors":
                nn.init.orthogonal_(self.weight[k], gain, generator=g)
                self.bias[k].zero_()
            else:
                self.weight[k].uniform_(-bound, bound, generator=g)
                self.bias[k].uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleDropout(nn.Module):
    """Dropout with its own rate p_k per member: x[k] * Bernoulli(1 - p_k) / (1 - p_k) in training, x in eval."""

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__()
        if not all(0 <= p < 1 for p in rates):
            raise ValueError(f"dropout rates must lie in [0, 1); got {list(rates)}")
        self.register_buffer("keep", 1.0 - torch.tensor(rates, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x * torch.bernoulli(self.keep.expand_as(x)) / self.keep


class EnsembleMLP(nn.Sequential):
    """n independent MLPs in one pass: [n, batch, in] -> [n, batch, out]; ReLU (then per-member dropout) after each
    hidden layer."""

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256),
                 dropout: float | Sequence[float] = 0.0) -> None:
        rates = [float(dropout)] * n if isinstance(dropout, (int, float)) else [float(p) for p in dropout]
        if len(rates) != n:
            raise ValueError(f"need one dropout rate per member ({n}); got {len(rates)}")
        layers: list[nn.Module] = []
        for width in hidden:
            if width < 1:
                raise ValueError(f"hidden layer widths must be >= 1; got {tuple(hidden)}")
            layers += [EnsembleLinear(n, in_dim, width), nn.ReLU()]
            if max(rates) > 0:
                layers.append(EnsembleDropout(rates))
            in_dim = width
        layers.append(EnsembleLinear(n, in_dim, out_dim))
        super().__init__(*layers)

    def linears(self) -> list[EnsembleLinear]:
        """The linear layers, input to output."""
        return [m for m in self if isinstance(m, EnsembleLinear)]

    def initialise(self, init: str, generators: Sequence[torch.Generator | None],
                   final_gain: float = math.sqrt(2)) -> None:
        """Every layer as EnsembleLinear.initialise; the last one with final_gain (authors' init)."""
        layers = self.linears()
        for layer in layers:
            layer.initialise(init, generators, final_gain if layer is layers[-1] else math.sqrt(2))


def agent_generators(seeds: Sequence[int] | None, n: int) -> list[torch.Generator | None]:
    """One CPU generator per agent seeded with its seed (None: every agent draws from torch's global generator)."""
    return [None] * n if seeds is None else [torch.Generator().manual_seed(int(s)) for s in seeds]


class TwinQ(nn.Module):
    """Q1(s, a) and Q2(s, a) of each of S agents as one ensemble of 2 S networks: [S, B] inputs -> [S, 2, B]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), n_agents: int = 1) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.net = EnsembleMLP(2 * n_agents, obs_dim + act_dim, 1, hidden)  # heads 2k, 2k + 1: agent k

    def initialise(self, init: str, generators: Sequence[torch.Generator | None]) -> None:
        """Both heads of agent k from generators[k], head 1 first."""
        self.net.initialise(init, [g for g in generators for _ in range(2)])

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], -1).repeat_interleave(2, 0)  # agent k's batch for its two heads
        return self.net(x).view(self.n_agents, 2, -1)


class ValueNet(nn.Module):
    """V(s) of each of S agents: [S, B, obs] -> [S, B]."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (256, 256), n_agents: int = 1) -> None:
        super().__init__()
        self.net = EnsembleMLP(n_agents, obs_dim, 1, hidden)

    def initialise(self, init: str, generators: Sequence[torch.Generator | None]) -> None:
        """Agent k's layers from generators[k]."""
        self.net.initialise(init, generators)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """log N(a; mu, sigma^2) summed over action dimensions: sum_i -(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i
    - log(2 pi) / 2."""
    z = (act - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(-1)


class GaussianPolicy(nn.Module):
    """pi_k(a|s) = N(tanh(MLP_k(s)), exp(log_std_k)^2) for each of S agents: tanh on the mean, not a squashed
    distribution (authors' code); log-std state-independent (a parameter, initialised at 0) or a second output,
    clipped to [-5, 2]; per-agent dropout after each hidden ReLU."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), n_agents: int = 1,
                 dropout: float | Sequence[float] = 0.0, state_dependent_std: bool = False) -> None:
        super().__init__()
        self.act_dim, self.state_dependent_std = act_dim, state_dependent_std
        self.net = EnsembleMLP(n_agents, obs_dim, act_dim * (2 if state_dependent_std else 1), hidden, dropout)
        self.log_std = nn.Parameter(torch.zeros(n_agents, 1, act_dim))

    def initialise(self, init: str, generators: Sequence[torch.Generator | None]) -> None:
        """Agent k's layers from generators[k]; with a state-dependent std and the authors' init, the last layer's
        mean and log-std halves are redrawn as their two layers: orthogonal with gain sqrt(2) and 1e-3."""
        self.net.initialise(init, generators)
        if self.state_dependent_std and init == "authors":
            last, a = self.net.linears()[-1], self.act_dim
            with torch.no_grad():
                for k, g in enumerate(generators):
                    nn.init.orthogonal_(last.weight[k, :, :a], math.sqrt(2), generator=g)
                    nn.init.orthogonal_(last.weight[k, :, a:], 1e-3, generator=g)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean tanh(f(s)) and log-std clipped to [-5, 2]: [S, B, act] each."""
        out = self.net(obs)
        mean = torch.tanh(out[..., : self.act_dim])
        log_std = out[..., self.act_dim:] if self.state_dependent_std else self.log_std.expand_as(mean)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi_k(a|s) summed over action dimensions: [S, B]."""
        return gaussian_log_prob(*self(obs), act)
