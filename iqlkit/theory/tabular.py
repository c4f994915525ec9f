"""Tabular IQL: exact fixed points of the paper's recursions (Sec. 4.4), their empirical and sampled versions.

Conventions: P[s, a, s'] transition probabilities, R[s, a] expected rewards, behavior[s, a] the data's action
probabilities (0 = outside the data's support), gamma in [0, 1]. A state the data never leaves is absorbing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from iqlkit.theory.expectile import check_tau, expectile_rows


@dataclass(frozen=True)
class TabularData:
    """Transitions (s, a, r, s', done) of a discrete dataset, one entry per step."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    dones: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.states)
        for name in ("actions", "rewards", "next_states", "dones"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries but states has {n}")

    def __len__(self) -> int:
        return len(self.states)

    @staticmethod
    def concat(parts: list["TabularData"]) -> "TabularData":
        """One dataset from several (e.g. one per episode)."""
        return TabularData(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                             ("states", "actions", "rewards", "next_states", "dones")))


def _check_probabilities(x: np.ndarray, name: str) -> None:
    if np.any(x < -1e-12) or not np.allclose(x.sum(-1), 1.0, atol=1e-6):
        bad = np.argwhere(~np.isclose(x.sum(-1), 1.0, atol=1e-6))
        where = f" (first bad row {tuple(bad[0])} sums to {x.sum(-1)[tuple(bad[0])]:.6g})" if len(bad) else ""
        raise ValueError(f"{name} must be non-negative and sum to 1 over its last axis{where}")


def check_mdp(P: np.ndarray, R: np.ndarray, gamma: float, behavior: np.ndarray | None = None) -> None:
    """Raise ValueError unless P is [S, A, S] stochastic, R is [S, A], gamma in [0, 1], behavior [S, A] stochastic."""
    P, R = np.asarray(P), np.asarray(R)
    if P.ndim != 3 or P.shape[0] != P.shape[2]:
        raise ValueError(f"P must have shape [S, A, S]; got {P.shape}")
    if R.shape != P.shape[:2]:
        raise ValueError(f"R must have shape [S, A] = {P.shape[:2]} to match P; got {R.shape}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1]; got {gamma}")
    _check_probabilities(P, "P[s, a, :]")
    if behavior is not None:
        if np.shape(behavior) != P.shape[:2]:
            raise ValueError(f"behavior must have shape [S, A] = {P.shape[:2]}; got {np.shape(behavior)}")
        _check_probabilities(np.asarray(behavior), "behavior[s, :]")


def _fixed_point(step: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Iterate x <- step(x) until max |change| < tol (a gamma-contraction for gamma < 1)."""
    x = x0
    for _ in range(max_iter):
        new = step(x)
        if np.max(np.abs(new - x)) < tol:
            return new
        x = new
    raise RuntimeError(f"no convergence in {max_iter} iterations: use gamma < 1 or make every episode terminate")


def value_iteration(P: np.ndarray, R: np.ndarray, gamma: float, tol: float = 1e-10,
                    max_iter: int = 100_000) -> np.ndarray:
    """Optimal Q: Q(s, a) = R(s, a) + gamma * sum_s' P(s, a, s') max_a' Q(s', a')."""
    check_mdp(P, R, gamma)
    return _fixed_point(lambda Q: R + gamma * P @ Q.max(1), np.zeros_like(R, dtype=float), tol, max_iter)


def support_optimal_q(P: np.ndarray, R: np.ndarray, behavior: np.ndarray, gamma: float, tol: float = 1e-10,
                      max_iter: int = 100_000) -> np.ndarray:
    """Support-constrained optimum (Corollary 2.1): Q*(s, a) = R + gamma * E_s'[max_{a': pi_b(a'|s') > 0} Q*(s', a')]."""
    check_mdp(P, R, gamma, behavior)
    support = np.asarray(behavior) > 0
    return _fixed_point(lambda Q: R + gamma * P @ np.where(support, Q, -np.inf).max(1),
                        np.zeros_like(R, dtype=float), tol, max_iter)


def expectile_value_iteration(P: np.ndarray, R: np.ndarray, behavior: np.ndarray, gamma: float, tau: float,
                              tol: float = 1e-10, max_iter: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Fixed point of V(s) = E^tau_{a ~ pi_b(.|s)}[Q(s, a)], Q(s, a) = R(s, a) + gamma * E_s'[V(s')] (Sec. 4.4).

    The expectile is monotone and shifts with its argument, so this is a gamma-contraction like value iteration.
    tau = 0.5 evaluates the behaviour policy (SARSA); tau -> 1 approaches support_optimal_q (Theorem 3).
    """
    tau = check_tau(tau)
    check_mdp(P, R, gamma, behavior)
    V = _fixed_point(lambda V: expectile_rows(R + gamma * P @ V, tau, behavior), np.zeros(len(R)), tol, max_iter)
    return R + gamma * P @ V, V


def policy_evaluation(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact Q^pi and V^pi: V = (I - gamma P_pi)^-1 R_pi, Q = R + gamma P V (iterated when gamma = 1)."""
    check_mdp(P, R, gamma, policy)
    P_pi, R_pi = np.einsum("sa,sat->st", policy, P), (policy * R).sum(1)
    if gamma < 1:
        V = np.linalg.solve(np.eye(len(R)) - gamma * P_pi, R_pi)
    else:
        V = _fixed_point(lambda V: R_pi + P_pi @ V, np.zeros(len(R)), 1e-10, 100_000)
    return R + gamma * P @ V, V


