"""Expectiles: the asymmetric squared loss of IQL (paper Eq. 1) and exact expectiles of samples.

The tau-expectile m_tau of X minimises E[|tau - 1(x < m)| (x - m)^2]. Setting the derivative to zero gives
the first-order condition we solve exactly below:  sum_i w_i |tau - 1(x_i < m)| (x_i - m) = 0.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def check_tau(tau: float) -> float:
    """Return tau as a float, or raise ValueError unless 0 < tau < 1 (tau = 0.5 is the mean, tau -> 1 the max)."""
    tau = float(tau)
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must lie strictly between 0 and 1 (0.5 = mean, near 1 = max); got tau={tau}")
    return tau


def expectile_loss(u: Array, tau: float | torch.Tensor) -> Array:
    """Elementwise asymmetric L2 loss L_tau(u) = |tau - 1(u < 0)| * u^2 (paper Eq. 1), torch or numpy.

    tau may be a tensor that broadcasts against u (one tau per agent); it is then not checked here, which would
    cost a host sync per call: check it once where it is made.
    """
    if isinstance(tau, torch.Tensor):
        return torch.where(u < 0, 1.0 - tau, tau) * u.square()
    tau = check_tau(tau)
    if isinstance(u, torch.Tensor):
        return torch.where(u < 0, 1.0 - tau, tau) * u.square()
    u = np.asarray(u, dtype=float)
    return np.where(u < 0, 1.0 - tau, tau) * u**2


def expectile_rows(x: np.ndarray, tau: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Exact tau-expectile along the last axis: the root m of sum_i w_i |tau - 1(x_i < m)| (x_i - m) = 0.

    The left side is piecewise linear and decreasing in m with kinks at the x_i. For each hypothesis
    "the k smallest points lie below m" the root has the closed form m_k = sum c_i x_i / sum c_i with
    c_i = (1 - tau) w_i below and tau w_i above; the true root is the m_k that lies in its own interval.
    Entries with weight 0 (out of support) are ignored.
    """
    tau = check_tau(tau)
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != x.shape:
        raise ValueError(f"weights must have the shape of x: x {x.shape}, weights {w.shape}")
    if x.shape[-1] == 0:
        raise ValueError("cannot take the expectile of an empty sample")
    if np.any(w < 0) or np.any(~np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    total = w.sum(axis=-1)
    if np.any(total <= 0):
        raise ValueError("every row needs a positive total weight (at least one action in the data's support)")
    if np.any(~np.isfinite(x[w > 0])):
        raise ValueError("x must be finite where its weight is positive")
    # Zero-weight entries move onto the largest supported value, where they change neither sums nor intervals.
    top = np.max(np.where(w > 0, x, -np.inf), axis=-1, keepdims=True)
    x = np.where(w > 0, x, top)
    order = np.argsort(x, axis=-1)
    xs, ws = np.take_along_axis(x, order, -1), np.take_along_axis(w, order, -1)
    zero = np.zeros(xs.shape[:-1] + (1,))
    below_w = np.concatenate([zero, np.cumsum(ws, -1)], -1)  # weight of the k smallest, k = 0..n
    below_wx = np.concatenate([zero, np.cumsum(ws * xs, -1)], -1)
    above_w, above_wx = below_w[..., -1:] - below_w, below_wx[..., -1:] - below_wx
    m = ((1 - tau) * below_wx + tau * above_wx) / ((1 - tau) * below_w + tau * above_w)  # m_k, k = 0..n
    inf = np.full_like(zero, np.inf)
    lo, hi = np.concatenate([-inf, xs], -1), np.concatenate([xs, inf], -1)  # interval of hypothesis k
    violation = np.maximum(lo - m, 0) + np.maximum(m - hi, 0)
    return np.take_along_axis(m, np.argmin(violation, -1)[..., None], -1)[..., 0]


def expectile(x: Array, tau: float, weights: Array | None = None) -> float:
    """Exact tau-expectile of a (weighted) 1-D sample: the m with sum w |tau - 1(x < m)| (x - m) = 0."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float).ravel()
    if weights is not None:
        weights = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=float)
        if weights.size != x.size:
            raise ValueError(f"weights must have one entry per sample: {x.size} samples, {weights.size} weights")
        weights = weights.ravel()
    return float(expectile_rows(x, tau, weights))


def normal_expectile(tau: float, mean: float = 0.0, std: float = 1.0, grid: int = 20_001) -> float:
    """tau-expectile of N(mean, std^2) from the first-order condition on a fine quadrature grid."""
    z = np.linspace(-8.0, 8.0, grid)
    density = np.exp(-0.5 * z**2)
    return mean + std * expectile(z, tau, weights=density)
