"""Conditional expectile regression (paper Eq. 2) with a small network, and the bounded 2-D toy of the paper's Fig. 1.

A network m_theta(x) with one output head per tau is trained on L(theta) = E_(x,y)[sum_k L_tau_k(y - m_theta(x)_k)].
The toy draws y = low(x) + width(x) * B with B ~ Beta(a, b), so the support of y given x is [low(x), low(x) + width(x)]
and every conditional expectile is known exactly: m_tau(x) = low(x) + width(x) * m_tau(B).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from iqlkit.engine.nets import mlp
from iqlkit.theory.expectile import check_tau, expectile, expectile_loss


def sample_expectiles(x: np.ndarray, taus: Sequence[float], weights: np.ndarray | None = None) -> np.ndarray:
    """Exact m_tau of a (weighted) sample for each tau: the roots of sum_i w_i |tau - 1(x_i < m)| (x_i - m) = 0."""
    return np.array([expectile(x, tau, weights) for tau in taus])


def beta_expectiles(taus: Sequence[float], a: float = 1.0, b: float = 1.0, grid: int = 100_000) -> np.ndarray:
    """m_tau of Beta(a, b) on [0, 1] for each tau, from the first-order condition on a midpoint quadrature grid."""
    z = (np.arange(grid) + 0.5) / grid
    return sample_expectiles(z, taus, weights=z ** (a - 1) * (1 - z) ** (b - 1))


def uniform_expectile(tau: float) -> float:
    """Closed form for U(0, 1): tau (1 - m)^2 = (1 - tau) m^2, so m_tau = sqrt(tau) / (sqrt(tau) + sqrt(1 - tau))."""
    tau = check_tau(tau)
    return float(np.sqrt(tau) / (np.sqrt(tau) + np.sqrt(1 - tau)))


def loglog_slope(one_minus_tau: np.ndarray, gaps: np.ndarray) -> float:
    """Least-squares slope p of log(x* - m_tau) = p log(1 - tau) + c: the rate at which m_tau -> x* (Lemma 1)."""
    return float(np.polyfit(np.log(one_minus_tau), np.log(gaps), 1)[0])


@dataclass(frozen=True)
class BoundedToy:
    """y = low(x) + width(x) B, x ~ U(-1, 1), B ~ Beta(a, b): a bounded y-distribution per x (Fig. 1 right)."""

    a: float = 1.0
    b: float = 1.0

    def low(self, x: np.ndarray) -> np.ndarray:
        """Bottom of the support of y given x: low(x) = sin(3x) / 2."""
        return 0.5 * np.sin(3.0 * np.asarray(x, dtype=float))

    def width(self, x: np.ndarray) -> np.ndarray:
        """Height of the support of y given x, growing from 0.4 at x = -1 to 1.0 at x = 1."""
        return 0.7 + 0.3 * np.asarray(x, dtype=float)

    def supremum(self, x: np.ndarray) -> np.ndarray:
        """x*(x) = low(x) + width(x): the largest y in the support, the limit of m_tau(x) as tau -> 1 (Lemma 1)."""
        return self.low(x) + self.width(x)

    def mean(self, x: np.ndarray) -> np.ndarray:
        """E[y | x] = low(x) + width(x) a / (a + b), which equals m_0.5(x)."""
        return self.low(x) + self.width(x) * self.a / (self.a + self.b)

    def expectiles(self, x: np.ndarray, taus: Sequence[float]) -> np.ndarray:
        """Exact m_tau(x) = low(x) + width(x) m_tau(Beta(a, b)), one column per tau: shape [len(x), len(taus)]."""
        m = beta_expectiles(taus, self.a, self.b)
        return self.low(x)[:, None] + self.width(x)[:, None] * m[None, :]

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Draw n pairs (x, y): x ~ U(-1, 1), y = low(x) + width(x) B with B ~ Beta(a, b)."""
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1.0, 1.0, n)
        return x, self.low(x) + self.width(x) * rng.beta(self.a, self.b, n)


@dataclass
class ExpectileFit:
    """A network with one output per tau: m_theta(x)[k] estimates the tau_k conditional expectile of y given x."""

    model: torch.nn.Module
    taus: tuple[float, ...]
    losses: list[float] = field(default_factory=list)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Predicted expectiles, shape [len(x), len(taus)]."""
        with torch.no_grad():
            inputs = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, 1)
            return self.model(inputs).numpy().astype(float)

    def nearest_head(self, tau: float) -> int:
        """Index k of the fitted head whose tau_k is closest to tau."""
        return int(np.argmin(np.abs(np.asarray(self.taus) - check_tau(tau))))


def expectile_regression_loss(pred: torch.Tensor, y: torch.Tensor, taus: Sequence[float]) -> torch.Tensor:
    """Eq. 2 summed over heads: sum_k mean_i L_tau_k(y_i - m_theta(x_i)_k)."""
    return sum(expectile_loss(y - pred[:, k], tau).mean() for k, tau in enumerate(taus))


def fit_conditional_expectiles(x: np.ndarray, y: np.ndarray, taus: Sequence[float], hidden: Sequence[int] = (64, 64),
                               steps: int = 3000, lr: float = 1e-3, seed: int = 0,
                               log_every: int = 50) -> ExpectileFit:
    """Full-batch Adam on Eq. 2, L(theta) = sum_k E[L_tau_k(y - m_theta(x)_k)], for an mlp with len(taus) heads."""
    taus = tuple(check_tau(t) for t in taus)
    torch.manual_seed(seed)
    fit = ExpectileFit(mlp(1, len(taus), hidden), taus)
    xs = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, 1)
    ys = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1)
    optimizer = torch.optim.Adam(fit.model.parameters(), lr=lr)
    for step in range(steps):
        loss = expectile_regression_loss(fit.model(xs), ys, taus)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == steps - 1:
            fit.losses.append(float(loss.detach()))
    fit.model.eval()
    return fit


def head_errors(fit: ExpectileFit, toy: BoundedToy, x: np.ndarray) -> np.ndarray:
    """Mean |m_theta(x)_k - m_tau_k(x)| over x for each head k: the net against the exact conditional expectiles."""
    return np.abs(fit(x) - toy.expectiles(x, fit.taus)).mean(axis=0)