def greedy_policy(Q: np.ndarray, support: np.ndarray | None = None) -> np.ndarray:
    """One-hot pi(s) = argmax_a Q(s, a), over the data's support where one is given (states without data: all a)."""
    Q = np.asarray(Q, dtype=float)
    if support is not None:
        support = np.asarray(support, dtype=bool)
        if support.shape != Q.shape:
            raise ValueError(f"support must have the shape of Q {Q.shape}; got {support.shape}")
        Q = np.where(support | ~support.any(1, keepdims=True), Q, -np.inf)
    return np.eye(Q.shape[1])[Q.argmax(1)]


def action_gap(Q: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Gap(s) = max_a Q(s, a) - second max_a Q(s, a) over the data's actions (a >= 0; nan where < 2 actions)."""
    Q_in = np.sort(np.where(np.asarray(support, dtype=bool), Q, -np.inf), axis=1)
    gap = Q_in[:, -1] - Q_in[:, -2]
    return np.where(np.isfinite(gap), gap, np.nan)


def awr_policy(Q: np.ndarray, V: np.ndarray, behavior: np.ndarray, beta: float, clip: float = 100.0) -> np.ndarray:
    """Tabular AWR (paper Eq. 7): pi(a|s) proportional to pi_b(a|s) * min(exp(beta * (Q(s, a) - V(s))), clip)."""
    behavior = np.asarray(behavior, dtype=float)
    if np.shape(Q) != behavior.shape or np.shape(V) != behavior.shape[:1]:
        raise ValueError(f"Q {np.shape(Q)}, V {np.shape(V)} and behavior {behavior.shape} must be [S, A], [S], [S, A]")
    if beta < 0:
        raise ValueError(f"beta must be >= 0 (0 = behaviour cloning); got {beta}")
    weights = behavior * np.minimum(np.exp(np.minimum(beta * (Q - V[:, None]), 50.0)), clip)
    return weights / weights.sum(1, keepdims=True)


def empirical_mdp(data: TabularData, n_states: int, n_actions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts give P(s'|s, a), mean R(s, a) and pi_b(a|s); unseen (s, a) loop on s with reward 0.

    A transition with done=True leads to an absorbing state of value 0: its s' must be a state the data never
    leaves (e.g. the goal), which then loops on itself.
    """
    s, a, s2 = (np.asarray(x, dtype=int) for x in (data.states, data.actions, data.next_states))
    for name, x, n in (("states", s, n_states), ("actions", a, n_actions), ("next_states", s2, n_states)):
        if len(x) and (x.min() < 0 or x.max() >= n):
            raise ValueError(f"{name} must lie in [0, {n}); found {x.min()}..{x.max()}")
    sa_count = np.zeros((n_states, n_actions))
    np.add.at(sa_count, (s, a), 1.0)
    P = np.zeros((n_states, n_actions, n_states))
    np.add.at(P, (s, a, s2), 1.0)
    R = np.zeros((n_states, n_actions))
    np.add.at(R, (s, a), np.asarray(data.rewards, dtype=float))
    seen = sa_count > 0
    P = np.where(seen[..., None], P / np.maximum(sa_count, 1)[..., None], np.eye(n_states)[:, None, :])
    R = R / np.maximum(sa_count, 1)
    state_count = sa_count.sum(1, keepdims=True)
    behavior = np.where(state_count > 0, sa_count / np.maximum(state_count, 1), 1.0 / n_actions)
    left = np.zeros(n_states, dtype=bool)
    left[s] = True
    if np.any(left[s2[np.asarray(data.dones, dtype=bool)]]):
        raise ValueError("a done transition leads to a state the data also leaves; terminal states must be absorbing")
    return P, R, behavior


@dataclass(frozen=True)
class SampledIQLRun:
    """Result of sampled tabular IQL: final tables and V snapshots over training."""

    Q: np.ndarray
    V: np.ndarray
    steps: np.ndarray
    V_history: np.ndarray


def sampled_iql(data: TabularData, n_states: int, n_actions: int, gamma: float, tau: float, steps: int = 20_000,
                batch_size: int = 256, lr: float = 0.5, polyak: float = 0.05, seed: int = 0,
                log_every: int = 100) -> SampledIQLRun:
    """Minibatch tabular IQL with the paper's losses, V first then Q, then the Polyak target (Algorithm 1).

    V loss (Eq. 5): L_tau(Q_target(s, a) - V(s));  Q loss (Eq. 6): (r + gamma (1 - done) V(s') - Q(s, a))^2.
    Each table entry moves by lr_t times the mean half-gradient of the batch samples that touch it, with a
    cosine decay of lr_t to 0, so the tables converge to expectile_value_iteration on empirical_mdp(data).
    """
    tau = check_tau(tau)
    if len(data) == 0:
        raise ValueError("the dataset is empty")
    rng = np.random.default_rng(seed)
    s, a, r = np.asarray(data.states, int), np.asarray(data.actions, int), np.asarray(data.rewards, float)
    s2, mask = np.asarray(data.next_states, int), 1.0 - np.asarray(data.dones, float)
    Q, V = np.zeros((n_states, n_actions)), np.zeros(n_states)
    Q_target = Q.copy()
    history, logged = [], []

    def mean_step(index: np.ndarray, grad: np.ndarray, size: int) -> np.ndarray:
        total = np.bincount(index, grad, minlength=size)
        return total / np.maximum(np.bincount(index, minlength=size), 1)

    for t in range(steps):
        lr_t = lr * 0.5 * (1 + np.cos(np.pi * t / steps))
        i = rng.integers(len(s), size=batch_size)
        u = Q_target[s[i], a[i]] - V[s[i]]
        V += lr_t * mean_step(s[i], np.abs(tau - (u < 0)) * u, n_states)  # Eq. 5
        sa = s[i] * n_actions + a[i]
        td = r[i] + gamma * mask[i] * V[s2[i]] - Q[s[i], a[i]]
        Q += lr_t * mean_step(sa, td, n_states * n_actions).reshape(Q.shape)  # Eq. 6
        Q_target += polyak * (Q - Q_target)
        if t % log_every == 0 or t == steps - 1:
            history.append(V.copy())
            logged.append(t)
    return SampledIQLRun(Q, V, np.array(logged), np.array(history))


def noisy_greedy_values(P: np.ndarray, R: np.ndarray, gamma: float, Q: np.ndarray, support: np.ndarray,
                        sigma: float, n_trials: int = 20, seed: int = 0) -> np.ndarray:
    """True V of greedy(Q + N(0, sigma^2)) for n_trials noise draws: how much estimation error a policy tolerates."""
    rng = np.random.default_rng(seed)
    return np.array([policy_evaluation(P, R, greedy_policy(Q + sigma * rng.normal(size=Q.shape), support), gamma)[1]
                     for _ in range(n_trials)])
