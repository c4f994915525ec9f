"""Networks: MLPs (2 x 256 ReLU in the authors' code), twin Q as one batched module, V, and the Gaussian policy."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.0) -> nn.Sequential:
    """x -> [Linear -> ReLU (-> Dropout)] * len(hidden) -> Linear."""
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
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per member
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

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


def ensemble_mlp(n: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256),
                 dropout: float | Sequence[float] = 0.0) -> nn.Sequential:
    """n independent MLPs in one pass: [n, batch, in] -> [n, batch, out] with EnsembleLinear layers.

    dropout: one rate for all members or one per member (an EnsembleDropout after each hidden ReLU).
    """
    rates = [float(dropout)] * n if isinstance(dropout, (int, float)) else [float(p) for p in dropout]
    if len(rates) != n:
        raise ValueError(f"need one dropout rate per member ({n}); got {len(rates)}")
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [EnsembleLinear(n, in_dim, width), nn.ReLU()]
        if max(rates) > 0:
            layers.append(EnsembleDropout(rates))
        in_dim = width
    layers.append(EnsembleLinear(n, in_dim, out_dim))
    return nn.Sequential(*layers)


class TwinQ(nn.Module):
    """Q1(s, a) and Q2(s, a) as one batched network: returns [2, batch] in a single pass."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), n: int = 2) -> None:
        super().__init__()
        self.net, self.n = ensemble_mlp(n, obs_dim + act_dim, 1, hidden), n

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], -1)
        return self.net(x.expand(self.n, *x.shape)).squeeze(-1)


class ValueNet(nn.Module):
    """V(s): an MLP with one output."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(tanh(MLP(s)), exp(log_std)^2): tanh on the mean, not a squashed distribution (authors' code)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.0,
                 state_dependent_std: bool = False) -> None:
        super().__init__()
        self.act_dim, self.state_dependent_std = act_dim, state_dependent_std
        self.net = mlp(obs_dim, act_dim * (2 if state_dependent_std else 1), hidden, dropout)
        self.log_std = nn.Parameter(torch.zeros(act_dim))  # state-independent, initialised at 0

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean tanh(f(s)) and log-std clipped to [-5, 2]."""
        out = self.net(obs)
        mean = torch.tanh(out[..., : self.act_dim])
        log_std = out[..., self.act_dim:] if self.state_dependent_std else self.log_std.expand_as(mean)
        return mean, log_std.clamp(-5.0, 2.0)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) = sum_i log N(a_i; mu_i(s), sigma_i^2)."""
        mean, log_std = self(obs)
        z = (act - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(-1)
